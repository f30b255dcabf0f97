package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/window"
	"github.com/fraudpipe/fraudpipe/scorers/velocity"
	filesink "github.com/fraudpipe/fraudpipe/sinks/file"
)

// FuzzTransactionsEndpoint feeds arbitrary bodies to both POST endpoints of a server that a
// real engine reads: the answer is never a 5xx other than 503, always JSON, and nothing
// panics.
func FuzzTransactionsEndpoint(f *testing.F) {
	srv, err := New(Options{Timeout: 5 * time.Second, IdempotencyCache: 10_000, MaxBatch: 50})
	if err != nil {
		f.Fatal(err)
	}
	schema := pipeline.NewFeatureSchema()
	vel, err := velocity.New(velocity.Config{Windows: window.Config{Durations: window.DefaultDurations()}}, schema)
	if err != nil {
		f.Fatal(err)
	}
	eng, err := pipeline.NewEngine(pipeline.EngineOptions{
		Config: pipeline.EngineConfig{Partitions: 2, Decoders: 1}, Schema: schema,
		Scorers: []pipeline.ScorerFactory{vel},
		Sinks:   []pipeline.Sink{filesink.NewWriter(io.Discard, filesink.Options{Kind: filesink.Decisions})},
	})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx, srv) }()
	f.Cleanup(func() { cancel(); <-done; srv.Close() })

	f.Add(tx("f-1", "card-1", "1.00"), false)
	f.Add(tx("f-1", "card-1", "1.00"), true)
	f.Add([]byte(`{"id":"f-2","ts":"2026-11-25T10:15:30Z","card_id":"c","account_id":"a","merchant_id":"m","amount":12,"currency":"JPY","lat":91}`), false)
	f.Add([]byte(`[{"id":"f-3"},`+string(tx("f-4", "c", "0.01"))+`]`), true)
	f.Add([]byte("{\"id\":\"\xff\"}\n\n{}\n"), true)
	f.Add([]byte(`{"id":"f-5","amount":"1e400"}`), false)
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`), true)
	f.Add([]byte{}, false)

	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		path, ct := PathTransactions, "application/json"
		if batch {
			path = PathBatch
			if len(body) > 0 && body[0] != '[' {
				ct = "application/x-ndjson"
			}
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", rec.Body.Bytes())
		}
	})
}
