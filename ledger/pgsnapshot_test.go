package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// snapshotLedger posts batches of payments between a few payers and merchants on s and
// returns what each account's balance must be.
type snapshotLedger struct {
	n        int
	balances map[string]int64
}

func (l *snapshotLedger) post(t *testing.T, s Store, batches, size int) {
	t.Helper()
	if l.balances == nil {
		l.balances = map[string]int64{}
	}
	for range batches {
		reqs := make([]pipeline.PostRequest, size)
		for i := range reqs {
			l.n++
			reqs[i] = req(fmt.Sprintf("tx-%06d", l.n), fmt.Sprint("p", l.n%7), fmt.Sprint("m", l.n%5), int64(1+l.n%91), eur)
		}
		for _, r := range postS(t, s, reqs...) {
			if r.Status != pipeline.LedgerPosted {
				t.Fatalf("%s: %s %s", r.TxID, r.Status, r.Reason)
			}
			l.balances[r.Payer] -= r.Amount
			l.balances[r.Payee] += r.Amount
		}
	}
}

// check compares every balance s reports with the model.
func (l *snapshotLedger) check(t *testing.T, s Store, when string) {
	t.Helper()
	for id, want := range l.balances {
		if got := balanceS(t, s, id); got != want {
			t.Errorf("%s: %s = %d, want %d", when, id, got, want)
		}
	}
}

// snapshotRow reads the balance snapshot row of the ledger at loc; ok is false when there
// is none, checksum nil when it is NULL.
func snapshotRow(t *testing.T, loc string) (pos int64, checksum *int64, ok bool) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	err = c.QueryRow(ctx, `SELECT position, checksum FROM balance_snapshot`).Scan(&pos, &checksum)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return pos, checksum, true
}

// crash drops a PostgresStore's connection as a killed process would, without the
// snapshot Close writes, and waits until the server has released its writer lock.
func crash(t *testing.T, s Store, loc string) {
	t.Helper()
	ps := s.(*PostgresStore)
	pid := ps.conn.PgConn().PID()
	if err := ps.conn.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ps.Close()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for end := time.Now().Add(30 * time.Second); ; {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("the server still runs the crashed writer's backend %d after 30 s", pid)
		}
		time.Sleep(5 * time.Millisecond) // polling the server, not waiting for a goroutine
	}
}

// TestPostgresSnapshotOlderThanJournal posts past the last balance snapshot and stops
// without writing another: a read-only store and the reopened writer both find the
// balances from the snapshot and the journal after it, and the writer stores a current
// snapshot.
func TestPostgresSnapshotOlderThanJournal(t *testing.T) {
	t.Parallel()
	loc := newPostgresSchema(t)
	opts := Options{DefaultLimit: flatLimit(1 << 40), BalanceSnapshotEvery: 100}
	s := openStore(t, pgBackend, loc, opts)
	var l snapshotLedger
	l.post(t, s, 5, 30) // snapshots after entries 120 (in the 4th batch)
	if pos, _, _ := snapshotRow(t, loc); pos != 120 {
		t.Fatalf("snapshot at %d, want 120", pos)
	}
	l.post(t, s, 2, 30) // 180 and 210, no snapshot
	crash(t, s, loc)
	if pos, _, _ := snapshotRow(t, loc); pos != 120 {
		t.Fatalf("snapshot at %d after the crash, want 120", pos)
	}

	ro := openStore(t, pgBackend, loc, Options{ReadOnly: true})
	l.check(t, ro, "read-only")
	verifyS(t, ro)
	ro.Close()
	if pos, _, _ := snapshotRow(t, loc); pos != 120 {
		t.Fatalf("the read-only store moved the snapshot to %d", pos)
	}

	s = openStore(t, pgBackend, loc, opts)
	l.check(t, s, "reopened")
	if pos, cs, _ := snapshotRow(t, loc); pos != 210 || cs == nil {
		t.Fatalf("snapshot at %d (checksum %v) after reopening, want 210", pos, cs)
	}
	verifyS(t, s)
	l.post(t, s, 3, 30)
	l.check(t, s, "posted after reopening")
	verifyS(t, s)
	s.Close()
	if pos, _, _ := snapshotRow(t, loc); pos != 300 {
		t.Fatalf("snapshot at %d after Close, want 300", pos)
	}
	s = openStore(t, pgBackend, loc, opts)
	l.check(t, s, "reopened after Close")
}

// TestPostgresSnapshotMissing removes the balance snapshot and garbles the stored
// balances: the journal alone gives every balance back.
func TestPostgresSnapshotMissing(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, sql string }{
		{"no row", `DELETE FROM balance_snapshot; UPDATE accounts SET balance = 12345`},
		{"checksum unknown", `UPDATE balance_snapshot SET checksum = NULL; UPDATE accounts SET balance = 12345`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			loc := newPostgresSchema(t)
			opts := Options{DefaultLimit: flatLimit(1 << 40)}
			s := openStore(t, pgBackend, loc, opts)
			var l snapshotLedger
			l.post(t, s, 4, 25)
			s.Close()
			execSQL(t, pgBackend, loc, tt.sql)

			ro := openStore(t, pgBackend, loc, Options{ReadOnly: true})
			l.check(t, ro, "read-only")
			ro.Close()

			s = openStore(t, pgBackend, loc, opts)
			l.check(t, s, "reopened")
			if pos, cs, ok := snapshotRow(t, loc); !ok || pos != 100 || cs == nil {
				t.Fatalf("snapshot row %v at %d (checksum %v) after reopening, want one at 100", ok, pos, cs)
			}
			verifyS(t, s) // the stored balances are right again
			l.post(t, s, 1, 25)
			l.check(t, s, "posted after reopening")
			verifyS(t, s)
		})
	}
}

// TestPostgresSnapshotTorn damages the stored snapshot so that its balances and position
// no longer agree (as a snapshot written in pieces would): Verify names the account, the
// checksum gives the damage away when a store opens, and the balances come from the
// journal.
func TestPostgresSnapshotTorn(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, sql string
		account   string // the account Verify names, "" when it names none
	}{
		{"one balance off", `UPDATE accounts SET balance = balance + 7 WHERE id = 'm1'`, "m1"},
		{"position moved back", `UPDATE balance_snapshot SET position = position - 3`, "?"},
		{"half the balances older", "", "?"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			loc := newPostgresSchema(t)
			opts := Options{DefaultLimit: flatLimit(1 << 40)}
			s := openStore(t, pgBackend, loc, opts)
			var l snapshotLedger
			l.post(t, s, 3, 20)
			query := tt.sql
			if query == "" {
				// Keep the balances of p0-p3 at entry 60, snapshot at 120, then put
				// the old balances back: a snapshot of which half is older.
				s.Close()
				ctx := context.Background()
				c, err := pgx.Connect(ctx, loc)
				if err != nil {
					t.Fatal(err)
				}
				rows, err := c.Query(ctx, `SELECT id, balance FROM accounts WHERE id IN ('p0', 'p1', 'p2', 'p3')`)
				if err != nil {
					t.Fatal(err)
				}
				old := map[string]int64{}
				for rows.Next() {
					var id string
					var b int64
					if err := rows.Scan(&id, &b); err != nil {
						t.Fatal(err)
					}
					old[id] = b
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				c.Close(ctx)
				s = openStore(t, pgBackend, loc, opts)
				l.post(t, s, 3, 20)
				for id, b := range old {
					query += fmt.Sprintf("UPDATE accounts SET balance = %d WHERE id = '%s';", b, id)
				}
			}
			s.Close()
			execSQL(t, pgBackend, loc, query)

			ro := openStore(t, pgBackend, loc, Options{ReadOnly: true})
			err := ro.Verify(context.Background())
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Violation != BalanceMismatch || (tt.account != "?" && ve.Account != tt.account) {
				t.Fatalf("Verify of the torn snapshot = %v, want %s", err, BalanceMismatch)
			}
			l.check(t, ro, "read-only")
			ro.Close()

			s = openStore(t, pgBackend, loc, opts)
			l.check(t, s, "reopened")
			verifyS(t, s) // the writer stored a whole snapshot again
			l.post(t, s, 1, 20)
			l.check(t, s, "posted after reopening")
			verifyS(t, s)
		})
	}
}

// TestPostgresSnapshotFailedBatch fails a batch that writes a snapshot: neither the
// snapshot nor the batch is stored, and the retry and a reopen see the right balances.
func TestPostgresSnapshotFailedBatch(t *testing.T) {
	t.Parallel()
	for _, stage := range []string{"postings", "commit"} {
		t.Run(stage, func(t *testing.T) {
			t.Parallel()
			loc := newPostgresSchema(t)
			opts := Options{DefaultLimit: flatLimit(1 << 40), BalanceSnapshotEvery: 50}
			s := openStore(t, pgBackend, loc, opts)
			var l snapshotLedger
			l.post(t, s, 2, 20) // 40 entries: no snapshot yet
			c := coreOf(s)
			c.hookTest = func(st string) error {
				if st == stage {
					return errors.New("injected")
				}
				return nil
			}
			// The batch creates accounts too, whose rows go with it.
			reqs := []pipeline.PostRequest{req("f1", "new-p", "m1", 5, eur)}
			for i := range 19 {
				reqs = append(reqs, req(fmt.Sprint("f", i+2), "p1", "new-m", 3, eur))
			}
			if err := s.Post(context.Background(), reqs); err == nil {
				t.Fatal("Post succeeded")
			}
			c.hookTest = nil
			if pos, _, _ := snapshotRow(t, loc); pos != 0 {
				t.Fatalf("snapshot at %d after the failed batch, want 0", pos)
			}
			l.check(t, s, "after the failed batch")
			l.post(t, s, 1, 20) // 60 entries: the snapshot
			if pos, _, _ := snapshotRow(t, loc); pos != 60 {
				t.Fatalf("snapshot at %d, want 60", pos)
			}
			verifyS(t, s)
			crash(t, s, loc)
			s = openStore(t, pgBackend, loc, opts)
			l.check(t, s, "reopened")
			verifyS(t, s)
		})
	}
}

// TestPostgresSnapshotSync writes the snapshot on Sync.
func TestPostgresSnapshotSync(t *testing.T) {
	t.Parallel()
	loc := newPostgresSchema(t)
	opts := Options{DefaultLimit: flatLimit(1 << 40)}
	s := openStore(t, pgBackend, loc, opts)
	var l snapshotLedger
	l.post(t, s, 2, 10)
	if pos, _, _ := snapshotRow(t, loc); pos != 0 {
		t.Fatalf("snapshot at %d before Sync, want 0", pos)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pos, _, _ := snapshotRow(t, loc); pos != 20 {
		t.Fatalf("snapshot at %d after Sync, want 20", pos)
	}
	verifyS(t, s)
	crash(t, s, loc)
	s = openStore(t, pgBackend, loc, opts)
	l.check(t, s, "reopened")
}

// TestPostgresVerifyDuplicateSeq writes an entry with a used sequence number behind the
// store's back (PostgreSQL's entries have no unique index on seq): Verify names it.
func TestPostgresVerifyDuplicateSeq(t *testing.T) {
	t.Parallel()
	loc := newPostgresSchema(t)
	s := openStore(t, pgBackend, loc, Options{DefaultLimit: flatLimit(1000)})
	postS(t, s, req("t1", "p", "m", 100, eur), req("t2", "p", "m", 200, eur))
	verifyS(t, s)
	execSQL(t, pgBackend, loc, `INSERT INTO entries(seq, tx_id, ts, posted_at, currency, amount) VALUES (2, 'ghost', 0, 0, 'EUR', 1)`)
	err := s.Verify(context.Background())
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Violation != DuplicateSeq || ve.Seq != 2 {
		t.Fatalf("Verify = %v, want %s at entry 2", err, DuplicateSeq)
	}
}
