package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
	natssrc "github.com/fraudpipe/fraudpipe/sources/nats"
)

var secret = []byte("s3cret-key-for-tests")

// receiver is a webhook endpoint that verifies every request's signature and timestamp,
// records the alerts it accepted, and can fail on purpose: all requests (down), the next
// n requests (failFor), or one transaction for good (reject).
type receiver struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	accepted []string // idempotency keys, in order, redeliveries included
	bodies   map[string]map[string]any
	badSig   int
	down     bool
	failFor  int
	reject   map[string]bool
	requests int
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{t: t, bodies: map[string]map[string]any{}, reject: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want a JSON POST", http.StatusBadRequest)
		return
	}
	if !Verify(secret, req.Header.Get(HeaderTimestamp), body, req.Header.Get(HeaderSignature), 5*time.Minute, time.Now()) {
		r.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.down || r.failFor > 0 {
		if r.failFor > 0 {
			r.failFor--
		}
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	}
	id := req.Header.Get(HeaderIdempotency)
	var a map[string]any
	if err := json.Unmarshal(body, &a); err != nil || a["id"] != id {
		http.Error(w, "body id does not match Idempotency-Key", http.StatusBadRequest)
		return
	}
	if r.reject[id] {
		http.Error(w, "unknown merchant", http.StatusUnprocessableEntity)
		return
	}
	r.accepted = append(r.accepted, id)
	r.bodies[id] = a
	w.WriteHeader(http.StatusAccepted)
}

func (r *receiver) delivered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.accepted...)
}

func (r *receiver) set(f func(r *receiver)) { r.mu.Lock(); f(r); r.mu.Unlock() }

func newHook(t testing.TB, r *receiver, mod func(*WebhookConfig)) *Webhook {
	t.Helper()
	cfg := WebhookConfig{URL: r.srv.URL + "/alerts", Secret: secret, Workers: 4}
	if mod != nil {
		mod(&cfg)
	}
	w, err := NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func fastRetry() sinks.Retry {
	return sinks.Retry{InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond}
}

func webhookFactory(required bool) sinktest.Factory {
	return func(t *testing.T, dead pipeline.Sink) sinktest.Instance {
		r := newReceiver(t)
		s := sinks.New(newHook(t, r, nil), sinks.Options{Name: "webhook-test", Required: required, DeadLetters: dead,
			Batching: sinks.Batching{Count: 20, Period: 5 * time.Millisecond}, Retry: fastRetry()})
		t.Cleanup(func() {
			if n := r.badSig; n > 0 {
				t.Errorf("%d requests with a bad signature", n)
			}
		})
		return sinktest.Instance{
			Sink: s, Delivered: r.delivered, BestEffort: !required,
			SetDown: func(down bool) { r.set(func(r *receiver) { r.down = down }) },
			Reject:  func(id string) { r.set(func(r *receiver) { r.reject[id] = true }) },
		}
	}
}

func TestWebhookConformanceRequired(t *testing.T)   { sinktest.Run(t, webhookFactory(true)) }
func TestWebhookConformanceBestEffort(t *testing.T) { sinktest.Run(t, webhookFactory(false)) }

// TestWebhookFailsForAWhile: the receiver fails its first 25 requests; every alert arrives,
// once, signed, with the decision's fields.
func TestWebhookFailsForAWhile(t *testing.T) {
	r := newReceiver(t)
	r.failFor = 25
	dead := sinktest.NewRecorder()
	s := sinks.New(newHook(t, r, nil), sinks.Options{Name: "hook", Required: true, DeadLetters: dead, Retry: fastRetry()})
	var evs []*pipeline.Event
	for i := range 40 {
		evs = append(evs, sinktest.Event(i, fmt.Sprintf("tx-%02d", i), fmt.Sprintf("card-%d", i%5), true))
	}
	ctx := context.Background()
	if err := s.WriteBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	count := map[string]int{}
	for _, id := range r.delivered() {
		count[id]++
	}
	for _, ev := range evs {
		if count[ev.Tx.ID] != 1 {
			t.Errorf("%s delivered %d times", ev.Tx.ID, count[ev.Tx.ID])
		}
	}
	a := r.bodies["tx-07"]
	if a["decision"] != "decline" || a["card_id"] != "card-2" || a["score"] != 0.97 || a["currency"] != "EUR" {
		t.Errorf("alert body %v", a)
	}
	if len(dead.Reasons()) != 0 || r.badSig != 0 {
		t.Errorf("dead letters %v, bad signatures %d", dead.Reasons(), r.badSig)
	}
}

func TestRouting(t *testing.T) {
	approve := sinktest.Event(0, "ok", "A", false)
	decline := sinktest.Event(1, "no", "A", true) // rule:card_testing, score 0.97
	review := sinktest.Event(2, "rv", "A", false)
	review.Decision.Outcome, review.Decision.Reasons, review.Decision.Score = pipeline.Review, []string{"rule:night"}, 0.5
	unscored := sinktest.Event(3, "un", "A", true)
	unscored.Decision.HasScore = false
	for _, tt := range []struct {
		route Route
		want  string
	}{
		{Route{}, "no,rv,un"},
		{Route{On: []pipeline.Outcome{pipeline.Decline}}, "no,un"},
		{Route{Rules: []string{"rule:night"}}, "rv"},
		{Route{MinScore: 0.9}, "no"},
		{Route{On: []pipeline.Outcome{pipeline.Approve}}, "ok"},
	} {
		var got []string
		for _, ev := range []*pipeline.Event{approve, decline, review, unscored} {
			if tt.route.Match(ev) {
				got = append(got, ev.Tx.ID)
			}
		}
		if g := strings.Join(got, ","); g != tt.want {
			t.Errorf("%+v matches %s, want %s", tt.route, g, tt.want)
		}
	}
}

func TestWebhookDedup(t *testing.T) {
	r := newReceiver(t)
	w := newHook(t, r, nil)
	ctx := context.Background()
	ev := sinktest.Event(0, "dup", "A", true)
	for range 3 {
		res, err := w.Write(ctx, []*pipeline.Event{ev, sinktest.Event(1, "approved", "A", false)})
		if err != nil || res[0] != nil || res[1] != nil {
			t.Fatal(err, res)
		}
	}
	if got := r.delivered(); len(got) != 1 {
		t.Errorf("delivered %v, want one alert", got)
	}
}

func TestWebhookRateLimit(t *testing.T) {
	r := newReceiver(t)
	w := newHook(t, r, func(c *WebhookConfig) { c.RateLimit = 200 })
	var evs []*pipeline.Event
	for i := range 21 {
		evs = append(evs, sinktest.Event(i, fmt.Sprintf("rl-%d", i), fmt.Sprintf("c%d", i), true))
	}
	start := time.Now()
	if _, err := w.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	// 21 requests at 200/s are spaced 5ms apart: at least 100ms from the first to the last.
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("21 alerts at 200/s took %v", el)
	}
}

func TestWebhookClassification(t *testing.T) {
	for status, retryable := range map[int]bool{400: false, 401: false, 404: false, 422: false, 408: true, 429: true, 500: true, 502: true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
		w, _ := NewWebhook(WebhookConfig{URL: srv.URL, Secret: secret})
		res, err := w.Write(context.Background(), []*pipeline.Event{sinktest.Event(0, "x", "A", true)})
		srv.Close()
		ie, ok := res[0].(*sinks.ItemError)
		if err != nil || !ok || ie.Retryable != retryable {
			t.Errorf("HTTP %d: %v %v, want retryable=%v", status, err, res[0], retryable)
		}
	}
}

func TestSignature(t *testing.T) {
	// The documented example: a receiver in any language must get the same hex.
	got := Sign([]byte("key"), "1795601730", []byte(`{"id":"tx-1"}`))
	if len(got) != 64 || got != Sign([]byte("key"), "1795601730", []byte(`{"id":"tx-1"}`)) {
		t.Fatalf("Sign = %s", got)
	}
	now := time.Unix(1795601730, 0)
	if !Verify([]byte("key"), "1795601730", []byte(`{"id":"tx-1"}`), got, time.Minute, now) {
		t.Error("Verify refuses a good signature")
	}
	if Verify([]byte("key"), "1795601730", []byte(`{"id":"tx-2"}`), got, time.Minute, now) ||
		Verify([]byte("other"), "1795601730", []byte(`{"id":"tx-1"}`), got, time.Minute, now) ||
		Verify([]byte("key"), "1795601730", []byte(`{"id":"tx-1"}`), got, time.Minute, now.Add(2*time.Minute)) {
		t.Error("Verify accepts a bad body, key or an old timestamp")
	}
}

func TestLoadSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(path, []byte("  from-file\n"), 0o600)
	if s, err := LoadSecret("", path); err != nil || string(s) != "from-file" {
		t.Errorf("LoadSecret(file) = %q, %v", s, err)
	}
	if s, err := LoadSecret("from-env", ""); err != nil || string(s) != "from-env" {
		t.Errorf("LoadSecret(value) = %q, %v", s, err)
	}
	for _, c := range [][2]string{{"", ""}, {"x", path}, {"", path + ".missing"}} {
		_, err := LoadSecret(c[0], c[1])
		if err == nil || strings.Contains(err.Error(), "from-file") || (c[0] != "" && strings.Contains(err.Error(), c[0])) {
			t.Errorf("LoadSecret(%q, %q) = %v", c[0], c[1], err)
		}
	}
	if _, err := NewWebhook(WebhookConfig{URL: "http://x/"}); err == nil {
		t.Error("NewWebhook without a secret = nil error")
	}
}

func TestLogAlerter(t *testing.T) {
	var buf bytes.Buffer
	l := NewLog(Route{}, slog.New(slog.NewJSONHandler(&buf, nil)), 10)
	evs := []*pipeline.Event{sinktest.Event(0, "a", "A", true), sinktest.Event(1, "b", "A", false), sinktest.Event(0, "a", "A", true)}
	res, err := l.Write(context.Background(), evs)
	if err != nil || len(res) != 3 {
		t.Fatal(err, res)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"msg":"fraud alert"`) || !strings.Contains(lines[0], `"id":"a"`) {
		t.Errorf("log: %s", buf.String())
	}
}

func TestNATSAlerter(t *testing.T) {
	srv, err := natssrc.StartEmbedded(natssrc.EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	sub, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch := make(chan *nats.Msg, 10)
	if _, err := sub.ChanSubscribe("fraud.alerts", ch); err != nil {
		t.Fatal(err)
	}
	sub.Flush()
	n, err := NewNATS(srv.ClientURL(), "fraud.alerts", Route{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	evs := []*pipeline.Event{sinktest.Event(0, "n1", "A", true), sinktest.Event(1, "n2", "A", false), sinktest.Event(0, "n1", "A", true)}
	if _, err := n.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if m.Header.Get(nats.MsgIdHdr) != "n1" || !strings.Contains(string(m.Data), `"id":"n1"`) {
			t.Errorf("message %s %v", m.Data, m.Header)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no alert on the subject")
	}
	n.Close(context.Background())
	sub.Flush()
	if len(ch) != 0 {
		t.Errorf("%d more messages, want none (approve not routed, n1 deduplicated)", len(ch))
	}
}

// syncBuffer is a bytes.Buffer safe for a logger writing from a sink's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) ids(t *testing.T) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var v struct{ ID string }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		ids = append(ids, v.ID)
	}
	return ids
}

func TestLogConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T, dead pipeline.Sink) sinktest.Instance {
		var buf syncBuffer
		l := NewLog(Route{}, slog.New(slog.NewJSONHandler(&buf, nil)), 0)
		s := sinks.New(l, sinks.Options{Name: "log", Required: true, DeadLetters: dead})
		return sinktest.Instance{Sink: s, Delivered: func() []string { return buf.ids(t) }}
	})
}
