package s3batch

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

const bucket = "banks"

// newClient starts an in-process S3 server (gofakes3) on loopback over plain http and
// returns a client of it with an empty bucket.
func newTestClient(t testing.TB) *s3.Client {
	t.Helper()
	return newTestClientWith(t, nil)
}

// newTestClientWith puts wrap, when not nil, in front of the server.
func newTestClientWith(t testing.TB, wrap func(http.Handler) http.Handler) *s3.Client {
	t.Helper()
	var h http.Handler = gofakes3.New(s3mem.New()).Server()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := s3.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.UsePathStyle = true
	})
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	return c
}

func put(t testing.TB, c *s3.Client, key string, data []byte) {
	t.Helper()
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func openSource(t testing.TB, c *s3.Client, o Options) *Source {
	t.Helper()
	o.Bucket, o.Client = bucket, c
	if o.Prefix == "" {
		o.Prefix = "in/"
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// msg is a message copied out of its batch.
type msg struct {
	data string
	pos  int64
}

// readAll reads a batch source to its end.
func readAll(t testing.TB, s *Source) []msg {
	t.Helper()
	var out []msg
	for {
		msgs, ack, err := s.ReadBatch(context.Background())
		if errors.Is(err, pipeline.ErrEndOfInput) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Partition != 0 {
				t.Fatalf("partition %d", m.Partition)
			}
			out = append(out, msg{string(m.Data), m.Pos})
		}
		if ack != nil {
			ack(context.Background(), nil)
		}
	}
}

// readN reads batches until at least n messages came.
func readN(t testing.TB, s *Source, n int) []msg {
	t.Helper()
	var out []msg
	for len(out) < n {
		msgs, ack, err := s.ReadBatch(context.Background())
		if err != nil {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
		for _, m := range msgs {
			out = append(out, msg{string(m.Data), m.Pos})
		}
		ack(context.Background(), nil)
	}
	return out
}

// tx is the test's description of one transaction.
type tx struct {
	id, ts, card, amount, currency string
	lat, lon                       float64
	geo                            bool
	fraud                          *bool
	scenario                       string
}

func (x tx) json() string {
	s := fmt.Sprintf(`{"id":%q,"ts":%q,"card_id":%q,"account_id":"acct-%s","merchant_id":"m-1","amount":%q,"currency":%q`,
		x.id, x.ts, x.card, x.card, x.amount, x.currency)
	if x.geo {
		s += fmt.Sprintf(`,"lat":%v,"lon":%v`, x.lat, x.lon)
	}
	if x.fraud != nil {
		s += fmt.Sprintf(`,"label":{"fraud":%v,"scenario":%q}`, *x.fraud, x.scenario)
	}
	return s + "}"
}

func (x tx) csv() string {
	s := fmt.Sprintf("%s,%s,%s,acct-%s,m-1,%s,%s,", x.id, x.ts, x.card, x.card, x.amount, x.currency)
	if x.geo {
		s += fmt.Sprintf("%v,%v", x.lat, x.lon)
	} else {
		s += ","
	}
	if x.fraud != nil {
		s += fmt.Sprintf(",%v,%s", *x.fraud, x.scenario)
	} else {
		s += ",,"
	}
	return s
}

const csvHeader = "id,ts,card_id,account_id,merchant_id,amount,currency,lat,lon,label_fraud,label_scenario"

// makeTxs returns n transactions with ids prefix-0000...
func makeTxs(prefix string, n int) []tx {
	yes, no := true, false
	out := make([]tx, n)
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range out {
		x := tx{
			id:       fmt.Sprintf("%s-%04d", prefix, i),
			ts:       base.Add(time.Duration(i)*time.Second + 123*time.Millisecond).Format(time.RFC3339Nano),
			card:     fmt.Sprintf("card-%d", i%7),
			amount:   fmt.Sprintf("%d.%02d", 10+i, i%100),
			currency: "EUR",
		}
		if i%3 == 0 {
			x.amount, x.currency = fmt.Sprint(500+i), "JPY"
		}
		if i%2 == 0 {
			x.geo, x.lat, x.lon = true, 48.1+float64(i)/1000, 11.5-float64(i)/1000
		}
		switch i % 4 {
		case 1:
			x.fraud, x.scenario = &yes, "card_testing"
		case 2:
			x.fraud, x.scenario = &no, "none"
		}
		out[i] = x
	}
	return out
}

func ndjson(txs []tx) []byte {
	var b bytes.Buffer
	for _, x := range txs {
		b.WriteString(x.json())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func csvFile(txs []tx) []byte {
	var b bytes.Buffer
	b.WriteString(csvHeader + "\r\n")
	for _, x := range txs {
		b.WriteString(x.csv() + "\r\n")
	}
	return b.Bytes()
}

func gz(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// parquetFile writes txs with pqarrow: amount as decimal(20,4) or, with minor, as integer
// minor units; ts as a timestamp; the label as a struct; rowGroup rows per row group.
func parquetFile(t testing.TB, txs []tx, minor bool, rowGroup int) []byte {
	t.Helper()
	labelType := arrow.StructOf(
		arrow.Field{Name: "fraud", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		arrow.Field{Name: "scenario", Type: arrow.BinaryTypes.String, Nullable: true},
	)
	amountField := arrow.Field{Name: "amount", Type: &arrow.Decimal128Type{Precision: 20, Scale: 4}}
	if minor {
		amountField = arrow.Field{Name: "amount_minor", Type: arrow.PrimitiveTypes.Int64}
	}
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
		{Name: "card_id", Type: arrow.BinaryTypes.String},
		{Name: "account_id", Type: arrow.BinaryTypes.String},
		{Name: "merchant_id", Type: arrow.BinaryTypes.String},
		amountField,
		{Name: "currency", Type: arrow.BinaryTypes.String},
		{Name: "lat", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "lon", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "label", Type: labelType, Nullable: true},
		{Name: "decision", Type: arrow.BinaryTypes.String, Nullable: true}, // not a contract field: ignored
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for _, x := range txs {
		b.Field(0).(*array.StringBuilder).Append(x.id)
		ts, err := time.Parse(time.RFC3339Nano, x.ts)
		if err != nil {
			t.Fatal(err)
		}
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMilli()))
		b.Field(2).(*array.StringBuilder).Append(x.card)
		b.Field(3).(*array.StringBuilder).Append("acct-" + x.card)
		b.Field(4).(*array.StringBuilder).Append("m-1")
		cur, _ := pipeline.LookupCurrency(x.currency)
		m, err := pipeline.ParseAmount(x.amount, cur.Digits)
		if err != nil {
			t.Fatal(err)
		}
		if minor {
			b.Field(5).(*array.Int64Builder).Append(m)
		} else {
			scale := []int64{10000, 1000, 100, 10, 1}[cur.Digits]
			b.Field(5).(*array.Decimal128Builder).Append(decimal128.FromI64(m * scale))
		}
		b.Field(6).(*array.StringBuilder).Append(x.currency)
		if x.geo {
			b.Field(7).(*array.Float64Builder).Append(x.lat)
			b.Field(8).(*array.Float64Builder).Append(x.lon)
		} else {
			b.Field(7).AppendNull()
			b.Field(8).AppendNull()
		}
		lb := b.Field(9).(*array.StructBuilder)
		if x.fraud != nil {
			lb.Append(true)
			lb.FieldBuilder(0).(*array.BooleanBuilder).Append(*x.fraud)
			lb.FieldBuilder(1).(*array.StringBuilder).Append(x.scenario)
		} else {
			lb.AppendNull()
		}
		b.Field(10).(*array.StringBuilder).Append("approve")
	}
	rec := b.NewRecord()
	defer rec.Release()
	var out bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(int64(rowGroup)))
	w, err := pqarrow.NewFileWriter(sc, &out, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// want decodes x's canonical JSON: what every format must read to.
func want(t testing.TB, x tx) pipeline.Transaction {
	t.Helper()
	var w pipeline.Transaction
	if err := pipeline.DecodeTransaction([]byte(x.json()), &w); err != nil {
		t.Fatalf("test data %s: %v", x.json(), err)
	}
	w.TSText = ""
	return w
}

// check decodes each message and compares it with the transactions expected, in order.
func check(t testing.TB, got []msg, txs []tx) {
	t.Helper()
	if len(got) != len(txs) {
		t.Fatalf("got %d messages, want %d", len(got), len(txs))
	}
	for i, m := range got {
		var g pipeline.Transaction
		if err := pipeline.DecodeTransaction([]byte(m.data), &g); err != nil {
			t.Fatalf("message %d %s: %v", i, m.data, err)
		}
		g.TSText = ""
		if w := want(t, txs[i]); g != w {
			t.Fatalf("message %d:\n got %+v\nwant %+v\nfrom %s", i, g, w, m.data)
		}
	}
}

func TestFormats(t *testing.T) {
	c := newTestClient(t)
	a, b, cc, d, e := makeTxs("a", 30), makeTxs("b", 25), makeTxs("c", 20), makeTxs("d", 40), makeTxs("e", 12)
	// Put out of key order: the source reads in key order.
	put(t, c, "in/e.parquet", parquetFile(t, e, true, 5))
	put(t, c, "in/c.csv", csvFile(cc))
	put(t, c, "in/a.ndjson", ndjson(a))
	put(t, c, "in/d.parquet", parquetFile(t, d, false, 16))
	put(t, c, "in/b.jsonl.gz", gz(t, ndjson(b)))
	put(t, c, "other/z.ndjson", ndjson(makeTxs("z", 3))) // outside the prefix
	put(t, c, "in/", nil)                                // a folder marker
	s := openSource(t, c, Options{BatchSize: 7})
	got := readAll(t, s)
	all := slices.Concat(a, b, cc, d, e)
	check(t, got, all)
	// Positions: line numbers for NDJSON and CSV (the header is line 1), row numbers for
	// Parquet.
	if got[0].pos != 1 || got[29].pos != 30 || got[30].pos != 1 || got[55].pos != 2 || got[75].pos != 1 || got[114].pos != 40 {
		t.Errorf("positions %d %d %d %d %d %d", got[0].pos, got[29].pos, got[30].pos, got[55].pos, got[75].pos, got[114].pos)
	}
	if _, _, err := s.ReadBatch(context.Background()); !errors.Is(err, pipeline.ErrEndOfInput) {
		t.Errorf("after the end: %v", err)
	}
}

func TestForcedFormat(t *testing.T) {
	c := newTestClient(t)
	txs := makeTxs("f", 5)
	put(t, c, "in/drop-1.txt", csvFile(txs))
	s := openSource(t, c, Options{Format: "csv"})
	check(t, readAll(t, s), txs)
	if _, err := Open(context.Background(), Options{Bucket: bucket, Client: c, Format: "xml"}); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("bad format: %v", err)
	}
}

func TestCSVRows(t *testing.T) {
	c := newTestClient(t)
	data := "\ufeffid, ts ,card_id,account_id,merchant_id,amount,currency,lat,note,mcc\n" +
		`t1,2026-11-25T10:00:00Z,c1,a1,m1,12.50,EUR,48.5,"a, ""quoted""` + "\nnote\",5411\n" +
		"t2,2026-11-25T10:00:01Z,c1,a1,m1,1,EUR,north,,\n" +
		"t3,2026-11-25T10:00:02Z,c1,a1,m1,2,EUR\n" +
		"\n" +
		`t4,2026-11-25T10:00:03Z,c1,a1,m1,3,EUR,,x"y,` + "\n" +
		"t5,2026-11-25T10:00:04Z,c1,a1,m1,1.234,EUR,,,\n"
	put(t, c, "in/x.csv", []byte(data))
	got := readAll(t, openSource(t, c, Options{}))
	if len(got) != 5 {
		t.Fatalf("%d messages: %v", len(got), got)
	}
	wantJSON := `{"id":"t1","ts":"2026-11-25T10:00:00Z","card_id":"c1","account_id":"a1","merchant_id":"m1","amount":"12.50","currency":"EUR","lat":48.5,"mcc":"5411"}`
	if got[0].data != wantJSON || got[0].pos != 2 {
		t.Errorf("row 1: %s at %d", got[0].data, got[0].pos)
	}
	reasons := []string{"", "bad_field", "invalid_json", "invalid_json", "bad_amount"}
	for i, r := range reasons {
		var g pipeline.Transaction
		err := pipeline.DecodeTransaction([]byte(got[i].data), &g)
		var de *pipeline.DecodeError
		if r == "" {
			if err != nil {
				t.Errorf("row %d: %v", i, err)
			}
			continue
		}
		if !errors.As(err, &de) || de.Code != r {
			t.Errorf("row %d %s: %v, want %s", i, got[i].data, err, r)
		}
	}
	if !strings.Contains(got[2].data, "s3://banks/in/x.csv") || !strings.Contains(got[2].data, "line 5 has 7 fields, the header has 10") ||
		!strings.Contains(got[2].data, "t3,2026") || got[2].pos != 5 {
		t.Errorf("short row: %s at %d", got[2].data, got[2].pos)
	}
	if !strings.Contains(got[3].data, "quote inside an unquoted field") || got[3].pos != 7 {
		t.Errorf("bare quote: %s at %d", got[3].data, got[3].pos)
	}
}

func TestCorruptObjects(t *testing.T) {
	c := newTestClient(t)
	good := makeTxs("g", 4)
	put(t, c, "in/1-bad.ndjson.gz", []byte("this is not gzip"))
	truncated := gz(t, ndjson(makeTxs("t", 200)))
	put(t, c, "in/2-truncated.ndjson.gz", truncated[:len(truncated)/2])
	put(t, c, "in/3-bad.parquet", []byte("PAR1 certainly not a parquet file PAR1"))
	put(t, c, "in/4-noheader.csv", []byte("id,ts\n1,2\n"))
	put(t, c, "in/5-readme.txt", []byte("hello"))
	put(t, c, "in/6-good.ndjson", ndjson(good))
	got := readAll(t, openSource(t, c, Options{}))
	var problems []string
	var rest []msg
	for _, m := range got {
		if strings.HasPrefix(m.data, "s3batch: ") {
			problems = append(problems, m.data)
		} else {
			rest = append(rest, m)
		}
	}
	wantProblems := []string{"1-bad.ndjson.gz: not a valid gzip stream", "2-truncated.ndjson.gz: object skipped after row", "3-bad.parquet: not a valid Parquet file",
		"4-noheader.csv: the header has no card_id column", "5-readme.txt: the extension is not"}
	if len(problems) != len(wantProblems) {
		t.Fatalf("problems %q", problems)
	}
	for i, p := range problems {
		if !strings.Contains(p, wantProblems[i]) {
			t.Errorf("problem %d: %s, want %s", i, p, wantProblems[i])
		}
		var g pipeline.Transaction
		if err := pipeline.DecodeTransaction([]byte(p), &g); err == nil {
			t.Errorf("problem %d decodes: %s", i, p)
		}
	}
	// The truncated object's rows before the break are read, then the good object.
	if n := len(rest); n < len(good)+1 || n > len(good)+200 {
		t.Fatalf("%d rows", n)
	}
	check(t, rest[len(rest)-len(good):], good)
}

// TestEngineDeadLetters runs the real engine: bad objects and bad rows reach the dead
// letters with a reason, and every good row is decided.
func TestEngineDeadLetters(t *testing.T) {
	c := newTestClient(t)
	txs := makeTxs("e", 10)
	put(t, c, "in/a.ndjson.gz", []byte("garbage"))
	put(t, c, "in/b.csv", append(csvFile(txs), "x,y\n"...))
	s := openSource(t, c, Options{BatchSize: 4})
	decided, dead := &collect{}, &collect{}
	e, err := pipeline.NewEngine(pipeline.EngineOptions{Sinks: []pipeline.Sink{decided}, DeadLetters: dead})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if len(decided.raw) != len(txs) || len(dead.raw) != 2 {
		t.Fatalf("decided %d, dead %d: %q", len(decided.raw), len(dead.raw), dead.raw)
	}
	if !strings.Contains(dead.raw[0], "s3://banks/in/a.ndjson.gz: not a valid gzip stream") || !strings.Contains(dead.raw[1], "s3://banks/in/b.csv: CSV line 12 has 2 fields") {
		t.Errorf("dead letters %q", dead.raw)
	}
}

type collect struct {
	mu  sync.Mutex
	raw []string
}

func (c *collect) WriteBatch(_ context.Context, evs []*pipeline.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range evs {
		c.raw = append(c.raw, string(ev.Raw))
	}
	return nil
}
func (c *collect) Flush(context.Context) error { return nil }
func (c *collect) Close(context.Context) error { return nil }

// TestResume stops in the middle of objects of every format and resumes from the position
// in a new source: every row is read exactly once.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		key  string
		data func(t *testing.T, txs []tx) []byte
	}{
		{"in/a.ndjson", func(t *testing.T, txs []tx) []byte { return ndjson(txs) }},
		{"in/a.ndjson.gz", func(t *testing.T, txs []tx) []byte { return gz(t, ndjson(txs)) }},
		{"in/a.csv.gz", func(t *testing.T, txs []tx) []byte { return gz(t, csvFile(txs)) }},
		{"in/a.parquet", func(t *testing.T, txs []tx) []byte { return parquetFile(t, txs, false, 10) }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			c := newTestClient(t)
			first, second := makeTxs("x", 47), makeTxs("y", 9)
			put(t, c, tc.key, tc.data(t, first))
			put(t, c, "in/b.ndjson", ndjson(second))
			all := slices.Concat(first, second)
			for _, stop := range []int{1, 10, 23, 47, 50} {
				s := openSource(t, c, Options{BatchSize: 1})
				got := readN(t, s, stop)
				pos, err := s.Position()
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				s2 := openSource(t, c, Options{BatchSize: 5})
				if err := s2.Seek(pos); err != nil {
					t.Fatal(err)
				}
				got = append(got, readAll(t, s2)...)
				check(t, got, all)
				// Resuming from the end reads nothing again.
				end, _ := s2.Position()
				s3 := openSource(t, c, Options{})
				if err := s3.Seek(end); err != nil {
					t.Fatal(err)
				}
				if again := readAll(t, s3); len(again) != 0 {
					t.Fatalf("stop %d: %d messages read again", stop, len(again))
				}
			}
		})
	}
}

func TestSeekETagChanged(t *testing.T) {
	c := newTestClient(t)
	put(t, c, "in/a.ndjson", ndjson(makeTxs("a", 20)))
	s := openSource(t, c, Options{BatchSize: 5})
	readN(t, s, 5)
	pos, _ := s.Position()
	put(t, c, "in/a.ndjson", ndjson(makeTxs("A", 20)))
	err := openSource(t, c, Options{}).Seek(pos)
	if err == nil || !strings.Contains(err.Error(), "changed since the checkpoint") {
		t.Fatalf("seek after overwrite: %v", err)
	}
	if _, err := c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("in/a.ndjson")}); err != nil {
		t.Fatal(err)
	}
	if err := openSource(t, c, Options{}).Seek(pos); err == nil || !strings.Contains(err.Error(), "no longer exists") {
		t.Fatalf("seek after delete: %v", err)
	}
	if err := openSource(t, c, Options{Prefix: "elsewhere/"}).Seek(pos); err == nil || !strings.Contains(err.Error(), "this source reads") {
		t.Fatalf("seek on another prefix: %v", err)
	}
}

// pollUntil reads a live source until cond holds for everything read, or fails at the
// deadline.
func pollUntil(t *testing.T, s *Source, got *[]msg, cond func([]msg) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(*got) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out; read %d messages", len(*got))
		}
		msgs, ack, err := s.ReadBatch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			*got = append(*got, msg{string(m.Data), m.Pos})
		}
		if ack != nil {
			ack(context.Background(), nil)
		}
	}
}

func TestPoll(t *testing.T) {
	c := newTestClient(t)
	a, b, cc := makeTxs("a", 5), makeTxs("b", 6), makeTxs("c", 7)
	put(t, c, "in/2026-11-25/a.ndjson", ndjson(a))
	put(t, c, "in/2026-11-25/c.ndjson", ndjson(cc))
	s := openSource(t, c, Options{Poll: 10 * time.Millisecond})
	var got []msg
	pollUntil(t, s, &got, func(m []msg) bool { return len(m) == len(a)+len(cc) })
	check(t, got, slices.Concat(a, cc))
	// Nothing new: an empty batch, not the end.
	msgs, _, err := s.ReadBatch(context.Background())
	if err != nil || len(msgs) != 0 {
		t.Fatalf("idle: %d messages, %v", len(msgs), err)
	}
	// A late object with a smaller key is read; an overwritten finished one is not.
	put(t, c, "in/2026-11-25/b.ndjson", ndjson(b))
	put(t, c, "in/2026-11-25/a.ndjson", ndjson(makeTxs("A", 3)))
	pollUntil(t, s, &got, func(m []msg) bool { return len(m) >= len(a)+len(cc)+len(b) })
	d := makeTxs("d", 2)
	put(t, c, "in/2026-11-26/d.ndjson", ndjson(d))
	pollUntil(t, s, &got, func(m []msg) bool { return len(m) >= len(a)+len(cc)+len(b)+len(d) })
	check(t, got, slices.Concat(a, cc, b, d))

	// The position survives a restart: a new source reads only what is new.
	pos, _ := s.Position()
	s.Close()
	s2 := openSource(t, c, Options{Poll: 10 * time.Millisecond})
	if err := s2.Seek(pos); err != nil {
		t.Fatal(err)
	}
	e := makeTxs("e", 3)
	put(t, c, "in/2026-11-26/e.ndjson", ndjson(e))
	var more []msg
	pollUntil(t, s2, &more, func(m []msg) bool { return len(m) >= len(e) })
	check(t, more, e)
}

// TestFloor: objects finished longer than the horizon ago move under the floor, so the
// position stays small, and they are not listed again.
func TestFloor(t *testing.T) {
	c := newTestClient(t)
	for i := range 50 {
		put(t, c, fmt.Sprintf("in/%03d.ndjson", i), ndjson(makeTxs(fmt.Sprint(i), 2)))
	}
	s := openSource(t, c, Options{Poll: time.Millisecond, Horizon: time.Nanosecond})
	s.listPage = 7
	var got []msg
	pollUntil(t, s, &got, func(m []msg) bool { return len(m) == 100 })
	// The next listing moves the floor over every finished object.
	s.now = func() time.Time { return time.Now().Add(time.Hour) }
	pollUntil(t, s, &got, func([]msg) bool { return s.floor == "in/049.ndjson" })
	pos, _ := s.Position()
	if len(pos) > 200 || len(s.done) != 0 {
		t.Fatalf("position %s", pos)
	}
	s2 := openSource(t, c, Options{})
	if err := s2.Seek(pos); err != nil {
		t.Fatal(err)
	}
	if again := readAll(t, s2); len(again) != 0 {
		t.Fatalf("%d read again", len(again))
	}
	// Within the horizon the finished keys stay in the position.
	s3 := openSource(t, c, Options{})
	s3.listPage = 9
	if got := readAll(t, s3); len(got) != 100 {
		t.Fatalf("%d read", len(got))
	}
	pos, _ = s3.Position()
	if strings.Count(string(pos), ".ndjson") != 50 {
		t.Fatalf("position %s", pos)
	}
}

func TestShutdown(t *testing.T) {
	c := newTestClient(t)
	s := openSource(t, c, Options{Poll: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for {
			_, _, err := s.ReadBatch(ctx)
			if err != nil {
				done <- err
				return
			}
		}
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBatch did not return after cancel")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, bucket, prefix string }{
		{"s3://b/incoming/", "b", "incoming/"},
		{"s3://b", "b", ""},
		{"s3://b/x/bank-a-", "b", "x/bank-a-"},
	} {
		b, p, err := ParseURL(tc.in)
		if err != nil || b != tc.bucket || p != tc.prefix {
			t.Errorf("%s: %q %q %v", tc.in, b, p, err)
		}
	}
	for _, bad := range []string{"b/x", "s3:///x", "file:///x"} {
		if _, _, err := ParseURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// cutWriter passes on the first n body bytes, then breaks the connection.
type cutWriter struct {
	http.ResponseWriter
	n     int
	onCut func()
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		w.onCut()
		w.ResponseWriter.Write(p[:w.n])
		w.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	w.n -= len(p)
	return w.ResponseWriter.Write(p)
}

// TestBrokenDownload: a download that breaks off in the middle is opened again and read
// on from where it stopped, every row once.
func TestBrokenDownload(t *testing.T) {
	for _, key := range []string{"in/a.ndjson.gz", "in/a.csv", "in/a.parquet"} {
		t.Run(key, func(t *testing.T) {
			var mu sync.Mutex
			cuts := 0
			c := newTestClientWith(t, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					cut := r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+key) && cuts < 2
					mu.Unlock()
					if cut {
						w = &cutWriter{ResponseWriter: w, n: 1000, onCut: func() { mu.Lock(); cuts++; mu.Unlock() }}
					}
					h.ServeHTTP(w, r)
				})
			})
			txs := makeTxs("r", 300)
			var data []byte
			switch {
			case strings.HasSuffix(key, ".gz"):
				data = gz(t, ndjson(txs))
			case strings.HasSuffix(key, ".csv"):
				data = csvFile(txs)
			default:
				data = parquetFile(t, txs, false, 100)
			}
			put(t, c, key, data)
			check(t, readAll(t, openSource(t, c, Options{BatchSize: 50})), txs)
			mu.Lock()
			defer mu.Unlock()
			if cuts != 2 {
				t.Errorf("%d downloads cut", cuts)
			}
		})
	}
}

// writeParquet writes one record of the given columns.
func writeParquet(t *testing.T, fields []arrow.Field, cols []arrow.Array) []byte {
	t.Helper()
	sc := arrow.NewSchema(fields, nil)
	rec := array.NewRecord(sc, cols, int64(cols[0].Len()))
	defer rec.Release()
	var out bytes.Buffer
	w, err := pqarrow.NewFileWriter(sc, &out, parquet.NewWriterProperties(), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func strs(vals ...string) arrow.Array {
	b := array.NewStringBuilder(memory.DefaultAllocator)
	b.AppendValues(vals, nil)
	return b.NewArray()
}

// TestParquetTypes: the column types docs/sources.md lists read to the contract's
// JSON, and a column of a type that cannot be read is reported once for the object.
func TestParquetTypes(t *testing.T) {
	c := newTestClient(t)
	mem := memory.DefaultAllocator
	db := array.NewDictionaryBuilder(mem, &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String})
	db.(*array.BinaryDictionaryBuilder).AppendString("t-1")
	db.(*array.BinaryDictionaryBuilder).AppendString("t-2")
	ids := db.NewArray()
	tsb := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Microsecond})
	tsb.AppendValues([]arrow.Timestamp{1764065730123456, 1764065731000000}, nil)
	mcc := array.NewInt32Builder(mem)
	mcc.AppendValues([]int32{742, 5411}, nil)
	lat := array.NewFloat32Builder(mem)
	lat.AppendValues([]float32{48.5, 0}, []bool{true, false})
	lon := array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 9, Scale: 6})
	lon.AppendValues([]decimal128.Num{decimal128.FromI64(-11_500_000), decimal128.FromI64(0)}, []bool{true, false})
	fraud := array.NewBooleanBuilder(mem)
	fraud.AppendValues([]bool{true, false}, nil)
	scen := array.NewInt64Builder(mem)
	scen.AppendValues([]int64{3, 0}, []bool{true, false})
	fields := []arrow.Field{
		{Name: "id", Type: ids.DataType()},
		{Name: "ts", Type: tsb.Type()},
		{Name: "card_id", Type: arrow.BinaryTypes.String},
		{Name: "account_id", Type: arrow.BinaryTypes.String},
		{Name: "merchant_id", Type: arrow.BinaryTypes.String},
		{Name: "amount", Type: arrow.BinaryTypes.String},
		{Name: "currency", Type: arrow.BinaryTypes.String},
		{Name: "mcc", Type: arrow.PrimitiveTypes.Int32},
		{Name: "lat", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "lon", Type: lon.Type(), Nullable: true},
		{Name: "label_fraud", Type: arrow.FixedWidthTypes.Boolean},
		{Name: "label_scenario", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}
	cols := []arrow.Array{ids, tsb.NewArray(), strs("c", "c"), strs("a", "a"), strs("m", "m"), strs("1.50", "7"),
		strs("EUR", "JPY"), mcc.NewArray(), lat.NewArray(), lon.NewArray(), fraud.NewArray(), scen.NewArray()}
	put(t, c, "in/1.parquet", writeParquet(t, fields, cols))

	intAmount := array.NewInt64Builder(mem)
	intAmount.Append(150)
	put(t, c, "in/2.parquet", writeParquet(t, []arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String}, {Name: "amount", Type: arrow.PrimitiveTypes.Int64},
	}, []arrow.Array{strs("x"), intAmount.NewArray()}))
	intTS := array.NewInt64Builder(mem)
	intTS.Append(1764065730)
	put(t, c, "in/3.parquet", writeParquet(t, []arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String}, {Name: "ts", Type: arrow.PrimitiveTypes.Int64},
	}, []arrow.Array{strs("x"), intTS.NewArray()}))

	got := readAll(t, openSource(t, c, Options{}))
	want := []string{
		`{"id":"t-1","ts":"2025-11-25T10:15:30.123456Z","card_id":"c","account_id":"a","merchant_id":"m","amount":"1.50","currency":"EUR","mcc":"0742","lat":48.5,"lon":-11.500000,"label":{"fraud":true,"scenario":"3"}}`,
		`{"id":"t-2","ts":"2025-11-25T10:15:31Z","card_id":"c","account_id":"a","merchant_id":"m","amount":"7","currency":"JPY","mcc":"5411","label":{"fraud":false}}`,
		"s3batch: s3://banks/in/2.parquet: column amount is an integer (int64)",
		"s3batch: s3://banks/in/3.parquet: column ts has type int64",
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages: %v", len(got), got)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i].data, w) {
			t.Errorf("message %d:\n got %s\nwant %s", i, got[i].data, w)
		}
	}
	for _, m := range got[:2] {
		var tx pipeline.Transaction
		if err := pipeline.DecodeTransaction([]byte(m.data), &tx); err != nil {
			t.Errorf("%s: %v", m.data, err)
		}
	}
}
