package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/window"
	"github.com/fraudpipe/fraudpipe/scorers/velocity"
	filesink "github.com/fraudpipe/fraudpipe/sinks/file"
)

// harness is a Server on loopback and a real engine (velocity features, a decisions file
// sink) reading from it.
type harness struct {
	t         testing.TB
	srv       *Server
	url       string
	decisions string
	ckpt      pipeline.CheckpointStore
	names     []string

	serveStop context.CancelFunc
	serveErr  chan error
	stopOnce  sync.Once

	mu        sync.Mutex
	engine    *pipeline.Engine
	sink      *filesink.Sink
	engStop   context.CancelFunc
	engErr    chan error
	engDone   bool
	engConfig pipeline.EngineConfig

	noFeatures bool
}

type harnessOpt func(*harness)

func withCheckpoints(dir string) harnessOpt {
	return func(h *harness) {
		s, err := pipeline.NewDirStore(dir)
		if err != nil {
			h.t.Fatal(err)
		}
		h.ckpt = s
	}
}

// withoutFeatures leaves features out of decisions, as the default config does.
func withoutFeatures() harnessOpt {
	return func(h *harness) { h.noFeatures = true }
}

// newHarness starts the server; the engine runs only once startEngine is called.
func newHarness(t testing.TB, o Options, opts ...harnessOpt) *harness {
	t.Helper()
	h := &harness{t: t, decisions: filepath.Join(t.TempDir(), "decisions.ndjson"), engConfig: pipeline.EngineConfig{Partitions: 2, Decoders: 1}}
	for _, f := range opts {
		f(h)
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if !h.noFeatures {
		h.names = featureNames(t)
		o.FeatureNames = h.names
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	h.srv, h.url = srv, srv.URL()
	ctx, cancel := context.WithCancel(context.Background())
	h.serveStop, h.serveErr = cancel, make(chan error, 1)
	go func() { h.serveErr <- srv.Serve(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func featureNames(t testing.TB) []string {
	schema := pipeline.NewFeatureSchema()
	if _, err := velocity.New(velocity.Config{Windows: window.Config{Durations: window.DefaultDurations()}}, schema); err != nil {
		t.Fatal(err)
	}
	return schema.Names()
}

// startEngine builds an engine (restored from the checkpoints when there are some) and
// runs it over the server until stopEngine.
func (h *harness) startEngine() {
	h.t.Helper()
	schema := pipeline.NewFeatureSchema()
	vel, err := velocity.New(velocity.Config{Windows: window.Config{Durations: window.DefaultDurations()}}, schema)
	if err != nil {
		h.t.Fatal(err)
	}
	var names []string
	if !h.noFeatures {
		names = schema.Names()
	}
	sink, err := filesink.Create(h.decisions, filesink.Options{Kind: filesink.Decisions, Features: names})
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := h.engConfig
	cfg.KeepFeatures = !h.noFeatures
	eng, err := pipeline.NewEngine(pipeline.EngineOptions{
		Config: cfg, Schema: schema, Scorers: []pipeline.ScorerFactory{vel},
		Sinks: []pipeline.Sink{sink}, Checkpoints: h.ckpt,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := eng.Restore(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.mu.Lock()
	h.engine, h.sink, h.engStop, h.engErr, h.engDone = eng, sink, cancel, make(chan error, 1), false
	h.mu.Unlock()
	go func() { h.engErr <- eng.Run(ctx, h.srv) }()
}

// stopEngine cancels the engine's run and waits for it; it returns the engine's stats.
func (h *harness) stopEngine() pipeline.Stats {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.engine == nil || h.engDone {
		if h.engine == nil {
			return pipeline.Stats{}
		}
		return h.engine.Stats()
	}
	h.engStop()
	h.waitEngineLocked()
	return h.engine.Stats()
}

func (h *harness) waitEngineLocked() {
	select {
	case err := <-h.engErr:
		if err != nil && !errors.Is(err, context.Canceled) {
			h.t.Errorf("engine: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatal("engine did not stop within 30s")
	}
	h.engDone = true
	if err := h.sink.Close(context.Background()); err != nil {
		h.t.Errorf("close sink: %v", err)
	}
}

func (h *harness) stop() {
	h.stopOnce.Do(h.stopNow)
}

func (h *harness) stopNow() {
	h.serveStop()
	select {
	case <-h.serveErr:
	case <-time.After(30 * time.Second):
		h.t.Error("Serve did not return within 30s")
	}
	h.stopEngine()
	h.srv.Close()
}

// post sends body to path with a content type and returns the answer.
func (h *harness) post(path, contentType string, body []byte, hdr ...string) (int, http.Header, []byte) {
	h.t.Helper()
	return do(h.t, http.MethodPost, h.url+path, contentType, body, hdr...)
}

func (h *harness) get(path string, hdr ...string) (int, http.Header, []byte) {
	h.t.Helper()
	return do(h.t, http.MethodGet, h.url+path, "", nil, hdr...)
}

var client = &http.Client{Timeout: 60 * time.Second}

func do(t testing.TB, method, url, contentType string, body []byte, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// decisionLines returns the lines of the decisions file that are about id.
func (h *harness) decisionLines(id string) []string {
	h.t.Helper()
	data, err := os.ReadFile(h.decisions)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, `{"id":"`+id+`",`) {
			out = append(out, l)
		}
	}
	return out
}

// waitFor polls cond every few milliseconds until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// tx is a valid transaction of card, with a fixed event time.
func tx(id, card, amount string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"ts":"2026-11-25T10:15:30Z","card_id":%q,"account_id":"acct-%s","merchant_id":"m-1","amount":%q,"currency":"EUR","channel":"ecom"}`,
		id, card, card, amount)
}
