package opensearch

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
)

func fastRetry() sinks.Retry {
	return sinks.Retry{InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond}
}

func newWriter(t testing.TB, d *double, mod func(*Config)) *Writer {
	t.Helper()
	cfg := Config{URLs: []string{d.URL}, InstallTemplate: true, Retention: 90 * 24 * time.Hour}
	if mod != nil {
		mod(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func conformance(required, dataStream bool) sinktest.Factory {
	return func(t *testing.T, dead pipeline.Sink) sinktest.Instance {
		d := newDouble(t)
		w := newWriter(t, d, func(c *Config) { c.DataStream = dataStream })
		s := sinks.New(w, sinks.Options{Name: "opensearch-test", Required: required, DeadLetters: dead,
			Batching: sinks.Batching{Count: 50, Period: 5 * time.Millisecond}, Retry: fastRetry()})
		return sinktest.Instance{
			Sink: s, Delivered: d.Delivered, BestEffort: !required,
			SetDown: func(down bool) { d.Set(func(d *double) { d.Down = down }) },
			Reject:  func(id string) { d.Set(func(d *double) { d.BadDoc[id] = true }) },
		}
	}
}

func TestConformanceDaily(t *testing.T)      { sinktest.Run(t, conformance(true, false)) }
func TestConformanceDataStream(t *testing.T) { sinktest.Run(t, conformance(true, true)) }
func TestConformanceBestEffort(t *testing.T) { sinktest.Run(t, conformance(false, false)) }

// TestChaos: per-item 429s, mapping errors, a 413 and a 5xx storm at once; every decision
// ends indexed exactly once, in the index of its day, or in dead letters, never both.
func TestChaos(t *testing.T) {
	d := newDouble(t)
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 3000
	evs := make([]*pipeline.Event, n)
	bad := map[string]bool{}
	for i := range evs {
		id := fmt.Sprintf("tx-%05d", i)
		ev := sinktest.Event(i, id, fmt.Sprintf("card-%d", i%97), i%3 == 0)
		ev.Tx.TS = time.Date(2026, 11, 24+i%3, 23, 59, 0, 0, time.UTC).UnixMilli() // three days
		ev.Tx.TSText = time.UnixMilli(ev.Tx.TS).UTC().Format(time.RFC3339Nano)
		evs[i] = ev
		switch r := rng.IntN(100); {
		case r < 15:
			d.TooMany[id] = 1 + rng.IntN(3)
		case r < 17:
			d.BadDoc[id] = true
			bad[id] = true
		}
	}
	d.Storm = 4       // the first four _bulk requests get 503
	d.MaxBody = 90000 // batches of 500 documents (~200 KB) get 413 and are split
	dead := sinktest.NewRecorder()
	w := newWriter(t, d, nil)
	s := sinks.New(w, sinks.Options{Name: "chaos", Required: true, DeadLetters: dead,
		Batching: sinks.Batching{Count: 500}, Retry: fastRetry()})
	ctx := context.Background()
	for i := 0; i < n; i += 256 {
		if err := s.WriteBatch(ctx, evs[i:min(i+256, n)]); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadIDs := dead.Reasons()
	for _, ev := range evs {
		id := ev.Tx.ID
		in := d.Where(id)
		reason, isDead := deadIDs[id]
		switch {
		case bad[id]:
			if !isDead || len(in) != 0 || !strings.Contains(reason, "mapper_parsing_exception") {
				t.Errorf("%s: mapping error, got indexed in %v, dead letter %q", id, in, reason)
			}
		case isDead:
			t.Errorf("%s dead-lettered (%s) though it could be indexed", id, reason)
		case len(in) != 1:
			t.Errorf("%s indexed in %v, want exactly one index", id, in)
		case in[0] != "fraudpipe-decisions-"+time.UnixMilli(ev.Tx.TS).UTC().Format("2006.01.02"):
			t.Errorf("%s in %s, want its day's index", id, in[0])
		}
	}
	if d.Got413 == 0 || d.Storm != 0 {
		t.Errorf("injections not exercised: %d 413s, %d storm requests left", d.Got413, d.Storm)
	}
	checkKeyOrder(t, evs, d.Delivered(), deadIDs)
	t.Logf("%d _bulk requests, %d documents sent for %d decisions, %d 413s", d.Requests, d.BulkDocs, n, d.Got413)
}

// checkKeyOrder checks that per card the last indexing of each decision is in input order.
func checkKeyOrder(t *testing.T, evs []*pipeline.Event, order []string, dead map[string]string) {
	t.Helper()
	last := map[string]int{}
	for i, id := range order {
		last[id] = i
	}
	prev := map[string]int{}
	for _, ev := range evs {
		if _, ok := dead[ev.Tx.ID]; ok {
			continue
		}
		at := last[ev.Tx.ID]
		if p, ok := prev[ev.Tx.CardID]; ok && at < p {
			t.Errorf("card %s: %s indexed last at %d, before the previous decision (%d)", ev.Tx.CardID, ev.Tx.ID, at, p)
		}
		prev[ev.Tx.CardID] = at
	}
}

// TestSingleDocumentTooLarge: a document the cluster refuses even alone (413) goes to dead
// letters; its neighbours are indexed.
func TestSingleDocumentTooLarge(t *testing.T) {
	d := newDouble(t)
	d.MaxBody = 2000
	w := newWriter(t, d, nil)
	evs := []*pipeline.Event{sinktest.Event(0, "small-1", "A", false), sinktest.Event(1, "huge", "B", true), sinktest.Event(2, "small-2", "A", false)}
	evs[1].Decision.Reasons = []string{strings.Repeat("rule:x", 400)}
	res, err := w.Write(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	ie, ok := res[1].(*sinks.ItemError)
	if res[0] != nil || res[2] != nil || !ok || ie.Retryable || !strings.Contains(ie.Reason, "request_entity_too_large") {
		t.Errorf("results %v", res)
	}
}

// TestNeverAcknowledgesUnconfirmed: a 2xx _bulk response whose items do not account for
// every document (a proxy, a truncated body) is not taken as success.
func TestNeverAcknowledgesUnconfirmed(t *testing.T) {
	w := &Writer{}
	res := make([]error, 2)
	for _, body := range []string{
		`{"errors":false,"items":[{"index":{"status":201}}]}`,
		`{"errors":false}`,
		`<html>ok</html>`,
	} {
		if err := w.classify([]byte(body), res); err == nil {
			t.Errorf("classify(%s) = nil, want an error", body)
		}
	}
	if err := w.classify([]byte(`{"errors":false,"items":[{"index":{"status":201}},{"index":{"status":503}}]}`), res); err != nil || res[0] != nil || res[1] == nil {
		t.Errorf("classify: %v %v", err, res)
	}
}

func TestTemplateAndPolicyIdempotent(t *testing.T) {
	d := newDouble(t)
	ctx := context.Background()
	for range 3 { // three process starts
		w := newWriter(t, d, nil)
		if res, err := w.Write(ctx, []*pipeline.Event{sinktest.Event(0, "a", "A", false)}); err != nil || res[0] != nil {
			t.Fatal(err, res)
		}
		w.Close(ctx)
	}
	if len(d.Templates) != 1 || len(d.Policies) != 1 {
		t.Fatalf("%d templates, %d policies", len(d.Templates), len(d.Policies))
	}
	if p := d.Policies["fraudpipe-decisions"]; p.SeqNo != 2 || !strings.Contains(string(p.Body), `"min_index_age":"90d"`) {
		t.Errorf("policy seq %d: %s", p.SeqNo, p.Body)
	}
	var tmpl struct {
		IndexPatterns []string `json:"index_patterns"`
		Template      struct {
			Mappings struct {
				Properties map[string]struct {
					Type string `json:"type"`
				} `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(d.Templates["fraudpipe-decisions"], &tmpl); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"id": "keyword", "reasons": "keyword", "ts": "date", "amount_minor": "long", "amount": "scaled_float",
		"score": "float", "location": "geo_point", "decision": "keyword", "model": "keyword", "rules": "keyword", "features": "object"}
	for f, typ := range want {
		if got := tmpl.Template.Mappings.Properties[f].Type; got != typ {
			t.Errorf("mapping of %s: %q, want %q", f, got, typ)
		}
	}
	if len(tmpl.IndexPatterns) != 1 || tmpl.IndexPatterns[0] != "fraudpipe-decisions-*" {
		t.Errorf("index patterns %v", tmpl.IndexPatterns)
	}
}

// TestInstallFailureRetried: a cluster down at start fails the first write as a whole
// (retryable); the next installs and indexes.
func TestInstallFailureRetried(t *testing.T) {
	d := newDouble(t)
	d.Down = true
	w := newWriter(t, d, nil)
	ctx := context.Background()
	if _, err := w.Write(ctx, []*pipeline.Event{sinktest.Event(0, "a", "A", false)}); err == nil {
		t.Fatal("Write with the cluster down = nil error")
	}
	d.Set(func(d *double) { d.Down = false })
	if res, err := w.Write(ctx, []*pipeline.Event{sinktest.Event(0, "a", "A", false)}); err != nil || res[0] != nil {
		t.Fatal(err, res)
	}
	if len(d.Templates) != 1 {
		t.Error("no template installed")
	}
}

func TestDocument(t *testing.T) {
	ev := sinktest.Event(3, `tx-"1"`, "card-1", true)
	ev.Tx.Currency = pipeline.Currency{Code: "JPY", Digits: 0}
	ev.Tx.Amount = 1500
	ev.Features = []float64{2, 0.5}
	ev.Late = true
	b := AppendDocument(nil, ev, []string{"card_count_1h", "amount_z"})
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	for k, v := range map[string]any{"id": `tx-"1"`, "amount": 1500.0, "amount_minor": 1500.0, "currency": "JPY", "decision": "decline",
		"channel": "ecom", "score": 0.97, "late": true} {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, doc[k], v, b)
		}
	}
	if loc := doc["location"].(map[string]any); loc["lat"] != 52.52 || loc["lon"] != 13.405 {
		t.Errorf("location %v", loc)
	}
	if f := doc["features"].(map[string]any); f["amount_z"] != 0.5 {
		t.Errorf("features %v", f)
	}
	for k := range doc {
		if !allowed[k] {
			t.Errorf("field %s is not in the mapping", k)
		}
	}
}

func TestAppendMajor(t *testing.T) {
	for _, tt := range []struct {
		minor  int64
		digits int
		want   string
	}{{12345, 2, "123.45"}, {5, 2, "0.05"}, {700, 0, "700"}, {1, 3, "0.001"}, {10000, 4, "1.0000"}, {-250, 2, "-2.50"}} {
		if got := string(AppendMajor(nil, tt.minor, tt.digits)); got != tt.want {
			t.Errorf("AppendMajor(%d, %d) = %s, want %s", tt.minor, tt.digits, got, tt.want)
		}
	}
}

func TestIndexFor(t *testing.T) {
	w := &Writer{cfg: Config{Index: "fraudpipe-decisions"}}
	for ts, want := range map[string]string{
		"2026-11-25T00:00:00Z":      "fraudpipe-decisions-2026.11.25",
		"2026-11-25T23:59:59.999Z":  "fraudpipe-decisions-2026.11.25",
		"2026-11-26T00:30:00+02:00": "fraudpipe-decisions-2026.11.25",
		"1969-12-31T23:00:00Z":      "fraudpipe-decisions-1969.12.31",
	} {
		tm, _ := time.Parse(time.RFC3339, ts)
		if got := w.IndexFor(tm.UnixMilli()); got != want {
			t.Errorf("IndexFor(%s) = %s, want %s", ts, got, want)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, c := range []Config{{Index: "Decisions"}, {URLs: []string{"localhost:9200"}}, {Index: "a,b"}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) = nil error", c)
		}
	}
}

// TestDataStreamRedelivery: in a data stream, documents are created, and a redelivered
// decision's 409 counts as done, not as a failure.
func TestDataStreamRedelivery(t *testing.T) {
	d := newDouble(t)
	w := newWriter(t, d, func(c *Config) { c.DataStream = true; c.Index = "fraudpipe-ds" })
	ctx := context.Background()
	evs := []*pipeline.Event{sinktest.Event(0, "a", "A", false), sinktest.Event(1, "b", "B", true)}
	for round := range 2 {
		res, err := w.Write(ctx, evs)
		if err != nil || res[0] != nil || res[1] != nil {
			t.Fatalf("round %d: %v %v", round, err, res)
		}
	}
	if got := d.Where("a"); len(got) != 1 || got[0] != "fraudpipe-ds" {
		t.Errorf("a in %v", got)
	}
	if !strings.Contains(string(d.Templates["fraudpipe-ds"]), `"data_stream":{"timestamp_field":{"name":"ts"}}`) {
		t.Errorf("template %s", d.Templates["fraudpipe-ds"])
	}
	if p := string(d.Policies["fraudpipe-ds"].Body); !strings.Contains(p, `".ds-fraudpipe-ds-*"`) || !strings.Contains(p, `"rollover"`) {
		t.Errorf("policy %s", p)
	}
}

func TestItemClassification(t *testing.T) {
	w := &Writer{}
	for status, want := range map[int]string{200: "ok", 201: "ok", 409: "permanent", 400: "permanent", 404: "permanent",
		408: "retry", 429: "retry", 500: "retry", 503: "retry"} {
		got := "ok"
		if err := w.itemResult(&bulkItem{Status: status}); err != nil {
			got = "permanent"
			if err.(*sinks.ItemError).Retryable {
				got = "retry"
			}
		}
		if got != want {
			t.Errorf("item status %d: %s, want %s", status, got, want)
		}
	}
}
