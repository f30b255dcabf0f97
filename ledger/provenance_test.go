package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// decided is req with the decision's sequence number and versions.
func decided(id string, seq uint64, model, rules string, payer, payee string, amount int64) pipeline.PostRequest {
	r := req(id, payer, payee, amount, eur)
	r.Seq, r.Model, r.Rules = seq, model, rules
	return r
}

// exportS exports the whole ledger and returns its entries by transaction id.
func exportS(t testing.TB, s Store) map[string]ExportedEntry {
	t.Helper()
	var out bytes.Buffer
	if err := s.Export(context.Background(), 0, &out); err != nil {
		t.Fatalf("Export: %v", err)
	}
	got := map[string]ExportedEntry{}
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var e ExportedEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		got[e.TxID] = e
	}
	return got
}

type provenance struct {
	seq          uint64
	model, rules string
}

func provenanceOf(e ExportedEntry) provenance { return provenance{e.DecisionSeq, e.Model, e.Rules} }

// TestConformanceProvenance posts decisions with their sequence numbers and versions and
// reads them back from Export, across a failed batch and a reopen.
func TestConformanceProvenance(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		loc := b.newLoc(t)
		opts := Options{DefaultLimit: flatLimit(1_000_000)}
		s := openStore(t, b, loc, opts)
		const m1, m2, r1 = "sha256:dac5ad5e0f39", "sha256:106c5f977765", "sha256:21c5cb910e1c"
		postS(t, s,
			decided("t1", 7, m1, r1, "p", "m", 100),
			decided("t2", 8, m1, r1, "p", "m", 200),
			decided("t3", 9, "", r1, "q", "m", 300),  // rules only
			decided("t4", 10, m2, "", "q", "m", 400), // model only
			decided("t5", 11, "", "", "q", "m", 500), // neither
			req("t6", "q", "m", 600, eur),            // no Seq
		)
		if _, err := s.Reverse(context.Background(), "t1", 1_700_000_100_000); err != nil {
			t.Fatal(err)
		}
		// A batch that fails takes its new versions with it.
		c := coreOf(s)
		c.hookTest = func(stage string) error {
			if stage == "commit" {
				return errors.New("injected")
			}
			return nil
		}
		failed := []pipeline.PostRequest{decided("t7", 12, "model-new", "rules-new", "p", "m", 1)}
		if err := s.Post(context.Background(), failed); err == nil {
			t.Fatal("Post succeeded with an injected failure")
		}
		c.hookTest = nil
		postS(t, s, decided("t8", 13, m2, r1, "p", "m", 1))

		want := map[string]provenance{
			"t1": {7, m1, r1}, "t2": {8, m1, r1}, "t3": {9, "", r1}, "t4": {10, m2, ""},
			"t5": {11, "", ""}, "t6": {0, "", ""}, "reversal:t1": {0, "", ""}, "t8": {13, m2, r1},
		}
		check := func(when string) {
			t.Helper()
			got := exportS(t, s)
			if len(got) != len(want) {
				t.Errorf("%s: %d entries exported, want %d: %v", when, len(got), len(want), got)
			}
			for id, w := range want {
				if p := provenanceOf(got[id]); p != w {
					t.Errorf("%s: %s exported with %+v, want %+v", when, id, p, w)
				}
			}
		}
		check("before reopen")
		verifyS(t, s)

		s.Close()
		s = openStore(t, b, loc, opts)
		// The versions read back at open are reused, a new pair gets a row of its own.
		postS(t, s, decided("t9", 14, m1, r1, "p", "m", 1), decided("t10", 15, "model-new", "rules-new", "p", "m", 1))
		want["t9"], want["t10"] = provenance{14, m1, r1}, provenance{15, "model-new", "rules-new"}
		check("after reopen")
		if n := countRows(t, b, loc, "versions"); n != 5 {
			t.Errorf("%d rows in versions, want 5 (the distinct pairs with a model or rules)", n)
		}
		verifyS(t, s)
	})
}

// TestConformanceReplayAnswer posts decisions again, as a replay after a crash does: the
// decision that posted an entry is answered posted, another event with its id duplicate,
// in the same batch, in a later one and after a reopen.
func TestConformanceReplayAnswer(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		loc := b.newLoc(t)
		opts := Options{DefaultLimit: flatLimit(1000)}
		s := openStore(t, b, loc, opts)
		first := []pipeline.PostRequest{
			decided("t1", 100, "m", "r", "p", "m", 300),
			decided("t2", 101, "m", "r", "p", "m", 400),
			decided("t1", 100, "m", "r", "p", "m", 300), // the same decision twice in a batch
			decided("t1", 102, "m", "r", "p", "m", 300), // another event with the id
			decided("t3", 103, "m", "r", "p", "m", 999), // rejected: nothing stored
		}
		if st, want := statuses(postS(t, s, first...)), "posted posted posted duplicate rejected(ledger:insufficient_funds)"; st != want {
			t.Fatalf("first run: %s, want %s", st, want)
		}
		replay := func(when string) {
			t.Helper()
			got := postS(t, s,
				decided("t1", 100, "m", "r", "p", "m", 300), // the decision that posted t1
				decided("t2", 101, "other", "r", "p", "m", 400),
				decided("t2", 200, "m", "r", "p", "m", 400), // another event with t2's id
				req("t1", "p", "m", 300, eur),               // no Seq: never the same decision
				decided("t3", 103, "m", "r", "p", "m", 999), // rejected again: not stored
			)
			if st, want := statuses(got), "posted posted duplicate duplicate rejected(ledger:insufficient_funds)"; st != want {
				t.Errorf("%s: %s, want %s", when, st, want)
			}
			if p := balanceS(t, s, "p"); p != -700 {
				t.Errorf("%s: p = %d, want -700 (nothing posted twice)", when, p)
			}
			st, err := s.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Entries != 2 {
				t.Errorf("%s: %d entries, want 2", when, st.Entries)
			}
		}
		replay("replay")
		verifyS(t, s)
		s.Close()
		s = openStore(t, b, loc, opts)
		replay("replay after reopen")
		verifyS(t, s)
	})
}

// countRows counts a table's rows behind the store's back.
func countRows(t testing.TB, b backend, loc, table string) int {
	t.Helper()
	q := "SELECT count(*) FROM " + table
	var n int
	if b.name == "sqlite" {
		db, err := sql.Open("sqlite", "file:"+uriPath.Replace(loc)+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// oldLedger is a ledger as the schema before provenance stored it: t1, 250 from p to m.
const oldLedger = `INSERT INTO accounts(id, currency, kind, credit_limit, balance, created_ts) VALUES
		('p', 'EUR', 'customer', 1000, -250, 1), ('m', 'EUR', 'merchant', 0, 250, 1);
	INSERT INTO entries(seq, tx_id, ts, posted_at, currency, amount) VALUES (1, 't1', 1700000000000, 1, 'EUR', 250);
	INSERT INTO postings(entry_seq, account_id, amount) VALUES (1, 'p', -250), (1, 'm', 250);`

// makeOldLedger creates, at a fresh location of b, a ledger with the schema of the
// migrations before provenance (SQLite's 1-2, PostgreSQL's 1) and the rows of oldLedger.
func makeOldLedger(t *testing.T, b backend) string {
	t.Helper()
	loc := b.newLoc(t)
	if b.name == "sqlite" {
		db, err := sql.Open("sqlite", "file:"+uriPath.Replace(loc))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, m := range migrations[:2] {
			if _, err := db.Exec(m); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec(oldLedger + "PRAGMA user_version = 2"); err != nil {
			t.Fatal(err)
		}
		return loc
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, q := range []string{createMigrationsTable, pgMigrations[0], `INSERT INTO schema_migrations(version) VALUES (1)`, oldLedger} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return loc
}

// TestConformanceMigrateProvenance opens a ledger made by the schema before provenance:
// the migration adds the columns, the old entry has none, and posting goes on.
func TestConformanceMigrateProvenance(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		loc := makeOldLedger(t, b)
		s := openStore(t, b, loc, Options{DefaultLimit: flatLimit(1000)})
		verifyS(t, s)
		if got := balanceS(t, s, "p"); got != -250 {
			t.Errorf("p = %d after the migration, want -250", got)
		}
		got := postS(t, s, decided("t1", 0, "m", "r", "p", "m", 250), decided("t1", 1, "m", "r", "p", "m", 250),
			decided("t2", 2, "m", "r", "p", "m", 50))
		if st, want := statuses(got), "duplicate duplicate posted"; st != want {
			t.Errorf("after the migration: %s, want %s (an entry without decision_seq is no replay)", st, want)
		}
		entries := exportS(t, s)
		if p := provenanceOf(entries["t1"]); p != (provenance{}) {
			t.Errorf("old entry exported with %+v, want none", p)
		}
		if p := provenanceOf(entries["t2"]); p != (provenance{2, "m", "r"}) {
			t.Errorf("new entry exported with %+v", p)
		}
		verifyS(t, s)
		s.Close()
		// Migrated once: a second open applies nothing and sees the same ledger.
		s = openStore(t, b, loc, Options{DefaultLimit: flatLimit(1000)})
		if st := statuses(postS(t, s, decided("t2", 2, "m", "r", "p", "m", 50))); st != "posted" {
			t.Errorf("replay after reopening the migrated ledger: %s", st)
		}
		verifyS(t, s)
		if b.name == "postgres" {
			if n := countRows(t, b, loc, "schema_migrations"); n != len(pgMigrations) {
				t.Errorf("%d rows in schema_migrations, want %d", n, len(pgMigrations))
			}
		}
	})
}

// TestVersionsNeverRepeat posts many batches naming a few version pairs: each pair is
// stored once.
func TestVersionsNeverRepeat(t *testing.T) {
	loc := sqliteBackend.newLoc(t)
	s := openStore(t, sqliteBackend, loc, Options{DefaultLimit: flatLimit(1 << 40)})
	seq := uint64(0)
	for batch := range 10 {
		reqs := make([]pipeline.PostRequest, 50)
		for i := range reqs {
			seq++
			reqs[i] = decided(fmt.Sprint("t", seq), seq, fmt.Sprint("model-", i%3), fmt.Sprint("rules-", batch%2), "p", "m", 1)
		}
		postS(t, s, reqs...)
	}
	if n := countRows(t, sqliteBackend, loc, "versions"); n != 6 {
		t.Errorf("%d rows in versions, want 6", n)
	}
}

// TestVerifyUnknownVersion removes the versions behind the store's back: Verify names the
// first entry that refers to one.
func TestVerifyUnknownVersion(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		loc := b.newLoc(t)
		s := openStore(t, b, loc, Options{DefaultLimit: flatLimit(1000)})
		postS(t, s, req("t1", "p", "m", 1, eur), decided("t2", 2, "m", "r", "p", "m", 1))
		verifyS(t, s)
		execSQL(t, b, loc, `DELETE FROM versions`)
		err := s.Verify(context.Background())
		var ve *VerifyError
		if !errors.As(err, &ve) || ve.Violation != UnknownVersion || ve.TxID != "t2" {
			t.Fatalf("Verify = %v, want %s for t2", err, UnknownVersion)
		}
	})
}
