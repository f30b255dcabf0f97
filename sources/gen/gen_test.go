package gen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

func smallOptions() Options {
	o := DefaultOptions()
	o.Customers, o.Terminals, o.Days = 300, 600, 20
	return o
}

func hashRun(t *testing.T, o Options) (string, Summary) {
	t.Helper()
	h := sha256.New()
	s, err := Write(h, o)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), s
}

func TestDeterministic(t *testing.T) {
	o := smallOptions()
	h1, s1 := hashRun(t, o)
	h2, s2 := hashRun(t, o)
	if h1 != h2 || s1 != s2 {
		t.Fatalf("same options, different output: %s %v / %s %v", h1, s1, h2, s2)
	}
	if s1.Transactions == 0 {
		t.Fatal("no transactions")
	}
	o.Seed = 1
	h3, _ := hashRun(t, o)
	if h3 == h1 {
		t.Fatal("seeds 0 and 1 give the same output")
	}
}

// TestGolden pins the bytes of a tiny run, so that a change of the stream (of the model, the
// random streams or the format) is deliberate. The samplers avoid every floating-point
// operation that may differ between architectures, so this holds on all of them.
func TestGolden(t *testing.T) {
	o := DefaultOptions()
	o.Customers, o.Terminals, o.Days = 50, 100, 30
	o.Seed = 42
	h, s := hashRun(t, o)
	const want = "55c51389e7b9daa4f787d52b339a0c37820c42a40966c005aabb99247787ce19"
	if h != want {
		t.Errorf("hash of the seed-42 run = %s, want %s (summary %+v)", h, want, s)
	}
}

// TestGeneratorMatchesWrite checks that Next yields Write's lines.
func TestGeneratorMatchesWrite(t *testing.T) {
	o := smallOptions()
	var want bytes.Buffer
	sw, err := Write(&want, o)
	if err != nil {
		t.Fatal(err)
	}
	g := New(o)
	var got []byte
	for {
		var ok bool
		if got, ok = g.Next(got); !ok {
			break
		}
		got = append(got, '\n')
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("Generator and Write differ")
	}
	if g.Summary() != sw {
		t.Fatalf("summaries differ: %+v / %+v", g.Summary(), sw)
	}
	if _, ok := g.Next(nil); ok {
		t.Fatal("Next after the end returned a line")
	}
}

// TestLinesDecode checks every line against the pipeline's decoder, the order of ts, the
// uniqueness of ids and the label of each scenario.
func TestLinesDecode(t *testing.T) {
	o := smallOptions()
	o.Start = time.Date(2026, 3, 28, 13, 30, 0, 0, time.FixedZone("X", 3600)) // not midnight UTC
	g := New(o)
	var line []byte
	var tx pipeline.Transaction
	ids := map[string]bool{}
	var last int64 = math.MinInt64
	var sum Summary
	for n := 0; ; n++ {
		var ok bool
		if line, ok = g.Next(line[:0]); !ok {
			break
		}
		if err := pipeline.DecodeTransaction(line, &tx); err != nil {
			t.Fatalf("line %d: %v\n%s", n, err, line)
		}
		if ids[tx.ID] {
			t.Fatalf("line %d: duplicate id %s", n, tx.ID)
		}
		ids[tx.ID] = true
		if want := "tx-" + pad9(n); tx.ID != want {
			t.Fatalf("line %d: id %s, want %s", n, tx.ID, want)
		}
		if tx.TS < last {
			t.Fatalf("line %d: ts %s goes back", n, tx.TSText)
		}
		last = tx.TS
		if tx.TS < o.Start.UnixMilli() || tx.TS >= o.Start.AddDate(0, 0, o.Days).UnixMilli() {
			t.Fatalf("line %d: ts %s outside the simulated days", n, tx.TSText)
		}
		if got := time.UnixMilli(tx.TS).UTC().Format("2006-01-02T15:04:05.000Z"); got != tx.TSText {
			t.Fatalf("line %d: ts %s, want %s", n, tx.TSText, got)
		}
		if tx.Currency.Code != "EUR" || tx.Amount <= 0 || !tx.HasGeo || !tx.Label.Present ||
			tx.CustomerID == "" || tx.TerminalID == "" || tx.MCC == "" || tx.Country == "" {
			t.Fatalf("line %d: missing fields: %+v", n, tx)
		}
		if tx.Lat < 47.3 || tx.Lat > 55 || tx.Lon < 5.9 || tx.Lon > 15 {
			t.Fatalf("line %d: lat/lon outside the box: %s", n, line)
		}
		sc, err := strconv.Atoi(tx.Label.Scenario)
		if err != nil || sc < 0 || sc > 3 || tx.Label.Fraud != (sc != 0) {
			t.Fatalf("line %d: bad label %+v", n, tx.Label)
		}
		if sc == 0 && tx.Amount > 22000 || sc == 1 && tx.Amount <= 22000 {
			t.Fatalf("line %d: amount %d with scenario %d", n, tx.Amount, sc)
		}
		sum.Transactions++
		sum.ByScenario[sc]++
		if sc != 0 {
			sum.Fraud++
		}
	}
	if sum != g.Summary() {
		t.Fatalf("counted %+v, Summary says %+v", sum, g.Summary())
	}
}

func pad9(n int) string {
	s := strconv.Itoa(n)
	for len(s) < 9 {
		s = "0" + s
	}
	return s
}

// TestStatistics checks the handbook's model on a moderate run.
func TestStatistics(t *testing.T) {
	// The brief's moderate size for the volume and amounts.
	o := DefaultOptions()
	o.Customers, o.Terminals, o.Days = 1000, 2000, 60
	st := collect(t, o)
	perDay := float64(st.sum.Transactions) / float64(o.Customers*o.Days)
	t.Logf("1000 customers, 2000 terminals, 60 days: %+v, %.3f tx per customer per day, fraud %.3f%%",
		st.sum, perDay, 100*st.sum.FraudRate())
	if perDay < 1.8 || perDay > 2.2 {
		t.Errorf("%.3f transactions per customer per day, want 2 ± 10%%", perDay)
	}
	for sc := 1; sc <= 3; sc++ {
		if st.sum.ByScenario[sc] == 0 {
			t.Errorf("no fraud of scenario %d", sc)
		}
	}
	genuine := st.amount[0] / float64(st.sum.ByScenario[0])
	s3 := st.amount[3] / float64(st.sum.ByScenario[3])
	if s3 < 2*genuine {
		t.Errorf("mean scenario-3 amount %.2f, genuine %.2f: want it about 5 times larger", s3, genuine)
	}
	// Mean genuine amount: E[U(5,100)] = 52.5, a little less after scenario 1 takes the
	// largest.
	if genuine < 45 || genuine > 60 {
		t.Errorf("mean genuine amount %.2f, want about 52", genuine)
	}

	// The fraud rate depends on the population: scenarios 2 and 3 compromise a fixed number
	// of terminals and customers a day. At the handbook's density (5000 customers, 10000
	// terminals) it is about 0.85%; 40 days include the 28 days of ramp-up of scenario 2.
	o = DefaultOptions()
	o.Days = 40
	st = collect(t, o)
	rate := st.sum.FraudRate()
	t.Logf("handbook density, 40 days: %+v, fraud %.3f%%", st.sum, 100*rate)
	if rate < 0.003 || rate > 0.02 {
		t.Errorf("fraud rate %.3f%%, want within 0.3%%-2%%", 100*rate)
	}
	for sc := 1; sc <= 3; sc++ {
		if st.sum.ByScenario[sc] == 0 {
			t.Errorf("no fraud of scenario %d", sc)
		}
	}
	// Scenario 1 is about 0.05% of transactions with these amounts; scenario 2 the largest.
	if st.sum.ByScenario[2] < st.sum.ByScenario[1] || st.sum.ByScenario[2] < st.sum.ByScenario[3]/2 {
		t.Errorf("unexpected mix of scenarios: %v", st.sum.ByScenario)
	}
}

type stats struct {
	sum    Summary
	amount [4]float64
}

// collect runs o and gathers its statistics from the transactions behind the lines (the
// lines themselves are checked by TestLinesDecode; decoding this many under -race is slow).
func collect(t *testing.T, o Options) stats {
	t.Helper()
	var st stats
	g := New(o)
	var line []byte
	for {
		var ok bool
		if line, ok = g.Next(line[:0]); !ok {
			break
		}
		tx := &g.txs[g.order[g.pos-1]&(1<<keyShift-1)]
		if tx.scen == 1 && tx.cents <= bigAmount || tx.scen == 0 && tx.cents > bigAmount {
			t.Fatalf("amount %d with scenario %d: %s", tx.cents, tx.scen, line)
		}
		st.sum.Transactions++
		st.sum.ByScenario[tx.scen]++
		st.amount[tx.scen] += float64(tx.cents) / 100
	}
	st.sum.Fraud = st.sum.Transactions - st.sum.ByScenario[0]
	if st.sum != g.Summary() {
		t.Fatalf("counted %+v, Summary says %+v", st.sum, g.Summary())
	}
	return st
}

func TestValidate(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Options){
		func(o *Options) { o.Customers = -1 },
		func(o *Options) { o.Terminals = -1 },
		func(o *Options) { o.Days = -1 },
		func(o *Options) { o.Radius = 0 },
		func(o *Options) { o.Radius = math.NaN() },
		func(o *Options) { o.EcomShare = 1.5 },
		func(o *Options) { o.CompromisedTerminalsPerDay = -1 },
		func(o *Options) { o.CustomerCompromiseDays = -1 },
		func(o *Options) { o.Start = time.Date(9999, 12, 1, 0, 0, 0, 0, time.UTC) },
	}
	for i, f := range bad {
		o := DefaultOptions()
		f(&o)
		if o.Validate() == nil {
			t.Errorf("case %d: no error", i)
		}
		if _, err := Write(io.Discard, o); err == nil {
			t.Errorf("case %d: Write: no error", i)
		}
		g := New(o)
		if g.Err() == nil {
			t.Errorf("case %d: New: no error", i)
		}
		if _, ok := g.Next(nil); ok {
			t.Errorf("case %d: Next gave a line", i)
		}
	}
}

// TestEdgeSizes runs degenerate populations without a panic.
func TestEdgeSizes(t *testing.T) {
	for _, c := range []struct{ cust, term, days int }{{0, 10, 5}, {10, 0, 5}, {1, 1, 40}, {5, 3, 0}} {
		o := DefaultOptions()
		o.Customers, o.Terminals, o.Days = c.cust, c.term, c.days
		o.Radius = 200 // every terminal in reach
		s, err := Write(io.Discard, o)
		if err != nil {
			t.Fatal(err)
		}
		if (c.cust == 0 || c.term == 0 || c.days == 0) && s.Transactions != 0 {
			t.Errorf("%+v: %d transactions", c, s.Transactions)
		}
	}
}

func TestChannelShare(t *testing.T) {
	o := DefaultOptions()
	o.Days = 0
	g := New(o)
	ecom := 0
	for _, c := range g.cust {
		if c.ecom {
			ecom++
		}
	}
	if share := float64(ecom) / float64(len(g.cust)); math.Abs(share-0.2) > 0.02 {
		t.Errorf("ecom share %.3f, want 0.2", share)
	}
}

func TestSamplers(t *testing.T) {
	for _, x := range []float64{1, 0.5, 0.75, 1e-300, 0x1p-53, 0.999999, 0.3, 3, 1e300} {
		got, want := plog(x), math.Log(x)
		if math.Abs(got-want) > 1e-15*math.Max(1, math.Abs(want)) {
			t.Errorf("plog(%g) = %v, want %v", x, got, want)
		}
	}
	// Subnormals (math.Log on amd64 gets these wrong: -709.09 for the smallest).
	if got := plog(math.SmallestNonzeroFloat64); math.Abs(got+744.4400719213812) > 1e-12 {
		t.Errorf("plog(5e-324) = %v, want -744.4400719213812", got)
	}
	s := newStream(7, tagTx, 0, 0)
	const n = 200000
	var sum, sq, pois float64
	for range n {
		z := s.norm()
		sum += z
		sq += z * z
		pois += float64(s.poisson(2.5))
	}
	if m, v := sum/n, sq/n-(sum/n)*(sum/n); math.Abs(m) > 0.01 || math.Abs(v-1) > 0.02 {
		t.Errorf("normal: mean %.4f, variance %.4f", m, v)
	}
	if m := pois / n; math.Abs(m-2.5) > 0.02 {
		t.Errorf("poisson(2.5): mean %.4f", m)
	}
}

func TestAppendPadded(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "000000000"}, {123, "000000123"}, {999999999, "999999999"}, {1234567890, "1234567890"}} {
		if got := string(appendPadded(nil, c.n, 9)); got != c.want {
			t.Errorf("appendPadded(%d) = %s, want %s", c.n, got, c.want)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	o := DefaultOptions()
	o.Days = 10 // ~97k lines a run
	var lines int64
	var bytes int64
	b.ReportAllocs()
	for b.Loop() {
		cw := &countWriter{}
		s, err := Write(cw, o)
		if err != nil {
			b.Fatal(err)
		}
		lines += s.Transactions
		bytes += cw.n
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
	b.SetBytes(bytes / int64(b.N))
}

// BenchmarkNext measures steady-state generation, without building the population.
func BenchmarkNext(b *testing.B) {
	o := DefaultOptions()
	g := New(o)
	var line []byte
	b.ReportAllocs()
	for b.Loop() {
		var ok bool
		if line, ok = g.Next(line[:0]); !ok {
			g = New(o)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
