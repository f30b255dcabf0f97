package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraudpipe/fraudpipe/ledger"
	"github.com/fraudpipe/fraudpipe/pipeline"
)

// testLedger makes a SQLite ledger with two payments and a chargeback.
func testLedger(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := ledger.OpenSQLite(path, ledger.Options{DefaultLimit: func(pipeline.Currency) int64 { return 100000 }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	eur, _ := pipeline.LookupCurrency("EUR")
	reqs := []pipeline.PostRequest{
		{TxID: "tx-1", TS: 1_764_000_000_000, Payer: "acct-1", Payee: "m-1", Amount: 12345, Currency: eur},
		{TxID: "tx-2", TS: 1_764_000_001_000, Payer: "acct-1", Payee: "m-2", Amount: 500, Currency: eur},
	}
	if err := s.Post(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Reverse(context.Background(), "tx-2", 1_764_000_002_000); err != nil || r.Status != pipeline.LedgerPosted {
		t.Fatalf("Reverse = %+v, %v", r, err)
	}
	return path
}

func TestLedgerBalance(t *testing.T) {
	path := testLedger(t)
	code, out, errOut := fraudpipe(t, "ledger", "balance", "--ledger", path, "acct-1")
	if code != 0 || out != "acct-1 EUR customer balance -123.45 limit 1000.00\n" {
		t.Errorf("balance: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = fraudpipe(t, "ledger", "balance", "--ledger", path, "nobody")
	if code != 1 || !strings.Contains(errOut, `"nobody": account not found`) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("unknown account: exit %d, stderr %q", code, errOut)
	}
}

func TestLedgerVerify(t *testing.T) {
	path := testLedger(t)
	code, out, errOut := fraudpipe(t, "ledger", "verify", "--ledger", path)
	if code != 0 || out != "ledger ok: 3 entries, 3 accounts, 1 currencies\n" {
		t.Errorf("verify: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Break an invariant behind the ledger's back.
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("ledger:\n  path: "+path+"\n"), 0o644)
	tamper(t, path, `UPDATE accounts SET balance = balance + 1 WHERE id = 'm-1'`)
	code, _, errOut = fraudpipe(t, "ledger", "verify", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "balance_mismatch") || !strings.Contains(errOut, `"m-1"`) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("verify of a broken ledger: exit %d, stderr %q", code, errOut)
	}
}

func TestLedgerExport(t *testing.T) {
	path := testLedger(t)
	code, out, errOut := fraudpipe(t, "ledger", "export", "--ledger", path, "--since", "2000-01-01")
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("export: %d lines:\n%s", len(lines), out)
	}
	var e ledger.ExportedEntry
	if err := json.Unmarshal([]byte(lines[2]), &e); err != nil {
		t.Fatal(err)
	}
	if e.TxID != "reversal:tx-2" || e.Reverses != "tx-2" || e.Amount != 500 || len(e.Postings) != 2 || e.TS != "2025-11-24T16:00:02.000Z" {
		t.Errorf("reversal exported as %s", lines[2])
	}
	code, out, _ = fraudpipe(t, "ledger", "export", "--ledger", path, "--since", "2999-01-01T00:00:00Z")
	if code != 0 || out != "" {
		t.Errorf("export of the future: exit %d, %q", code, out)
	}
}

func TestLedgerCommandErrors(t *testing.T) {
	path := testLedger(t)
	missing := filepath.Join(t.TempDir(), "missing.db")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ledger"}, 2, "missing command"},
		{[]string{"ledger", "frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"ledger", "balance", "--ledger", path}, 2, "missing ACCOUNT"},
		{[]string{"ledger", "balance", "--ledger", path, "a", "b"}, 2, `unexpected argument "b"`},
		{[]string{"ledger", "verify", "--ledger", missing}, 1, "no ledger at " + missing},
		{[]string{"ledger", "verify", "--ledger", path, "--url", "postgres://x"}, 2, "exclude each other"},
		{[]string{"ledger", "export", "--ledger", path, "--since", "yesterday"}, 2, `--since "yesterday"`},
		{[]string{"ledger", "verify", "--bogus"}, 2, "bogus"},
	} {
		code, _, errOut := fraudpipe(t, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q on one line", tt.args, code, errOut, tt.code, tt.want)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a ledger command created a ledger file")
	}
	for _, args := range [][]string{{"ledger", "--help"}, {"ledger", "balance", "--help"}, {"ledger", "verify", "--help"}, {"ledger", "export", "--help"}} {
		code, out, _ := fraudpipe(t, args...)
		if code != 0 || !strings.Contains(out, "Usage: fraudpipe ledger") {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
}

// tamper changes a SQLite ledger with SQL, as only a bug or an attacker would.
func tamper(t *testing.T, path, sql string) {
	t.Helper()
	db, err := openSQLiteDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(sql); err != nil {
		t.Fatal(err)
	}
}

func openSQLiteDB(path string) (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
}

// TestLedgerCommandsPostgres runs the commands against PostgreSQL (--url) when
// FRAUDPIPE_TEST_POSTGRES is set (scripts/with-postgres sets it).
func TestLedgerCommandsPostgres(t *testing.T) {
	url := os.Getenv("FRAUDPIPE_TEST_POSTGRES")
	if url == "" {
		t.Skip("postgres: FRAUDPIPE_TEST_POSTGRES is unset (run the tests under scripts/with-postgres)")
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	schema := fmt.Sprintf("cli_%d", time.Now().UnixNano()%1e9)
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	url += sep + "search_path=" + schema
	s, err := ledger.OpenPostgres(ctx, url, ledger.Options{DefaultLimit: func(pipeline.Currency) int64 { return 100000 }})
	if err != nil {
		t.Fatal(err)
	}
	eur, _ := pipeline.LookupCurrency("EUR")
	if err := s.Post(ctx, []pipeline.PostRequest{{TxID: "tx-1", TS: 1, Payer: "acct-1", Payee: "m-1", Amount: 250, Currency: eur}}); err != nil {
		t.Fatal(err)
	}
	// The commands read beside the running writer.
	defer s.Close()
	if code, out, errOut := fraudpipe(t, "ledger", "balance", "--url", url, "m-1"); code != 0 || out != "m-1 EUR merchant balance 2.50 limit 0.00\n" {
		t.Errorf("balance: exit %d, %q %q", code, out, errOut)
	}
	if code, out, errOut := fraudpipe(t, "ledger", "verify", "--url", url); code != 0 || !strings.HasPrefix(out, "ledger ok: 1 entries") {
		t.Errorf("verify: exit %d, %q %q", code, out, errOut)
	}
	if code, out, errOut := fraudpipe(t, "ledger", "export", "--url", url); code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"tx_id":"tx-1"`) {
		t.Errorf("export: exit %d, %q %q", code, out, errOut)
	}
}
