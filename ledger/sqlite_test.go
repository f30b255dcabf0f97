package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

var (
	eur = pipeline.Currency{Code: "EUR", Digits: 2}
	usd = pipeline.Currency{Code: "USD", Digits: 2}
	jpy = pipeline.Currency{Code: "JPY", Digits: 0}
)

func flatLimit(n int64) func(pipeline.Currency) int64 {
	return func(pipeline.Currency) int64 { return n }
}

func openTest(t testing.TB, path string, opts Options) *SQLiteStore {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "ledger.db")
	}
	s, err := OpenSQLite(path, opts)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func req(id, payer, payee string, amount int64, c pipeline.Currency) pipeline.PostRequest {
	return pipeline.PostRequest{TxID: id, TS: 1_700_000_000_000, Payer: payer, Payee: payee, Amount: amount, Currency: c}
}

func post(t testing.TB, s *SQLiteStore, reqs ...pipeline.PostRequest) []pipeline.PostRequest {
	t.Helper()
	if err := s.Post(context.Background(), reqs); err != nil {
		t.Fatalf("Post: %v", err)
	}
	return reqs
}

func balance(t testing.TB, s *SQLiteStore, id string) Account {
	t.Helper()
	a, err := s.Balance(context.Background(), id)
	if err != nil {
		t.Fatalf("Balance(%q): %v", id, err)
	}
	return a
}

func statuses(reqs []pipeline.PostRequest) string {
	var b strings.Builder
	for i, r := range reqs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.Status.String())
		if r.Reason != "" {
			b.WriteString("(" + r.Reason + ")")
		}
	}
	return b.String()
}

func verify(t testing.TB, s *SQLiteStore) {
	t.Helper()
	if err := s.Verify(context.Background()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// rawDB opens a second connection to the store's file, as another program would.
func rawDB(t testing.TB, s *SQLiteStore) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+uriPath.Replace(s.path)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPostBalancesBothSides(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	s := openTest(t, "", Options{DefaultLimit: flatLimit(50_000), Now: func() time.Time { return now }})
	got := post(t, s, req("t1", "acct-1", "m-1", 12_345, eur), req("t2", "acct-2", "m-1", 100, eur))
	if st := statuses(got); st != "posted posted" {
		t.Fatalf("statuses = %s", st)
	}
	want := map[string]Account{
		"acct-1": {ID: "acct-1", Currency: eur, Kind: KindCustomer, Limit: 50_000, Balance: -12_345, Created: now.UnixMilli()},
		"acct-2": {ID: "acct-2", Currency: eur, Kind: KindCustomer, Limit: 50_000, Balance: -100, Created: now.UnixMilli()},
		"m-1":    {ID: "m-1", Currency: eur, Kind: KindMerchant, Limit: 0, Balance: 12_445, Created: now.UnixMilli()},
	}
	for id, w := range want {
		if a := balance(t, s, id); a != w {
			t.Errorf("Balance(%q) = %+v, want %+v", id, a, w)
		}
	}
	if _, err := s.Balance(context.Background(), "nobody"); !errors.Is(err, ErrAccountNotFound) {
		t.Errorf("Balance(nobody) error = %v, want ErrAccountNotFound", err)
	}

	// The rows on disk: one entry with two postings summing to zero.
	db := rawDB(t, s)
	var n, sum, postedAt int64
	if err := db.QueryRow(`SELECT count(*), sum(amount) FROM postings WHERE entry_seq = (SELECT seq FROM entries WHERE tx_id = 't1')`).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != 2 || sum != 0 {
		t.Errorf("t1 has %d postings summing to %d, want 2 and 0", n, sum)
	}
	var ts int64
	if err := db.QueryRow(`SELECT ts, posted_at FROM entries WHERE tx_id = 't1'`).Scan(&ts, &postedAt); err != nil {
		t.Fatal(err)
	}
	if ts != 1_700_000_000_000 || postedAt != now.UnixMilli() {
		t.Errorf("t1 ts, posted_at = %d, %d", ts, postedAt)
	}
	verify(t, s)
}

func TestLimits(t *testing.T) {
	type batch struct {
		amounts []int64 // payments from "p" to "m", one request each
		want    string
	}
	tests := []struct {
		name    string
		limit   int64
		batches []batch
		balance int64 // of "p" at the end
	}{
		{"exactly the limit", 1000, []batch{{[]int64{1000}, "posted"}}, -1000},
		{"one over the limit", 1000, []batch{{[]int64{1001}, "rejected(ledger:insufficient_funds)"}}, 0},
		{"reach the limit then one more", 1000, []batch{
			{[]int64{400, 600}, "posted posted"},
			{[]int64{1}, "rejected(ledger:insufficient_funds)"},
		}, -1000},
		{"in one batch the first posts and the second is rejected", 1000, []batch{
			{[]int64{700, 400, 300}, "posted rejected(ledger:insufficient_funds) posted"},
		}, -1000},
		{"no credit", 0, []batch{{[]int64{1}, "rejected(ledger:insufficient_funds)"}}, 0},
		{"across batches", 1000, []batch{
			{[]int64{999}, "posted"},
			{[]int64{2, 1}, "rejected(ledger:insufficient_funds) posted"},
		}, -1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, "", Options{DefaultLimit: flatLimit(tt.limit)})
			n := 0
			for i, b := range tt.batches {
				var reqs []pipeline.PostRequest
				for _, a := range b.amounts {
					n++
					reqs = append(reqs, req(fmt.Sprint("t", n), "p", "m", a, eur))
				}
				if st := statuses(post(t, s, reqs...)); st != b.want {
					t.Errorf("batch %d: statuses = %s, want %s", i, st, b.want)
				}
			}
			if tt.balance == 0 { // a rejected first payment creates no account
				if _, err := s.Balance(context.Background(), "p"); !errors.Is(err, ErrAccountNotFound) {
					t.Errorf("Balance(p) error = %v, want ErrAccountNotFound", err)
				}
			} else if b := balance(t, s, "p").Balance; b != tt.balance {
				t.Errorf("balance of p = %d, want %d", b, tt.balance)
			}
			verify(t, s)
		})
	}
}

func TestRejectedFirstPaymentCreatesNoAccount(t *testing.T) {
	s := openTest(t, "", Options{DefaultLimit: flatLimit(10)})
	if st := statuses(post(t, s, req("t1", "p", "m", 11, eur))); st != "rejected(ledger:insufficient_funds)" {
		t.Fatalf("statuses = %s", st)
	}
	for _, id := range []string{"p", "m"} {
		if _, err := s.Balance(context.Background(), id); !errors.Is(err, ErrAccountNotFound) {
			t.Errorf("Balance(%q) error = %v, want ErrAccountNotFound", id, err)
		}
	}
}

func TestMerchantAsPayerHasNoLimit(t *testing.T) {
	s := openTest(t, "", Options{DefaultLimit: flatLimit(10)})
	post(t, s, req("t1", "p", "m", 5, eur))
	// m is a merchant account: no limit applies when it pays.
	if st := statuses(post(t, s, req("t2", "m", "m2", 1_000_000, eur))); st != "posted" {
		t.Fatalf("statuses = %s", st)
	}
	if a := balance(t, s, "m"); a.Balance != 5-1_000_000 || a.Kind != KindMerchant {
		t.Errorf("m = %+v", a)
	}
	verify(t, s)
}

func TestDuplicates(t *testing.T) {
	s := openTest(t, "", Options{DefaultLimit: flatLimit(1000)})
	got := post(t, s,
		req("t1", "p", "m", 10, eur),
		req("t1", "p", "m", 10, eur),    // earlier in the batch
		req("t2", "p", "m", 5000, eur),  // rejected: not in the ledger
		req("t2", "p", "m", 20, eur),    // so this one posts
		req("t3", "p2", "m", 30, eur),   // different accounts do not matter
		req("t3", "p", "m", 30000, eur), // a duplicate is not checked for funds
	)
	if st, want := statuses(got), "posted duplicate rejected(ledger:insufficient_funds) posted posted duplicate"; st != want {
		t.Fatalf("batch 1: %s, want %s", st, want)
	}
	got = post(t, s, req("t1", "p", "m", 10, eur), req("t4", "p", "m", 1, eur), req("t2", "x", "y", 1, usd))
	if st, want := statuses(got), "duplicate posted duplicate"; st != want {
		t.Fatalf("batch 2: %s, want %s", st, want)
	}
	if b := balance(t, s, "p").Balance; b != -31 {
		t.Errorf("balance of p = %d, want -31", b)
	}
	if b := balance(t, s, "m").Balance; b != 61 {
		t.Errorf("balance of m = %d, want 61", b)
	}
	verify(t, s)
}

func TestCurrencyMismatch(t *testing.T) {
	s := openTest(t, "", Options{DefaultLimit: flatLimit(1000)})
	post(t, s, req("t1", "p", "m", 10, eur), req("t2", "q", "n", 10, usd))
	tests := []struct {
		name string
		r    pipeline.PostRequest
		want string
	}{
		{"payer in another currency", req("t3", "p", "new-m", 1, usd), "rejected(ledger:currency_mismatch)"},
		{"payee in another currency", req("t4", "new-p", "m", 1, usd), "rejected(ledger:currency_mismatch)"},
		{"both in another currency", req("t5", "p", "m", 1, jpy), "rejected(ledger:currency_mismatch)"},
		{"payer and payee differ", req("t6", "p", "n", 1, eur), "rejected(ledger:currency_mismatch)"},
		{"same currency", req("t7", "p", "m", 1, eur), "posted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st := statuses(post(t, s, tt.r)); st != tt.want {
				t.Errorf("status = %s, want %s", st, tt.want)
			}
		})
	}
	for _, id := range []string{"new-p", "new-m"} {
		if _, err := s.Balance(context.Background(), id); !errors.Is(err, ErrAccountNotFound) {
			t.Errorf("Balance(%q) error = %v, want ErrAccountNotFound", id, err)
		}
	}
	verify(t, s)
}

func TestInvalidRequests(t *testing.T) {
	s := openTest(t, "", Options{DefaultLimit: flatLimit(1000)})
	tests := []struct {
		name string
		r    pipeline.PostRequest
		want string
	}{
		{"empty id", req("", "p", "m", 1, eur), ReasonInvalidRequest},
		{"empty payer", req("t1", "", "m", 1, eur), ReasonInvalidRequest},
		{"empty payee", req("t1", "p", "", 1, eur), ReasonInvalidRequest},
		{"zero amount", req("t1", "p", "m", 0, eur), ReasonInvalidRequest},
		{"negative amount", req("t1", "p", "m", -5, eur), ReasonInvalidRequest},
		{"no currency", req("t1", "p", "m", 1, pipeline.Currency{}), ReasonInvalidRequest},
		{"same account", req("t1", "p", "p", 1, eur), ReasonSameAccount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := post(t, s, tt.r)
			if got[0].Status != pipeline.LedgerRejected || got[0].Reason != tt.want {
				t.Errorf("got %s, want rejected(%s)", statuses(got), tt.want)
			}
		})
	}
	// An invalid request does not use up its id.
	if st := statuses(post(t, s, req("t1", "p", "m", 1, eur))); st != "posted" {
		t.Errorf("valid t1: %s", st)
	}
}

func TestBalanceOverflow(t *testing.T) {
	s := openTest(t, "", Options{DefaultLimit: flatLimit(1 << 62)})
	const big = 1 << 62
	got := post(t, s, req("t1", "p1", "m", big, eur), req("t2", "p2", "m", big, eur), req("t3", "p3", "m", big, eur))
	if st, want := statuses(got), "posted rejected(ledger:balance_overflow) rejected(ledger:balance_overflow)"; st != want {
		// 2^62 + 2^62 = 2^63 overflows
		t.Fatalf("statuses = %s, want %s", st, want)
	}
	verify(t, s)
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := OpenSQLite(path, Options{DefaultLimit: flatLimit(1000)})
	if err != nil {
		t.Fatal(err)
	}
	post(t, s, req("t1", "p", "m", 600, eur), req("t2", "q", "m", 5, eur), req("t3", "p", "m", 500, eur))
	before := map[string]Account{}
	for _, id := range []string{"p", "q", "m"} {
		before[id] = balance(t, s, id)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Post(context.Background(), []pipeline.PostRequest{req("t9", "p", "m", 1, eur)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Post after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// A new default limit applies to new accounts only.
	s = openTest(t, path, Options{DefaultLimit: flatLimit(5)})
	for id, w := range before {
		if a := balance(t, s, id); a != w {
			t.Errorf("after reopen %q = %+v, want %+v", id, a, w)
		}
	}
	got := post(t, s,
		req("t1", "p", "m", 600, eur), // duplicate of the first run
		req("t3", "x", "y", 1, eur),   // t3 was rejected, so its id is free
		req("t4", "p", "m", 400, eur), // p keeps its limit of 1000
		req("t5", "p", "m", 1, eur),   // over it
		req("t6", "r", "m", 6, eur),   // a new account gets the new limit of 5
	)
	if st, want := statuses(got), "duplicate posted posted rejected(ledger:insufficient_funds) rejected(ledger:insufficient_funds)"; st != want {
		t.Errorf("after reopen: %s, want %s", st, want)
	}
	if a := balance(t, s, "p"); a.Balance != -1000 || a.Limit != 1000 {
		t.Errorf("p = %+v", a)
	}
	verify(t, s)
}

func TestVerifyNamesViolation(t *testing.T) {
	tests := []struct {
		name    string
		corrupt string
		want    Violation
		account string
		txID    string
	}{
		{"posting amount changed", `UPDATE postings SET amount = amount + 1 WHERE rowid = 3`, UnbalancedEntry, "", "t2"},
		{"both postings changed", `UPDATE postings SET amount = amount * 2 WHERE entry_seq = 1`, EntryAmount, "", "t1"},
		{"posting deleted", `DELETE FROM postings WHERE rowid = 1`, UnbalancedEntry, "", "t1"},
		{"entry deleted", `DELETE FROM entries WHERE seq = 2`, OrphanPosting, "q", ""},
		{"posting to unknown account", `UPDATE postings SET account_id = 'ghost' WHERE rowid = 2`, UnknownAccount, "ghost", "t1"},
		{"account currency changed", `UPDATE accounts SET currency = 'USD' WHERE id = 'm'`, CurrencyMismatch, "m", "t1"},
		{"balance changed", `UPDATE accounts SET balance = balance - 7 WHERE id = 'q'`, BalanceMismatch, "q", ""},
		{"limit lowered", `UPDATE accounts SET credit_limit = 10 WHERE id = 'p'`, LimitExceeded, "p", ""},
		{"postings moved between accounts of one currency", `UPDATE postings SET account_id = 'q' WHERE rowid = 1`, BalanceMismatch, "p", ""},
		{"postings out of insertion order are still checked", `
			CREATE TABLE tmp AS SELECT * FROM postings ORDER BY entry_seq DESC;
			DELETE FROM postings; INSERT INTO postings SELECT * FROM tmp; DROP TABLE tmp;
			UPDATE accounts SET balance = balance + 1 WHERE id = 'm'`, BalanceMismatch, "m", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, "", Options{DefaultLimit: flatLimit(1000)})
			post(t, s, req("t1", "p", "m", 100, eur), req("t2", "q", "m", 200, eur), req("t3", "p", "m2", 300, eur))
			verify(t, s)
			if _, err := rawDB(t, s).Exec(tt.corrupt); err != nil {
				t.Fatalf("corrupt: %v", err)
			}
			err := s.Verify(context.Background())
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want a *VerifyError", err)
			}
			if ve.Violation != tt.want || ve.Account != tt.account || ve.TxID != tt.txID {
				t.Errorf("Verify = %v (%+v), want %s account %q tx %q", err, *ve, tt.want, tt.account, tt.txID)
			}
			if !strings.Contains(err.Error(), string(tt.want)) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
		})
	}
}

// model is an independent, obviously correct ledger to check the store against.
type model struct {
	limit    int64
	balances map[string]int64
	currency map[string]string
	kind     map[string]Kind
	ids      map[string]bool
}

func (m *model) post(r pipeline.PostRequest) (pipeline.LedgerStatus, string) {
	if m.ids[r.TxID] {
		return pipeline.LedgerDuplicate, ""
	}
	for _, id := range []string{r.Payer, r.Payee} {
		if c, ok := m.currency[id]; ok && c != r.Currency.Code {
			return pipeline.LedgerRejected, ReasonCurrencyMismatch
		}
	}
	if _, ok := m.kind[r.Payer]; !ok || m.kind[r.Payer] == KindCustomer {
		if m.balances[r.Payer]-r.Amount < -m.limit {
			return pipeline.LedgerRejected, ReasonInsufficientFunds
		}
	}
	for id, k := range map[string]Kind{r.Payer: KindCustomer, r.Payee: KindMerchant} {
		if _, ok := m.kind[id]; !ok {
			m.kind[id], m.currency[id] = k, r.Currency.Code
		}
	}
	m.balances[r.Payer] -= r.Amount
	m.balances[r.Payee] += r.Amount
	m.ids[r.TxID] = true
	return pipeline.LedgerPosted, ""
}

func TestInvariantsRandomBatches(t *testing.T) {
	const limit = 5_000
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openTest(t, path, Options{DefaultLimit: flatLimit(limit)})
	m := &model{limit: limit, balances: map[string]int64{}, currency: map[string]string{}, kind: map[string]Kind{}, ids: map[string]bool{}}
	rng := rand.New(rand.NewPCG(1, 2))
	curs := []pipeline.Currency{eur, usd, jpy}
	nextID := 0
	for batch := range 60 {
		reqs := make([]pipeline.PostRequest, 1+rng.IntN(300))
		for i := range reqs {
			id := nextID
			if nextID > 0 && rng.IntN(10) == 0 {
				id = rng.IntN(nextID) // a redelivery
			} else {
				nextID++
			}
			payer := fmt.Sprint("p", rng.IntN(40))
			if rng.IntN(50) == 0 {
				payer = fmt.Sprint("m", rng.IntN(20)) // a merchant paying
			}
			payee := fmt.Sprint("m", rng.IntN(20))
			if payer == payee {
				payee = "m-other"
			}
			reqs[i] = req(fmt.Sprint("t", id), payer, payee, 1+rng.Int64N(2000), curs[rng.IntN(len(curs))])
		}
		post(t, s, reqs...)
		for i, r := range reqs {
			st, reason := m.post(r)
			if r.Status != st || r.Reason != reason {
				t.Fatalf("batch %d request %d (%+v): got %s(%s), model says %s(%s)", batch, i, r, r.Status, r.Reason, st, reason)
			}
		}
		if batch == 30 { // and across a restart
			s.Close()
			s = openTest(t, path, Options{DefaultLimit: flatLimit(limit)})
		}
	}
	for id, b := range m.balances {
		if a := balance(t, s, id); a.Balance != b || a.Currency.Code != m.currency[id] || a.Kind != m.kind[id] {
			t.Errorf("%s = %+v, model says balance %d %s %s", id, a, b, m.currency[id], m.kind[id])
		}
	}
	rows, err := rawDB(t, s).Query(`SELECT e.currency, sum(p.amount), count(*) FROM postings p JOIN entries e ON e.seq = p.entry_seq GROUP BY e.currency`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var postings int
	for rows.Next() {
		var c string
		var sum int64
		var n int
		if err := rows.Scan(&c, &sum, &n); err != nil {
			t.Fatal(err)
		}
		postings += n
		if sum != 0 {
			t.Errorf("postings in %s sum to %d", c, sum)
		}
	}
	if postings != 2*len(m.ids) {
		t.Errorf("%d postings for %d entries", postings, len(m.ids))
	}
	verify(t, s)
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != int64(len(m.ids)) {
		t.Errorf("Stats.Entries = %d, want %d", st.Entries, len(m.ids))
	}
}

func TestFailedBatchChangesNothing(t *testing.T) {
	failAt := func(want string, err error) func(t *testing.T, s *SQLiteStore) func() {
		return func(t *testing.T, s *SQLiteStore) func() {
			s.hookTest = func(stage string) error {
				if stage == want {
					return err
				}
				return nil
			}
			return func() { s.hookTest = nil }
		}
	}
	tests := []struct {
		name   string
		cancel bool
		// fail arranges for the next Post to fail and returns what repairs the store, or
		// nil when the store stays unusable.
		fail func(t *testing.T, s *SQLiteStore) func()
	}{
		{"commit fails", false, failAt("commit", errors.New("injected commit failure"))},
		{"failure between inserts", false, failAt("postings", errors.New("injected failure"))},
		{"database refuses a row", false, func(t *testing.T, s *SQLiteStore) func() {
			db := rawDB(t, s)
			if _, err := db.Exec(`CREATE TRIGGER boom BEFORE INSERT ON postings WHEN NEW.account_id = 'new-m'
				BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
				t.Fatal(err)
			}
			return func() {
				if _, err := db.Exec(`DROP TRIGGER boom`); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"connection closed mid-batch", false, func(t *testing.T, s *SQLiteStore) func() {
			s.hookTest = func(stage string) error {
				if stage == "postings" {
					s.w.close()
				}
				return nil
			}
			return nil
		}},
		{"context canceled", true, func(*testing.T, *SQLiteStore) func() { return func() {} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, "", Options{DefaultLimit: flatLimit(1000)})
			post(t, s, req("t1", "p", "m", 100, eur))
			repair := tt.fail(t, s)
			ctx := context.Background()
			if tt.cancel {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			reqs := []pipeline.PostRequest{
				req("t2", "p", "m", 200, eur),
				req("t1", "p", "m", 100, eur),
				req("t3", "new-p", "new-m", 300, eur),
				req("t4", "p", "m", 5000, eur),
			}
			err := s.Post(ctx, reqs)
			if err == nil {
				t.Fatal("Post succeeded, want an error")
			}
			t.Logf("Post: %v", err)
			for i, r := range reqs {
				if r.Status != pipeline.LedgerSkipped || r.Reason != "" {
					t.Errorf("request %d marked %s(%s) after a failed Post", i, r.Status, r.Reason)
				}
			}
			if a := balance(t, s, "p"); a.Balance != -100 {
				t.Errorf("p balance = %d, want -100", a.Balance)
			}
			if a := balance(t, s, "m"); a.Balance != 100 {
				t.Errorf("m balance = %d, want 100", a.Balance)
			}
			for _, id := range []string{"new-p", "new-m"} {
				if _, err := s.Balance(context.Background(), id); !errors.Is(err, ErrAccountNotFound) {
					t.Errorf("Balance(%q) = %v, want ErrAccountNotFound", id, err)
				}
			}
			verify(t, s)
			var entries int
			if err := rawDB(t, s).QueryRow(`SELECT count(*) FROM entries`).Scan(&entries); err != nil {
				t.Fatal(err)
			}
			if entries != 1 {
				t.Errorf("%d entries on disk, want 1", entries)
			}
			if repair == nil {
				if err := s.Post(context.Background(), []pipeline.PostRequest{req("t5", "p", "m", 1, eur)}); err == nil {
					t.Error("Post succeeded on a store whose batch could not be rolled back")
				}
				return
			}
			repair()
			got := post(t, s, reqs...)
			if st, want := statuses(got), "posted duplicate posted rejected(ledger:insufficient_funds)"; st != want {
				t.Errorf("retry: %s, want %s", st, want)
			}
			if a := balance(t, s, "p"); a.Balance != -300 {
				t.Errorf("p balance after retry = %d, want -300", a.Balance)
			}
			verify(t, s)
		})
	}
}

func TestClosedConnectionLeavesStoreUnusable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openTest(t, path, Options{DefaultLimit: flatLimit(1000)})
	post(t, s, req("t1", "p", "m", 100, eur))
	s.hookTest = func(stage string) error {
		if stage == "postings" {
			s.w.close()
		}
		return nil
	}
	if err := s.Post(context.Background(), []pipeline.PostRequest{req("t2", "p", "m", 1, eur)}); err == nil {
		t.Fatal("Post succeeded on a closed connection")
	}
	s.hookTest = nil
	if err := s.Post(context.Background(), []pipeline.PostRequest{req("t3", "p", "m", 1, eur)}); err == nil {
		t.Error("Post succeeded after a failed rollback")
	}
	s.Close()
	s = openTest(t, path, Options{DefaultLimit: flatLimit(1000)})
	if st := statuses(post(t, s, req("t2", "p", "m", 1, eur))); st != "posted" {
		t.Errorf("after reopen: %s", st)
	}
	verify(t, s)
}

func TestConcurrentReaders(t *testing.T) {
	s := openTest(t, "", Options{DefaultLimit: flatLimit(1 << 40)})
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Balance(ctx, "p1"); err != nil && !errors.Is(err, ErrAccountNotFound) {
					t.Error(err)
				}
				if err := s.Verify(ctx); err != nil {
					t.Error(err)
				}
				if _, err := s.Stats(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for b := range 20 {
		reqs := make([]pipeline.PostRequest, 200)
		for i := range reqs {
			reqs[i] = req(fmt.Sprint("t", b, "-", i), fmt.Sprint("p", i%7), fmt.Sprint("m", i%5), 10, eur)
		}
		post(t, s, reqs...)
	}
	close(stop)
	wg.Wait()
	verify(t, s)
}

func TestBackgroundCheckpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openTest(t, path, Options{DefaultLimit: flatLimit(1 << 40), CheckpointInterval: time.Millisecond})
	if s.ckpt == nil {
		t.Fatal("no checkpointer")
	}
	done := make(chan error)
	go func() {
		var err error
		for range 50 {
			if err = s.ckpt.checkpoint(); err != nil {
				break
			}
		}
		done <- err
	}()
	for b := range 30 {
		reqs := make([]pipeline.PostRequest, 100)
		for i := range reqs {
			reqs[i] = req(fmt.Sprint("t", b, "-", i), fmt.Sprint("p", i%7), fmt.Sprint("m", i%5), 10, eur)
		}
		post(t, s, reqs...)
	}
	if err := <-done; err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	verify(t, s)
	s.Close()
	s = openTest(t, path, Options{CheckpointInterval: -1})
	if s.ckpt != nil {
		t.Error("checkpointer running with CheckpointInterval -1")
	}
	if a := balance(t, s, "m0"); a.Balance != 30*20*10 {
		t.Errorf("m0 = %+v", a)
	}
	verify(t, s)
}

func TestStats(t *testing.T) {
	s := openTest(t, "", Options{DefaultLimit: flatLimit(1000)})
	post(t, s, req("t1", "p", "m", 100, eur), req("t2", "q", "m", 200, eur), req("t3", "r", "n", 7, jpy), req("t4", "r", "n", 5000, jpy))
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []CurrencyStats{{"EUR", 2, 300}, {"JPY", 1, 7}}
	if st.Entries != 3 || fmt.Sprint(st.Currencies) != fmt.Sprint(want) ||
		st.Accounts[KindCustomer] != 3 || st.Accounts[KindMerchant] != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestSync(t *testing.T) {
	for _, mode := range []string{"", "normal", "FULL"} {
		s := openTest(t, "", Options{Synchronous: mode, DefaultLimit: flatLimit(1000)})
		post(t, s, req("t1", "p", "m", 100, eur))
		if err := s.Sync(context.Background()); err != nil {
			t.Errorf("Sync (%q): %v", mode, err)
		}
		var got int
		if err := s.w.query("PRAGMA synchronous", func(r *rawStmt) error { got = int(r.columnInt64(0)); return nil }); err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"": 1, "normal": 1, "FULL": 2}[mode]; got != want {
			t.Errorf("synchronous %q: PRAGMA synchronous = %d, want %d", mode, got, want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenSQLite(filepath.Join(dir, "a.db"), Options{Synchronous: "off"}); err == nil {
		t.Error("synchronous off accepted")
	}
	if _, err := OpenSQLite(filepath.Join(dir, "a.db"), Options{PageSize: 1000}); err == nil {
		t.Error("page size 1000 accepted")
	}
	if _, err := OpenSQLite("", Options{}); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := OpenSQLite(filepath.Join(dir, "missing", "a.db"), Options{}); err == nil {
		t.Error("a file in a missing directory opened")
	}

	path := filepath.Join(dir, "future.db")
	s := openTest(t, path, Options{})
	if _, err := rawDB(t, s).Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := OpenSQLite(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("open of a newer schema: %v", err)
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd ?#% name.db")
	s := openTest(t, path, Options{})
	var v int
	if err := rawDB(t, s).QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	var pageSize int
	if err := rawDB(t, s).QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if pageSize != 8192 {
		t.Errorf("page_size = %d, want 8192", pageSize)
	}
	s.Close()
	s = openTest(t, path, Options{}) // migrations are not applied twice
	verify(t, s)
}

func TestMajorUnitsLimit(t *testing.T) {
	tests := []struct {
		decimal string
		cur     pipeline.Currency
		want    int64
	}{
		{"10000.00", eur, 1_000_000},
		{"10000.00", jpy, 10_000},
		{"10000", pipeline.Currency{Code: "KWD", Digits: 3}, 10_000_000},
		{"10.55", jpy, 10},
		{"0.0001", pipeline.Currency{Code: "UYW", Digits: 4}, 1},
		{"0", eur, 0},
	}
	for _, tt := range tests {
		f, err := MajorUnitsLimit(tt.decimal)
		if err != nil {
			t.Errorf("MajorUnitsLimit(%q): %v", tt.decimal, err)
			continue
		}
		if got := f(tt.cur); got != tt.want {
			t.Errorf("MajorUnitsLimit(%q)(%s) = %d, want %d", tt.decimal, tt.cur.Code, got, tt.want)
		}
	}
	for _, bad := range []string{"", "-1", "1.00001", "abc", "1e3"} {
		if _, err := MajorUnitsLimit(bad); err == nil {
			t.Errorf("MajorUnitsLimit(%q) accepted", bad)
		}
	}
}

func TestExistingFileKeepsItsPageSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openTest(t, path, Options{PageSize: 4096, DefaultLimit: flatLimit(100)})
	post(t, s, req("t1", "p", "m", 10, eur))
	s.Close()
	s = openTest(t, path, Options{}) // default 8192
	var got int
	if err := s.w.query("PRAGMA page_size", func(r *rawStmt) error { got = int(r.columnInt64(0)); return nil }); err != nil {
		t.Fatal(err)
	}
	if got != 4096 {
		t.Errorf("page_size = %d, want 4096", got)
	}
	post(t, s, req("t2", "p", "m", 10, eur))
	if a := balance(t, s, "p"); a.Balance != -20 {
		t.Errorf("p = %+v", a)
	}
	verify(t, s)
}
