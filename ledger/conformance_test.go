package ledger

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// pgEnv names the environment variable with the URL of a PostgreSQL database that the
// tests may use (scripts/with-postgres sets it). Each test gets a schema of its own.
const pgEnv = "FRAUDPIPE_TEST_POSTGRES"

// backend is a store under test: sqlite, or postgres when pgEnv is set.
type backend struct {
	name string
	// newLoc returns where a fresh, empty ledger lives: a file path or a URL.
	newLoc func(t testing.TB) string
	open   func(loc string, opts Options) (Store, error)
}

var sqliteBackend = backend{
	name:   "sqlite",
	newLoc: func(t testing.TB) string { return filepath.Join(t.TempDir(), "ledger.db") },
	open:   func(loc string, opts Options) (Store, error) { return OpenSQLite(loc, opts) },
}

var pgBackend = backend{
	name:   "postgres",
	newLoc: newPostgresSchema,
	open: func(loc string, opts Options) (Store, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return OpenPostgres(ctx, loc, opts)
	},
}

// backends returns the stores to run a conformance test on, logging once why PostgreSQL
// is skipped.
func backends(t *testing.T) []backend {
	if pgURL() == "" {
		t.Logf("postgres: skipped, %s is unset (run the tests under scripts/with-postgres)", pgEnv)
		return []backend{sqliteBackend}
	}
	return []backend{sqliteBackend, pgBackend}
}

// forEachStore runs f as a subtest on every backend.
func forEachStore(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

func pgURL() string { return os.Getenv(pgEnv) }

var schemaSeq struct {
	sync.Mutex
	n int
}

// newPostgresSchema creates a schema of its own for the test and returns the URL that
// uses it; the schema is dropped when the test ends.
func newPostgresSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv(pgEnv)
	if base == "" {
		t.Skipf("postgres: %s is unset (run the tests under scripts/with-postgres)", pgEnv)
	}
	schemaSeq.Lock()
	schemaSeq.n++
	name := fmt.Sprintf("t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, schemaSeq.n)
	schemaSeq.Unlock()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", pgEnv, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, "DROP SCHEMA "+name+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

func openStore(t testing.TB, b backend, loc string, opts Options) Store {
	t.Helper()
	s, err := b.open(loc, opts)
	if err != nil {
		t.Fatalf("open %s: %v", b.name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func postS(t testing.TB, s Store, reqs ...pipeline.PostRequest) []pipeline.PostRequest {
	t.Helper()
	if err := s.Post(context.Background(), reqs); err != nil {
		t.Fatalf("Post: %v", err)
	}
	return reqs
}

func balanceS(t testing.TB, s Store, id string) int64 {
	t.Helper()
	a, err := s.Balance(context.Background(), id)
	if err != nil {
		t.Fatalf("Balance(%q): %v", id, err)
	}
	return a.Balance
}

func verifyS(t testing.TB, s Store) {
	t.Helper()
	if err := s.Verify(context.Background()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestConformancePosting(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		loc := b.newLoc(t)
		s := openStore(t, b, loc, Options{DefaultLimit: flatLimit(1000)})
		got := postS(t, s,
			req("t1", "p", "m", 600, eur),
			req("t2", "p", "m", 400, eur),
			req("t1", "p", "m", 600, eur),  // repeat in the batch
			req("t3", "p", "m", 1, eur),    // past the limit
			req("t4", "p", "m2", 1, usd),   // payer holds EUR
			req("t5", "q", "q", 1, eur),    // same account
			req("", "q", "m", 1, eur),      // invalid
			req("t6", "q", "m", 1000, eur), // exactly the limit
		)
		want := "posted posted duplicate rejected(ledger:insufficient_funds) rejected(ledger:currency_mismatch) " +
			"rejected(ledger:same_account) rejected(ledger:invalid_request) posted"
		if st := statuses(got); st != want {
			t.Fatalf("statuses:\n got %s\nwant %s", st, want)
		}
		if st := statuses(postS(t, s, req("t2", "p", "m", 400, eur), req("t7", "m", "p", 50, eur))); st != "duplicate posted" {
			t.Errorf("second batch: %s", st)
		}
		for id, want := range map[string]int64{"p": -950, "q": -1000, "m": 1950} {
			if got := balanceS(t, s, id); got != want {
				t.Errorf("%s = %d, want %d", id, got, want)
			}
		}
		if _, err := s.Balance(context.Background(), "m2"); !errors.Is(err, ErrAccountNotFound) {
			t.Errorf("Balance(m2) = %v, want ErrAccountNotFound", err)
		}
		verifyS(t, s)
		s.Close()
		s = openStore(t, b, loc, Options{DefaultLimit: flatLimit(1000)})
		if got := balanceS(t, s, "p"); got != -950 {
			t.Errorf("after reopen p = %d", got)
		}
		if st := statuses(postS(t, s, req("t1", "p", "m", 600, eur), req("t8", "p", "m", 50, eur), req("t9", "p", "m", 1, eur))); st != "duplicate posted rejected(ledger:insufficient_funds)" {
			t.Errorf("after reopen: %s", st)
		}
		st, err := s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries != 5 || st.Accounts[KindCustomer] != 2 || st.Accounts[KindMerchant] != 1 {
			t.Errorf("Stats = %+v", st)
		}
		verifyS(t, s)
	})
}

func TestConformanceReverse(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		s := openStore(t, b, b.newLoc(t), Options{DefaultLimit: flatLimit(1000)})
		ctx := context.Background()
		postS(t, s, req("t1", "p", "m", 700, eur), req("t2", "p", "m", 300, eur))
		r, err := s.Reverse(ctx, "t1", 1_700_000_100_000)
		if err != nil || r.Status != pipeline.LedgerPosted || r.TxID != "reversal:t1" {
			t.Fatalf("Reverse = %+v, %v", r, err)
		}
		if got := balanceS(t, s, "p"); got != -300 {
			t.Errorf("p = %d after the chargeback, want -300", got)
		}
		if got := balanceS(t, s, "m"); got != 300 {
			t.Errorf("m = %d after the chargeback, want 300", got)
		}
		if r, err := s.Reverse(ctx, "t1", 1_700_000_200_000); err != nil || r.Status != pipeline.LedgerDuplicate {
			t.Errorf("second Reverse = %+v, %v; want duplicate", r, err)
		}
		if _, err := s.Reverse(ctx, "nope", 0); !errors.Is(err, ErrEntryNotFound) {
			t.Errorf("Reverse(unknown) = %v, want ErrEntryNotFound", err)
		}
		if _, err := s.Reverse(ctx, "reversal:t1", 0); !errors.Is(err, ErrNotReversible) {
			t.Errorf("Reverse(reversal) = %v, want ErrNotReversible", err)
		}
		// The credit is back: the payer may spend it again.
		if st := statuses(postS(t, s, req("t3", "p", "m", 700, eur), req("reversal:t1", "p", "m", 1, eur))); st != "posted duplicate" {
			t.Errorf("after the chargeback: %s", st)
		}
		verifyS(t, s)
		var out bytes.Buffer
		if err := s.Export(ctx, 0, &out); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 4 {
			t.Fatalf("export: %d lines:\n%s", len(lines), out.String())
		}
		var e ExportedEntry
		if err := json.Unmarshal([]byte(lines[2]), &e); err != nil {
			t.Fatal(err)
		}
		if e.TxID != "reversal:t1" || e.Reverses != "t1" || len(e.Postings) != 2 ||
			e.Postings[0] != (ExportedPosting{"m", -700}) || e.Postings[1] != (ExportedPosting{"p", 700}) {
			t.Errorf("export of the reversal: %s", lines[2])
		}
	})
}

func TestConformanceOpeningBalances(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		dir := t.TempDir()
		csvPath := filepath.Join(dir, "accounts.csv")
		os.WriteFile(csvPath, []byte("account,currency,kind,limit,opening\n"+
			"alice,EUR,customer,100.00,250.50\n"+
			"bob,EUR,customer,50,-20\n"+
			"shop,EUR,merchant,,0\n"+
			"yen,JPY,customer,1000,5000\n"), 0o644)
		specs, err := ReadAccountsFile(csvPath)
		if err != nil {
			t.Fatal(err)
		}
		loc := b.newLoc(t)
		s := openStore(t, b, loc, Options{Accounts: specs})
		want := map[string]int64{"alice": 25050, "bob": -2000, "shop": 0, "yen": 5000,
			"system:funding:EUR": -23050, "system:funding:JPY": -5000}
		for id, w := range want {
			if got := balanceS(t, s, id); got != w {
				t.Errorf("%s = %d, want %d", id, got, w)
			}
		}
		if a, _ := s.Balance(context.Background(), "alice"); a.Limit != 10000 || a.Kind != KindCustomer {
			t.Errorf("alice = %+v", a)
		}
		// alice may spend her balance and her limit, no more.
		if st := statuses(postS(t, s, req("t1", "alice", "shop", 35050, eur), req("t2", "alice", "shop", 1, eur))); st != "posted rejected(ledger:insufficient_funds)" {
			t.Errorf("spending: %s", st)
		}
		verifyS(t, s)
		s.Close()
		// Opening again posts nothing twice; a new limit applies.
		specs[0].Limit = 20000
		s = openStore(t, b, loc, Options{Accounts: specs})
		if got := balanceS(t, s, "system:funding:EUR"); got != -23050 {
			t.Errorf("funding after reopen = %d", got)
		}
		if st := statuses(postS(t, s, req("t3", "alice", "shop", 10000, eur))); st != "posted" {
			t.Errorf("after the limit was raised: %s", st)
		}
		verifyS(t, s)
		s.Close()
		// An opening balance below minus the limit is refused.
		bad := []AccountSpec{{ID: "carol", Currency: eur, Kind: KindCustomer, Limit: 100, Opening: -101}}
		if s, err := b.open(b.newLoc(t), Options{Accounts: bad}); err == nil {
			s.Close()
			t.Error("open with an opening balance past the limit succeeded")
		} else if !strings.Contains(err.Error(), "carol") {
			t.Errorf("error %q does not name the account", err)
		}
	})
}

func TestReadAccountsFile(t *testing.T) {
	dir := t.TempDir()
	nd := filepath.Join(dir, "a.ndjson")
	os.WriteFile(nd, []byte(`{"account":"a","currency":"USD","limit":"10","opening":"1.5"}`+"\n\n"+`{"account":"m","currency":"USD","kind":"merchant"}`+"\n"), 0o644)
	specs, err := ReadAccountsFile(nd)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 || specs[0] != (AccountSpec{ID: "a", Currency: usd, Kind: KindCustomer, Limit: 1000, Opening: 150}) || specs[1].Kind != KindMerchant {
		t.Errorf("specs = %+v", specs)
	}
	for _, tt := range []struct{ name, body, want string }{
		{"x.csv", "account,currency,colour\n", `unknown column "colour"`},
		{"x.csv", "account,currency\na,XXX\n", `line 2: account "a": unknown currency "XXX"`},
		{"x.csv", "account,currency,limit\na,EUR,1.001\n", "limit"},
		{"x.csv", "account,currency,kind,limit\nm,EUR,merchant,5\n", "only customer accounts"},
		{"x.ndjson", `{"account":"a","currency":"EUR","bogus":1}`, "line 1"},
	} {
		p := filepath.Join(dir, tt.name)
		os.WriteFile(p, []byte(tt.body), 0o644)
		if _, err := ReadAccountsFile(p); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want it to contain %q", tt.body, err, tt.want)
		}
	}
}

// revModel extends model with chargebacks.
type revModel struct {
	*model
	txs      map[string]pipeline.PostRequest // posted payments
	reversed map[string]bool
}

func (m *revModel) reverse(id string) (pipeline.LedgerStatus, error) {
	r, ok := m.txs[id]
	if !ok {
		return 0, ErrEntryNotFound
	}
	if m.reversed[id] {
		return pipeline.LedgerDuplicate, nil
	}
	// Payees are merchants here: no limit to check.
	m.reversed[id] = true
	m.balances[r.Payer] += r.Amount
	m.balances[r.Payee] -= r.Amount
	return pipeline.LedgerPosted, nil
}

// TestPropertyRandomStreams posts random batches of payments, repeats and chargebacks,
// and checks every outcome and balance against an independent model, and the invariants
// with Verify, across a reopen.
func TestPropertyRandomStreams(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		const limit = 5_000
		loc := b.newLoc(t)
		opts := Options{DefaultLimit: flatLimit(limit)}
		s := openStore(t, b, loc, opts)
		m := &revModel{
			model: &model{limit: limit, balances: map[string]int64{}, currency: map[string]string{}, kind: map[string]Kind{}, ids: map[string]bool{}},
			txs:   map[string]pipeline.PostRequest{}, reversed: map[string]bool{},
		}
		rng := rand.New(rand.NewPCG(3, 4))
		curs := []pipeline.Currency{eur, usd, jpy}
		nextID, batches := 0, 40
		if testing.Short() {
			batches = 10
		}
		ctx := context.Background()
		for batch := range batches {
			reqs := make([]pipeline.PostRequest, 1+rng.IntN(200))
			for i := range reqs {
				id := nextID
				if nextID > 0 && rng.IntN(8) == 0 {
					id = rng.IntN(nextID) // a redelivery
				} else {
					nextID++
				}
				payer := fmt.Sprint("p", rng.IntN(30))
				payee := fmt.Sprint("m", rng.IntN(10))
				reqs[i] = req(fmt.Sprint("t", id), payer, payee, 1+rng.Int64N(2000), curs[rng.IntN(len(curs))])
			}
			postS(t, s, reqs...)
			for i, r := range reqs {
				st, reason := m.post(r)
				if st == pipeline.LedgerPosted {
					m.txs[r.TxID] = r
				}
				if r.Status != st || r.Reason != reason {
					t.Fatalf("batch %d request %d (%+v): got %s(%s), model says %s(%s)", batch, i, r, r.Status, r.Reason, st, reason)
				}
			}
			for range rng.IntN(6) {
				id := fmt.Sprint("t", rng.IntN(nextID+5))
				got, err := s.Reverse(ctx, id, 1_700_000_500_000)
				want, wantErr := m.reverse(id)
				switch {
				case wantErr != nil:
					if !errors.Is(err, wantErr) {
						t.Fatalf("Reverse(%s) = %v, want %v", id, err, wantErr)
					}
				case err != nil || got.Status != want:
					t.Fatalf("Reverse(%s) = %+v, %v; model says %s", id, got, err, want)
				}
			}
			if batch == batches/2 {
				verifyS(t, s)
				s.Close()
				s = openStore(t, b, loc, opts)
			}
		}
		for id, want := range m.balances {
			if got := balanceS(t, s, id); got != want {
				t.Errorf("%s = %d, model says %d", id, got, want)
			}
		}
		verifyS(t, s)
		// The stored entries recompute to the same balances.
		var out bytes.Buffer
		if err := s.Export(ctx, 0, &out); err != nil {
			t.Fatal(err)
		}
		recomputed := map[string]int64{}
		sc := bufio.NewScanner(&out)
		sc.Buffer(nil, 1<<20)
		entries := 0
		for sc.Scan() {
			var e ExportedEntry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			entries++
			for _, p := range e.Postings {
				recomputed[p.Account] += p.Amount
			}
		}
		if entries != len(m.txs)+len(m.reversed) {
			t.Errorf("%d entries exported, want %d", entries, len(m.txs)+len(m.reversed))
		}
		for id, want := range m.balances {
			if recomputed[id] != want {
				t.Errorf("%s: postings sum to %d, model says %d", id, recomputed[id], want)
			}
		}
	})
}

// TestConcurrentProducersHotAccount funnels many producers' payments to one merchant
// through a channel to the single writer, which batches them (the engine's ledger stage).
func TestConcurrentProducersHotAccount(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		const producers, each = 16, 250
		s := openStore(t, b, b.newLoc(t), Options{DefaultLimit: flatLimit(1 << 40)})
		type work struct {
			r    pipeline.PostRequest
			done chan pipeline.LedgerStatus
		}
		in := make(chan work, 256)
		var writerErr error
		writerDone := make(chan struct{})
		go func() { // the single writer
			defer close(writerDone)
			var batch []work
			reqs := make([]pipeline.PostRequest, 0, 512)
			for w := range in {
				batch = append(batch[:0], w)
			fill:
				for len(batch) < 512 {
					select {
					case w, ok := <-in:
						if !ok {
							break fill
						}
						batch = append(batch, w)
					default:
						break fill
					}
				}
				reqs = reqs[:0]
				for _, w := range batch {
					reqs = append(reqs, w.r)
				}
				if err := s.Post(context.Background(), reqs); err != nil && writerErr == nil {
					writerErr = err
				}
				for i, w := range batch {
					w.done <- reqs[i].Status
				}
			}
		}()
		var wg sync.WaitGroup
		var mu sync.Mutex
		counts := map[pipeline.LedgerStatus]int{}
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := make(chan pipeline.LedgerStatus, 1)
				for i := range each {
					// Every producer sends half its ids twice: the repeats are duplicates.
					id := fmt.Sprintf("p%d-%d", p, i/2*2)
					in <- work{req(id, fmt.Sprint("card", p), "hot-merchant", 1+int64(i%2), eur), done}
					st := <-done
					mu.Lock()
					counts[st]++
					mu.Unlock()
				}
			}()
		}
		// Readers run beside the writer.
		stop := make(chan struct{})
		readersDone := make(chan struct{})
		go func() {
			defer close(readersDone)
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.Balance(context.Background(), "hot-merchant")
				if err := s.Verify(context.Background()); err != nil {
					t.Errorf("Verify during posting: %v", err)
					return
				}
			}
		}()
		wg.Wait()
		close(in)
		<-writerDone
		close(stop)
		<-readersDone
		if writerErr != nil {
			t.Fatal(writerErr)
		}
		posted := producers * each / 2
		if counts[pipeline.LedgerPosted] != posted || counts[pipeline.LedgerDuplicate] != posted {
			t.Errorf("outcomes %v, want %d posted and %d duplicate", counts, posted, posted)
		}
		if got := balanceS(t, s, "hot-merchant"); got != int64(posted) {
			t.Errorf("hot merchant = %d, want %d", got, posted)
		}
		verifyS(t, s)
	})
}

// crashEnv tells the test binary, re-executed, to be the crash test's child.
const crashEnv = "FRAUDPIPE_LEDGER_CRASH_CHILD"

const (
	crashBatches   = 8
	crashBatchSize = 500
	crashAt        = 5 // the batch during which the child is killed
)

func crashStream(batch int) []pipeline.PostRequest {
	reqs := make([]pipeline.PostRequest, crashBatchSize)
	for i := range reqs {
		n := batch*crashBatchSize + i
		reqs[i] = req(fmt.Sprintf("tx-%06d", n), fmt.Sprint("card", n%37), fmt.Sprint("m", n%11), 1+int64(n%97), eur)
	}
	return reqs
}

// TestCrashChild is the child of TestCrashMidBatch: it posts the stream and, in batch
// crashAt, says so and waits to be killed after writing every row and before COMMIT.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("the crash test's child process; run by TestCrashMidBatch")
	}
	kind, loc, _ := strings.Cut(spec, "|")
	b := sqliteBackend
	if kind == "postgres" {
		b = pgBackend
	}
	st, err := b.open(loc, Options{DefaultLimit: flatLimit(1 << 40)})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	var c *core
	switch s := st.(type) {
	case *SQLiteStore:
		c = &s.core
	case *PostgresStore:
		c = &s.core
	}
	for batch := range crashBatches {
		if batch == crashAt {
			c.hookTest = func(stage string) error {
				if stage == "commit" {
					fmt.Println("mid-batch")
					select {} // until SIGKILL
				}
				return nil
			}
		}
		if err := st.Post(context.Background(), crashStream(batch)); err != nil {
			fmt.Println("post:", err)
			os.Exit(1)
		}
		fmt.Println("committed", batch)
	}
	os.Exit(0)
}

// TestCrashMidBatch SIGKILLs a child process while a batch is written but not committed;
// after reopening, the committed batches are all there, nothing of the killed one is, and
// posting the whole stream again answers duplicate for exactly what was committed.
func TestCrashMidBatch(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child")
	}
	forEachStore(t, func(t *testing.T, b backend) {
		loc := b.newLoc(t)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+b.name+"|"+loc)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		deadline := time.After(2 * time.Minute)
		committed := 0
	wait:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child exited before the crash point (%d batches committed)", committed)
				}
				if l == "mid-batch" {
					break wait
				}
				if strings.HasPrefix(l, "committed ") {
					committed++
				} else {
					t.Logf("child: %s", l)
				}
			case <-deadline:
				cmd.Process.Kill()
				t.Fatal("child did not reach the crash point in 2 minutes")
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		go func() {
			for range lines {
			}
		}()
		cmd.Wait()
		if committed != crashAt {
			t.Fatalf("%d batches committed before the crash, want %d", committed, crashAt)
		}

		// PostgreSQL notices the dead client and releases its lock: poll until it does.
		var s Store
		for end := time.Now().Add(30 * time.Second); ; {
			s, err = b.open(loc, Options{DefaultLimit: flatLimit(1 << 40)})
			if err == nil {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("reopen after the crash: %v", err)
			}
			time.Sleep(20 * time.Millisecond) // polling the server, not waiting for a goroutine
		}
		defer s.Close()
		verifyS(t, s)
		st, err := s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries != crashAt*crashBatchSize {
			t.Fatalf("%d entries after the crash, want %d (no partial batch)", st.Entries, crashAt*crashBatchSize)
		}
		for batch := range crashBatches {
			reqs := postS(t, s, crashStream(batch)...)
			want := pipeline.LedgerDuplicate
			if batch >= crashAt {
				want = pipeline.LedgerPosted
			}
			for i, r := range reqs {
				if r.Status != want {
					t.Fatalf("batch %d request %d after the crash: %s, want %s", batch, i, r.Status, want)
				}
			}
		}
		verifyS(t, s)
	})
}

// TestConformanceFailedBatch injects a failure between the writes of a batch and before
// its commit: nothing of the batch may remain, in the database or in memory.
func TestConformanceFailedBatch(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		for _, stage := range []string{"postings", "commit"} {
			t.Run(stage, func(t *testing.T) {
				s := openStore(t, b, b.newLoc(t), Options{DefaultLimit: flatLimit(1000)})
				postS(t, s, req("t1", "p", "m", 100, eur))
				c := coreOf(s)
				c.hookTest = func(st string) error {
					if st == stage {
						return errors.New("injected")
					}
					return nil
				}
				reqs := []pipeline.PostRequest{req("t2", "p", "m", 200, eur), req("t3", "new-p", "new-m", 300, eur)}
				if err := s.Post(context.Background(), reqs); err == nil {
					t.Fatal("Post succeeded")
				}
				c.hookTest = nil
				if got := balanceS(t, s, "p"); got != -100 {
					t.Errorf("p = %d", got)
				}
				if _, err := s.Balance(context.Background(), "new-p"); !errors.Is(err, ErrAccountNotFound) {
					t.Errorf("new-p exists after a failed batch: %v", err)
				}
				if st := statuses(postS(t, s, reqs...)); st != "posted posted" {
					t.Errorf("retry: %s", st)
				}
				verifyS(t, s)
			})
		}
	})
}

func coreOf(s Store) *core {
	switch s := s.(type) {
	case *SQLiteStore:
		return &s.core
	case *PostgresStore:
		return &s.core
	}
	return nil
}

// TestVerifyReversals tampers with stored reversals and expects Verify to name them.
func TestVerifyReversals(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		for _, tt := range []struct {
			name, sql string
			want      Violation
		}{
			{"reversal of nothing", `UPDATE entries SET reverses = 'ghost' WHERE tx_id = 'reversal:t1'`, ReversalUnknown},
			{"reversal that does not negate", `UPDATE postings SET account_id = 'm2' WHERE amount = -500 AND entry_seq = 3`, ReversalMismatch},
		} {
			t.Run(tt.name, func(t *testing.T) {
				loc := b.newLoc(t)
				s := openStore(t, b, loc, Options{DefaultLimit: flatLimit(1000)})
				postS(t, s, req("t1", "p", "m", 500, eur), req("t2", "p", "m2", 100, eur))
				if r, err := s.Reverse(context.Background(), "t1", 0); err != nil || r.Status != pipeline.LedgerPosted {
					t.Fatalf("Reverse = %+v, %v", r, err)
				}
				verifyS(t, s)
				execSQL(t, b, loc, tt.sql)
				err := s.Verify(context.Background())
				var ve *VerifyError
				if !errors.As(err, &ve) || ve.Violation != tt.want || ve.Reverses == "" {
					t.Fatalf("Verify = %v, want %s", err, tt.want)
				}
			})
		}
	})
}

// execSQL changes a ledger behind its store's back, as only a bug or an attacker would.
func execSQL(t *testing.T, b backend, loc, query string) {
	t.Helper()
	if b.name == "sqlite" {
		db, err := sql.Open("sqlite", "file:"+uriPath.Replace(loc)+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(query); err != nil {
			t.Fatal(err)
		}
		return
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, query); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresSingleWriter opens a second writer of the same ledger, which must fail, and a
// read-only store beside the writer, which must see its commits.
func TestPostgresSingleWriter(t *testing.T) {
	loc := newPostgresSchema(t)
	s := openStore(t, pgBackend, loc, Options{DefaultLimit: flatLimit(1000)})
	postS(t, s, req("t1", "p", "m", 100, eur))
	if s2, err := pgBackend.open(loc, Options{}); err == nil {
		s2.Close()
		t.Fatal("a second writer opened the ledger")
	} else if !strings.Contains(err.Error(), "another process is writing") {
		t.Errorf("second writer: %v", err)
	}
	ro := openStore(t, pgBackend, loc, Options{ReadOnly: true})
	if got := balanceS(t, ro, "p"); got != -100 {
		t.Errorf("read-only p = %d", got)
	}
	verifyS(t, ro)
	if err := ro.Post(context.Background(), []pipeline.PostRequest{req("t2", "p", "m", 1, eur)}); err == nil {
		t.Error("Post on a read-only store succeeded")
	}
	if _, err := ro.Reverse(context.Background(), "t1", 0); err == nil {
		t.Error("Reverse on a read-only store succeeded")
	}
	s.Close()
	s = openStore(t, pgBackend, loc, Options{}) // the lock went with the first writer
	if got := balanceS(t, s, "m"); got != 100 {
		t.Errorf("m = %d after reopening", got)
	}
}

// TestReverseFindsMovedPostings reverses an entry whose postings are not at the rowids the
// SQLite store looks at first.
func TestReverseFindsMovedPostings(t *testing.T) {
	loc := sqliteBackend.newLoc(t)
	s := openStore(t, sqliteBackend, loc, Options{DefaultLimit: flatLimit(1000)})
	postS(t, s, req("t1", "p", "m", 500, eur), req("t2", "p", "m", 100, eur))
	execSQL(t, sqliteBackend, loc, `INSERT INTO postings(rowid, entry_seq, account_id, amount)
		SELECT rowid + 100, entry_seq, account_id, amount FROM postings WHERE entry_seq = 1;
		DELETE FROM postings WHERE rowid IN (1, 2)`)
	if r, err := s.Reverse(context.Background(), "t1", 0); err != nil || r.Status != pipeline.LedgerPosted {
		t.Fatalf("Reverse = %+v, %v", r, err)
	}
	if got := balanceS(t, s, "p"); got != -100 {
		t.Errorf("p = %d, want -100", got)
	}
	verifyS(t, s)
}

// TestPostgresConflictFailsBatch writes an entry from outside the store between the
// batch's lookup and its COPY: the UNIQUE tx_id constraint fails the whole batch, which
// changes nothing, and the retry answers duplicate.
func TestPostgresConflictFailsBatch(t *testing.T) {
	loc := newPostgresSchema(t)
	s := openStore(t, pgBackend, loc, Options{DefaultLimit: flatLimit(1000)})
	postS(t, s, req("t1", "p", "m", 100, eur))
	c := coreOf(s)
	c.hookTest = func(stage string) error {
		if stage == "postings" {
			c.hookTest = nil
			execSQL(t, pgBackend, loc, `INSERT INTO entries(seq, tx_id, ts, posted_at, currency, amount) VALUES (1000, 't3', 0, 0, 'EUR', 1)`)
		}
		return nil
	}
	reqs := []pipeline.PostRequest{req("t2", "p", "m", 200, eur), req("t3", "p", "m", 300, eur)}
	if err := s.Post(context.Background(), reqs); err == nil {
		t.Fatal("Post succeeded over a conflicting entry")
	} else {
		t.Logf("Post: %v", err)
	}
	if got := balanceS(t, s, "p"); got != -100 {
		t.Errorf("p = %d after the failed batch", got)
	}
	if st := statuses(postS(t, s, reqs...)); st != "posted duplicate" {
		t.Errorf("retry: %s", st)
	}
}
