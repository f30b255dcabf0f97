package opensearch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
)

func benchEvents(n int) []*pipeline.Event {
	evs := make([]*pipeline.Event, n)
	for i := range evs {
		evs[i] = sinktest.Event(i, fmt.Sprintf("tx-%09d", i), fmt.Sprintf("card-%d", i%1000), i%20 == 0)
		evs[i].Features = make([]float64, 12)
	}
	return evs
}

var benchFeatures = []string{"f01", "f02", "f03", "f04", "f05", "f06", "f07", "f08", "f09", "f10", "f11", "f12"}

// BenchmarkWriteBulk measures the client's cost per document: encoding, the _bulk request
// through opensearch-go and reading the per-item results, against a responder that only
// reads the body and returns a canned response (so the server's cost is not counted).
func BenchmarkWriteBulk(b *testing.B) {
	const batch = 500
	item := `{"index":{"_index":"fraudpipe-decisions-2026.11.25","_id":"tx-000000001","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":1,"_primary_term":1,"status":201}}`
	resp := []byte(`{"took":3,"errors":false,"items":[` + strings.Repeat(item+",", batch-1) + item + `]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(resp)
	}))
	defer srv.Close()
	w, err := New(Config{URLs: []string{srv.URL}, Features: benchFeatures})
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(batch)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := w.Write(ctx, evs)
		if err != nil || res[batch-1] != nil {
			b.Fatal(err, res[batch-1])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/doc")
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkAppendDocument is the encoding part alone.
func BenchmarkAppendDocument(b *testing.B) {
	evs := benchEvents(100)
	var buf []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = AppendDocument(buf[:0], evs[i%100], benchFeatures)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkWriteBulkDouble is BenchmarkWriteBulk against the full HTTP double (which parses
// every document and applies the strict mapping): client and server cost together.
func BenchmarkWriteBulkDouble(b *testing.B) {
	const batch = 500
	d := newDouble(b)
	w, err := New(Config{URLs: []string{d.URL}, Features: benchFeatures, InstallTemplate: true})
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(batch)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := w.Write(ctx, evs)
		if err != nil || res[batch-1] != nil {
			b.Fatal(err, res[batch-1])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/doc")
}
