package parquet

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks"
)

var testFeatures = []string{"amount", "card_count_1h", "is_night"}

var currencyCycle = []pipeline.Currency{{Code: "EUR", Digits: 2}, {Code: "JPY", Digits: 0}, {Code: "KWD", Digits: 3}, {Code: "UYW", Digits: 4}}

// testEvents returns n decided events spread over hours starting at base, with every
// optional field present on some and absent on others, and a dead letter every 97th.
func testEvents(n int, base time.Time, perHour int) []*pipeline.Event {
	evs := make([]*pipeline.Event, n)
	for i := range evs {
		ev := &pipeline.Event{Seq: uint64(i)}
		tx := &ev.Tx
		tx.ID = fmt.Sprintf("tx-%07d", i)
		tx.TS = base.Add(time.Duration(i/perHour)*time.Hour + time.Duration(i%perHour)*time.Millisecond).UnixMilli()
		tx.CardID = fmt.Sprintf("card-%d", i%50)
		tx.AccountID = fmt.Sprintf("acct-%d", i%50)
		tx.MerchantID = fmt.Sprintf("m-%d", i%7)
		tx.Currency = currencyCycle[i%len(currencyCycle)]
		tx.Amount = int64(i*37+1) % 1_000_000
		if i == 5 {
			tx.Amount = 1_000_000_000_000_000 // the largest amount the contract allows
			tx.Currency = pipeline.Currency{Code: "JPY"}
		}
		if i%3 == 0 {
			tx.CustomerID = fmt.Sprintf("cust-%d", i%20)
			tx.TerminalID = "term-1"
			tx.MCC = "5411"
			tx.Country = "DE"
		}
		tx.Channel = pipeline.Channel(i % 4)
		if i%4 == 1 {
			tx.Lat, tx.Lon, tx.HasGeo = 52.5+float64(i)/1e4, 13.4, true
		}
		d := &ev.Decision
		d.Outcome = pipeline.Outcome(i % 3)
		if i%5 != 0 {
			d.Score, d.HasScore = float64(i%100)/100, true
			d.Model = "gbm-v3"
		}
		switch i % 3 {
		case 1:
			d.Reasons = []string{"rule:card_testing"}
		case 2:
			d.Reasons = []string{"ledger:insufficient_funds", "model:score>=0.90", "rule:x"}
		}
		d.Ledger = pipeline.LedgerStatus(i % 4)
		d.Rules = "sha256:abc"
		ev.Late = i%11 == 0
		if i%6 != 0 {
			ev.Features = []float64{float64(tx.Amount) / 100, float64(i % 9), float64(i % 2)}
		}
		if i%97 == 96 {
			ev.Err = &pipeline.DecodeError{Code: "invalid_json"}
		}
		evs[i] = ev
	}
	return evs
}

// gotRow is one row read back from a Parquet file.
type gotRow struct {
	id, card, account, merchant, customer, terminal, channel, mcc, country, currency string
	ts                                                                               int64
	amount                                                                           string
	minor                                                                            int64
	lat, lon, score                                                                  *float64
	decision, ledger, model, rules                                                   string
	reasons                                                                          []string
	late                                                                             bool
	seq                                                                              uint64
	features                                                                         []*float64
}

func wantRow(ev *pipeline.Event, nfeat int) gotRow {
	tx, d := &ev.Tx, &ev.Decision
	r := gotRow{
		id: tx.ID, card: tx.CardID, account: tx.AccountID, merchant: tx.MerchantID, customer: tx.CustomerID,
		terminal: tx.TerminalID, channel: tx.Channel.String(), mcc: tx.MCC, country: tx.Country, currency: tx.Currency.Code,
		ts: tx.TS, minor: tx.Amount, decision: d.Outcome.String(), ledger: d.Ledger.String(), model: d.Model, rules: d.Rules,
		reasons: d.Reasons, late: ev.Late, seq: ev.Seq,
	}
	if r.reasons == nil {
		r.reasons = []string{}
	}
	// The decimal at scale 4, as text: exactness is checked digit by digit.
	r.amount = pipeline.FormatAmount(tx.Amount, tx.Currency.Digits)
	if tx.Currency.Digits == 0 {
		r.amount += "."
	}
	r.amount += strings.Repeat("0", AmountScale-tx.Currency.Digits)
	if tx.HasGeo {
		r.lat, r.lon = &tx.Lat, &tx.Lon
	}
	if d.HasScore {
		r.score = &d.Score
	}
	r.features = make([]*float64, nfeat)
	if ev.Features != nil {
		for i := range nfeat {
			r.features[i] = &ev.Features[i]
		}
	}
	return r
}

func optF(a *array.Float64, i int) *float64 {
	if a.IsNull(i) {
		return nil
	}
	v := a.Value(i)
	return &v
}

func optS(a *array.String, i int) string {
	if a.IsNull(i) {
		return ""
	}
	return a.Value(i)
}

// readParquet reads a whole Parquet file with arrow's reader and returns its rows and the
// number of row groups.
func readParquet(t *testing.T, b []byte, nfeat int) ([]gotRow, int) {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("open parquet: %v", err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 4096}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if got, want := int(tbl.NumCols()), numFixed+nfeat; got != want {
		t.Fatalf("%d columns, want %d", got, want)
	}
	if ts := tbl.Schema().Field(colTS).Type.(*arrow.TimestampType); ts.Unit != arrow.Millisecond || ts.TimeZone != "UTC" {
		t.Errorf("ts type %v", ts)
	}
	if dt := tbl.Schema().Field(colAmount).Type.(*arrow.Decimal128Type); dt.Precision != AmountPrecision || dt.Scale != AmountScale {
		t.Errorf("amount type %v", dt)
	}
	var rows []gotRow
	tr := array.NewTableReader(tbl, 4096)
	defer tr.Release()
	for tr.Next() {
		rec := tr.Record()
		s := func(c int) *array.String { return rec.Column(c).(*array.String) }
		f := func(c int) *array.Float64 { return rec.Column(c).(*array.Float64) }
		amt := rec.Column(colAmount).(*array.Decimal128)
		reasons := rec.Column(colReasons).(*array.List)
		rv := reasons.ListValues().(*array.String)
		for i := range int(rec.NumRows()) {
			r := gotRow{
				id: s(colID).Value(i), card: s(colCard).Value(i), account: s(colAccount).Value(i), merchant: s(colMerchant).Value(i),
				customer: optS(s(colCustomer), i), terminal: optS(s(colTerminal), i), channel: s(colChannel).Value(i),
				mcc: optS(s(colMCC), i), country: optS(s(colCountry), i), currency: s(colCurrency).Value(i),
				ts:     int64(rec.Column(colTS).(*array.Timestamp).Value(i)),
				amount: amt.Value(i).ToString(AmountScale), minor: rec.Column(colAmountMinor).(*array.Int64).Value(i),
				lat: optF(f(colLat), i), lon: optF(f(colLon), i), score: optF(f(colScore), i),
				decision: s(colDecision).Value(i), ledger: s(colLedger).Value(i), model: optS(s(colModel), i), rules: optS(s(colRules), i),
				late: rec.Column(colLate).(*array.Boolean).Value(i), seq: uint64(rec.Column(colSeq).(*array.Int64).Value(i)),
				reasons: []string{},
			}
			lo, hi := reasons.ValueOffsets(i)
			for j := lo; j < hi; j++ {
				r.reasons = append(r.reasons, rv.Value(int(j)))
			}
			for k := range nfeat {
				r.features = append(r.features, optF(f(numFixed+k), i))
			}
			rows = append(rows, r)
		}
	}
	return rows, rdr.NumRowGroups()
}

func eqF(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func checkRows(t *testing.T, got []gotRow, events []*pipeline.Event, nfeat int) {
	t.Helper()
	want := map[string]gotRow{}
	for _, ev := range events {
		if !ev.DeadLetter() {
			want[ev.Tx.ID] = wantRow(ev, nfeat)
		}
	}
	seen := map[string]bool{}
	for _, g := range got {
		w, ok := want[g.id]
		if !ok {
			t.Fatalf("unexpected row %q", g.id)
		}
		if seen[g.id] {
			t.Fatalf("row %q twice", g.id)
		}
		seen[g.id] = true
		ok = eqF(g.lat, w.lat) && eqF(g.lon, w.lon) && eqF(g.score, w.score) && slices.Equal(g.reasons, w.reasons) &&
			slices.EqualFunc(g.features, w.features, eqF)
		g.lat, g.lon, g.score, g.reasons, g.features = nil, nil, nil, nil, nil
		w.lat, w.lon, w.score, w.reasons, w.features = nil, nil, nil, nil, nil
		if !ok || fmt.Sprint(g) != fmt.Sprint(w) {
			t.Fatalf("row %s:\ngot  %+v\nwant %+v", g.id, g, w)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%d rows read back, want %d", len(seen), len(want))
	}
}

// readDir reads every Parquet file below root, keyed by its path relative to root.
func readDir(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if !strings.HasSuffix(p, ".parquet") {
			t.Errorf("stray file %s", rel)
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	return out
}

func writeAll(t *testing.T, s *Sink, events []*pipeline.Event, batch int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < len(events); i += batch {
		if err := s.WriteBatch(ctx, events[i:min(i+batch, len(events))]); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

var base = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

func TestRoundTripFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	s, err := New(Options{Dest: Dir{Root: out}, SpoolDir: filepath.Join(dir, "spool"), Features: testFeatures, RowGroupBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	events := testEvents(40000, base, 16000)
	writeAll(t, s, events, 512)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files := readDir(t, out)
	var got []gotRow
	var keys []string
	groups := 0
	for k, b := range files {
		keys = append(keys, k)
		rows, rg := readParquet(t, b, len(testFeatures))
		groups += rg
		got = append(got, rows...)
		// Every row is in its hour's partition.
		for _, r := range rows {
			ts := time.UnixMilli(r.ts).UTC()
			if !strings.HasPrefix(k, ts.Format("dt=2006-01-02/hour=15/")) {
				t.Fatalf("row at %v in %s", ts, k)
			}
		}
	}
	sort.Strings(keys)
	want := []string{
		"dt=2026-11-25/hour=09/part-00000000000000000000-" + fmt.Sprintf("%016x", idHash("tx-0000000")) + ".parquet",
		"dt=2026-11-25/hour=10/part-00000000000000016000-" + fmt.Sprintf("%016x", idHash("tx-0016000")) + ".parquet",
		"dt=2026-11-25/hour=11/part-00000000000000032000-" + fmt.Sprintf("%016x", idHash("tx-0032000")) + ".parquet",
	}
	if !slices.Equal(keys, want) {
		t.Errorf("objects %q\nwant %q", keys, want)
	}
	if groups <= len(files) {
		t.Errorf("%d row groups in %d files: row groups were not cut by bytes", groups, len(files))
	}
	checkRows(t, got, events, len(testFeatures))
	if st := s.Stats(); st.Files != 3 || st.Rows != int64(len(got)) {
		t.Errorf("stats %+v", st)
	}
	if left, _ := listSpool(filepath.Join(dir, "spool")); len(left) != 0 {
		t.Errorf("spool not empty after Close: %v", left)
	}
}

// poll waits until cond holds, failing the test after a deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func TestRollBySizeAndAge(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	var mu sync.Mutex
	now := base
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := New(Options{Dest: Dir{Root: out}, SpoolDir: filepath.Join(dir, "spool"), Features: testFeatures,
		RollBytes: 64 << 10, RollAge: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	events := testEvents(6000, base, 3000)
	writeAll(t, s, events[:5000], 100)
	// Rolled by size: several files per hour, each under the roll size plus one row.
	poll(t, "rolled files", func() bool { return s.Stats().Files >= 4 })
	// Rolled by age: the open files go out once the clock passes RollAge, even when the
	// engine is idle and does not flush.
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	filesBefore := s.Stats().Files
	poll(t, "files rolled by age", func() bool {
		_, err := os.Stat(filepath.Join(dir, "spool"))
		left, _ := listSpool(filepath.Join(dir, "spool"))
		return err == nil && len(left) == 0 && s.Stats().Files > filesBefore
	})
	writeAll(t, s, events[5000:], 100)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files := readDir(t, out)
	var got []gotRow
	perHour := map[string]int{}
	for k, b := range files {
		rows, _ := readParquet(t, b, len(testFeatures))
		got = append(got, rows...)
		perHour[k[:len("dt=2026-11-25/hour=09")]]++
		// The key names the file's first row.
		if want := fmt.Sprintf("part-%020d-%016x.parquet", rows[0].seq, idHash(rows[0].id)); !strings.HasSuffix(k, want) {
			t.Errorf("%s starts with row %d %s", k, rows[0].seq, rows[0].id)
		}
	}
	checkRows(t, got, events, len(testFeatures))
	if perHour["dt=2026-11-25/hour=09"] < 3 || perHour["dt=2026-11-25/hour=10"] < 3 {
		t.Errorf("files per hour %v: not rolled by size", perHour)
	}
}

func TestDeterministicNames(t *testing.T) {
	events := testEvents(9000, base, 2500)
	run := func(dest Destination) {
		s, err := New(Options{Dest: dest, SpoolDir: t.TempDir(), Features: testFeatures, RollBytes: 100 << 10})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, events, 700)
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	a, b := t.TempDir(), t.TempDir()
	run(Dir{Root: a})
	first := readDir(t, a)
	run(Dir{Root: a}) // the same events again, into the same place: the same objects
	run(Dir{Root: b}) // and elsewhere, in different batches
	again, other := readDir(t, a), readDir(t, b)
	if len(first) < 6 {
		t.Fatalf("only %d files", len(first))
	}
	for _, m := range []map[string][]byte{again, other} {
		if len(m) != len(first) {
			t.Fatalf("%d objects, then %d", len(first), len(m))
		}
		for k, v := range first {
			if !bytes.Equal(m[k], v) {
				t.Errorf("object %s differs", k)
			}
		}
	}
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	out, spool := filepath.Join(dir, "out"), filepath.Join(dir, "spool")
	events := testEvents(3000, base, 1000)
	ctx := context.Background()
	s, err := New(Options{Dest: Dir{Root: out}, SpoolDir: spool, Features: testFeatures})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, events[:2000], 250)
	// Written but never flushed: the engine never acknowledged these.
	if err := s.WriteBatch(ctx, events[2000:]); err != nil {
		t.Fatal(err)
	}
	s.kill()
	if files := readDir(t, out); len(files) != 0 {
		t.Fatalf("%d objects before recovery", len(files))
	}
	left, _ := listSpool(spool)
	if len(left) != 2 {
		t.Fatalf("spool holds %v, want two open files", left)
	}
	// A torn block at the end of one log, as a crash in the middle of a write leaves it.
	f, err := os.OpenFile(left[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0, 9, 9})
	f.Close()

	s2, err := New(Options{Dest: Dir{Root: out}, SpoolDir: spool, Features: testFeatures})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "recovered files", func() bool { return s2.Stats().Files == 2 })
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var got []gotRow
	for _, b := range readDir(t, out) {
		rows, _ := readParquet(t, b, len(testFeatures))
		got = append(got, rows...)
	}
	checkRows(t, got, events[:2000], len(testFeatures))
}

// brokenDest fails every object.
type brokenDest struct{}

func (brokenDest) String() string { return "broken://" }
func (brokenDest) Create(context.Context, string) (ObjectWriter, error) {
	return nil, fmt.Errorf("destination down")
}

func TestUploadFailureKeepsSpool(t *testing.T) {
	dir := t.TempDir()
	spool, out := filepath.Join(dir, "spool"), filepath.Join(dir, "out")
	events := testEvents(2000, base, 1000)
	ctx := context.Background()
	counts := &countMetrics{}
	var logBuf syncBuffer
	s, err := New(Options{Dest: brokenDest{}, SpoolDir: spool, Features: testFeatures, Retries: 2, RetryBackoff: time.Millisecond,
		Metrics: counts, Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, events, 500)
	// Close rolls both hours; neither can be written: Close reports it and the rows stay.
	if err := s.Close(ctx); err == nil || !strings.Contains(err.Error(), "destination down") {
		t.Fatalf("Close = %v, want the destination's error", err)
	}
	if n := strings.Count(logBuf.String(), "parquet file could not be written"); n != 4 {
		t.Errorf("%d warnings for 2 files failing twice, want 4:\n%s", n, logBuf.String())
	}
	if err := s.Flush(ctx); err == nil {
		t.Errorf("Flush after a failed upload returned nil")
	}
	if left, _ := listSpool(spool); len(left) != 2 {
		t.Fatalf("spool holds %v, want both files", left)
	}
	// The next process writes them.
	counts2 := &countMetrics{}
	s2, err := New(Options{Dest: Dir{Root: out}, SpoolDir: spool, Features: testFeatures, Metrics: counts2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var got []gotRow
	for _, b := range readDir(t, out) {
		rows, _ := readParquet(t, b, len(testFeatures))
		got = append(got, rows...)
	}
	checkRows(t, got, events, len(testFeatures))
	// Each failed attempt was counted in rows (and logged); the rows count as written once.
	if f, r, w := counts.get(sinks.Failed), counts.get(sinks.Retried), counts.get(sinks.Written); f != 2*len(got) || r != len(got) || w != 0 {
		t.Errorf("failed %d, retried %d, written %d rows; want %d, %d, 0", f, r, w, 2*len(got), len(got))
	}
	if w := counts2.get(sinks.Written); w != len(got) {
		t.Errorf("%d rows counted written, want %d", w, len(got))
	}
}

func TestObjectKey(t *testing.T) {
	for _, tc := range []struct {
		ts   string
		want string
	}{
		{"2026-11-25T10:15:30.123Z", "dt=2026-11-25/hour=10/"},
		{"2026-11-25T00:00:00Z", "dt=2026-11-25/hour=00/"},
		{"2026-11-24T23:59:59.999Z", "dt=2026-11-24/hour=23/"},
		{"1969-12-31T23:30:00Z", "dt=1969-12-31/hour=23/"}, // before the epoch: floor, not truncation
	} {
		ts, _ := time.Parse(time.RFC3339Nano, tc.ts)
		ev := &pipeline.Event{Seq: 42}
		ev.Tx.ID, ev.Tx.TS = "tx-1", ts.UnixMilli()
		want := tc.want + fmt.Sprintf("part-00000000000000000042-%016x.parquet", idHash("tx-1"))
		if got := ObjectKey(ev); got != want {
			t.Errorf("%s: %s, want %s", tc.ts, got, want)
		}
	}
}

func TestOpenDestination(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ url, want string }{
		{"archive", "file://archive"},
		{"/var/archive", "file:///var/archive"},
		{"file:///var/archive", "file:///var/archive"},
		{"file://rel/dir", "file://rel/dir"},
		{"s3://bucket/a/b/", "s3://bucket/a/b"},
		{"s3://bucket", "s3://bucket"},
	} {
		d, err := OpenDestination(ctx, tc.url, S3Options{Region: "us-east-1", AccessKeyID: "k", SecretAccessKey: "s"})
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if d.String() != tc.want {
			t.Errorf("%s: %s, want %s", tc.url, d, tc.want)
		}
	}
	for _, bad := range []string{"", "gs://bucket/x", "s3:///prefix", "file://"} {
		if _, err := OpenDestination(ctx, bad, S3Options{}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// gatedDest holds every object until open is closed.
type gatedDest struct {
	Dir
	open chan struct{}
}

func (d gatedDest) Create(ctx context.Context, key string) (ObjectWriter, error) {
	<-d.open
	return d.Dir.Create(ctx, key)
}

func TestBackpressureAndManyHours(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	dest := gatedDest{Dir: Dir{Root: out}, open: make(chan struct{})}
	s, err := New(Options{Dest: dest, SpoolDir: filepath.Join(dir, "spool"), Features: testFeatures, MaxOpen: 2, MaxPending: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Five hours interleaved, two files open at most: each new hour rolls the file written
	// to least recently.
	events := testEvents(50, base, 1)
	for i, ev := range events {
		ev.Tx.TS = base.Add(time.Duration(i%5) * time.Hour).UnixMilli()
	}
	ctx := context.Background()
	if err := s.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	// The destination holds the rolled files: Flush makes the rows durable, then waits
	// for room in the upload queue rather than let rolled files pile up.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.Flush(short); err != context.DeadlineExceeded {
		t.Fatalf("Flush with a stuck destination = %v, want the context's deadline", err)
	}
	close(dest.open)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	files := readDir(t, out)
	var got []gotRow
	for k, b := range files {
		rows, _ := readParquet(t, b, len(testFeatures))
		for _, r := range rows {
			if !strings.HasPrefix(k, time.UnixMilli(r.ts).UTC().Format("dt=2006-01-02/hour=15/")) {
				t.Errorf("row at %v in %s", time.UnixMilli(r.ts).UTC(), k)
			}
		}
		got = append(got, rows...)
	}
	checkRows(t, got, events, len(testFeatures))
	if len(files) < 40 {
		t.Errorf("%d files for 50 rows over 5 hours with 2 open at once", len(files))
	}
}

// countMetrics counts a sink's items by outcome.
type countMetrics struct {
	mu sync.Mutex
	n  map[sinks.Outcome]int
}

func (c *countMetrics) Add(_ string, o sinks.Outcome, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[sinks.Outcome]int{}
	}
	c.n[o] += n
}

func (c *countMetrics) get(o sinks.Outcome) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[o]
}

// syncBuffer is a bytes.Buffer safe for the uploader's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
