package opensearch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
)

// TestRealCluster indexes decisions into the cluster at OPENSEARCH_URL (with
// OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD when set) and reads them back. It skips when
// OPENSEARCH_URL is not set. It uses its own index prefix and deletes it afterwards.
//
//	docker run -p 9200:9200 -e discovery.type=single-node -e DISABLE_SECURITY_PLUGIN=true opensearchproject/opensearch:2
//	OPENSEARCH_URL=http://localhost:9200 go test ./sinks/opensearch -run RealCluster -v
func TestRealCluster(t *testing.T) {
	url := os.Getenv("OPENSEARCH_URL")
	if url == "" {
		t.Skip("OPENSEARCH_URL not set")
	}
	prefix := fmt.Sprintf("fraudpipe-test-%d", time.Now().UnixNano())
	cfg := Config{URLs: []string{url}, Username: os.Getenv("OPENSEARCH_USERNAME"), Password: os.Getenv("OPENSEARCH_PASSWORD"),
		TLSInsecure: true, Index: prefix, InstallTemplate: true, Retention: 24 * time.Hour, Features: []string{"f1"}}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer func() {
		w.do(ctx, http.MethodDelete, "/"+prefix+"-*", nil)
		w.do(ctx, http.MethodDelete, "/_index_template/"+prefix, nil)
		w.do(ctx, http.MethodDelete, "/_plugins/_ism/policies/"+prefix, nil)
		w.Close(ctx)
	}()
	dead := sinktest.NewRecorder()
	s := sinks.New(w, sinks.Options{Name: "real", Required: true, DeadLetters: dead, Retry: fastRetry()})
	var evs []*pipeline.Event
	for i := range 100 {
		ev := sinktest.Event(i, fmt.Sprintf("tx-%03d", i), fmt.Sprintf("card-%d", i%7), i%4 == 0)
		ev.Features = []float64{float64(i)}
		evs = append(evs, ev)
	}
	for range 2 { // the second round is a redelivery: still 100 documents
		if err := s.WriteBatch(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := dead.Reasons(); len(d) != 0 {
		t.Fatalf("dead letters from a real cluster: %v", d)
	}
	w.do(ctx, http.MethodPost, "/"+prefix+"-*/_refresh", nil)
	status, body, err := w.do(ctx, http.MethodGet, "/"+prefix+"-*/_count", nil)
	if err != nil || status != 200 {
		t.Fatalf("count: %d %s %v", status, body, err)
	}
	var c struct{ Count int }
	json.Unmarshal(body, &c)
	if c.Count != 100 {
		t.Errorf("%d documents, want 100", c.Count)
	}
	q := `{"size":0,"query":{"term":{"decision":"decline"}},"aggs":{"r":{"terms":{"field":"reasons"}}}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/"+prefix+"-*/_search", strings.NewReader(q))
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Stream(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"rule:card_testing"`) {
		t.Errorf("reasons aggregation: %s", b)
	}
}
