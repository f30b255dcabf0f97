package remote

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/scorers/model"
	"github.com/prometheus/client_golang/prometheus"
)

// Behaviours of the test model server.
const (
	answer  = iota // {"score": amount/1000}
	slow           // answers only once the client gave up
	fail           // 503
	garbage        // 200 with HTML
	outside        // {"score": 1.7}
)

// modelServer is a real HTTP model server on loopback whose behaviour a test switches.
type modelServer struct {
	*httptest.Server
	mode atomic.Int32
	hits atomic.Int64

	mu      sync.Mutex
	body    string
	headers http.Header
}

func newModelServer(t *testing.T) *modelServer {
	t.Helper()
	m := &modelServer{}
	release := make(chan struct{})
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.body, m.headers = string(b), r.Header.Clone()
		m.mu.Unlock()
		switch m.mode.Load() {
		case answer:
			var req struct {
				Features map[string]*float64 `json:"features"`
			}
			if err := json.Unmarshal(b, &req); err != nil || req.Features["amount"] == nil {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, `{"score": %g}`, *req.Features["amount"]/1000)
		case slow:
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case fail:
			http.Error(w, "model unavailable", http.StatusServiceUnavailable)
		case garbage:
			io.WriteString(w, "<html>maintenance</html>")
		case outside:
			io.WriteString(w, `{"score": 1.7}`)
		}
	}))
	t.Cleanup(func() {
		close(release)
		m.Close()
	})
	return m
}

func (m *modelServer) last() (string, http.Header) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.body, m.headers
}

// clock is the breaker's clock in tests: it moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func threshold(t testing.TB, s string) model.Threshold {
	t.Helper()
	th, err := model.ParseThreshold(s)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

func testSchema(t testing.TB) *pipeline.FeatureSchema {
	t.Helper()
	s := pipeline.NewFeatureSchema()
	for _, n := range []string{"is_night", "amount", "card_count_1d", "secs_since_last"} {
		if _, err := s.Declare(n); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

type fixture struct {
	f      *Factory
	s      pipeline.Scorer
	schema *pipeline.FeatureSchema
	clock  *clock
}

// newFixture builds a remote scorer of caller over testSchema, with a test clock, thresholds
// review 0.5 and decline 0.9, and a breaker that opens only when the test says.
func newFixture(t testing.TB, caller Caller, cfg Config) *fixture {
	t.Helper()
	fx := &fixture{schema: testSchema(t), clock: &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}}
	if cfg.Name == "" {
		cfg.Name = "fraud-http"
	}
	cfg.Caller = caller
	if cfg.Review.Text == "" {
		cfg.Review, cfg.Decline = threshold(t, "0.5"), threshold(t, "0.90")
	}
	if cfg.Breaker.Failures == 0 {
		cfg.Breaker.Failures = 1000
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second // generous: a loaded machine must not turn answers into timeouts
	}
	cfg.now = fx.clock.now
	f, err := New(cfg, fx.schema)
	if err != nil {
		t.Fatal(err)
	}
	fx.f = f
	if fx.s, err = f.NewScorer(0); err != nil {
		t.Fatal(err)
	}
	return fx
}

func httpCaller(t testing.TB, url string) *HTTP {
	t.Helper()
	h, err := NewHTTP(HTTPOptions{URL: url, BearerToken: "s3cret", Headers: map[string]string{"X-Tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// score scores one transaction with the given features and returns the eval.
func (fx *fixture) score(id string, vals map[string]float64) *pipeline.Eval {
	ev := &pipeline.Eval{Tx: &pipeline.Transaction{ID: id}, Features: make([]float64, fx.schema.Len())}
	for n, v := range vals {
		i, _ := fx.schema.Index(n)
		ev.Features[i] = v
	}
	fx.s.Score(ev)
	return ev
}

func reasons(ev *pipeline.Eval) []string {
	var r []string
	for _, h := range ev.Hits {
		r = append(r, h.Outcome.String()+" "+h.Reason)
	}
	return r
}

func TestHTTPScoresAndDecides(t *testing.T) {
	srv := newModelServer(t)
	fx := newFixture(t, httpCaller(t, srv.URL), Config{Features: []string{"amount", "card_count_1d"}})
	is, ok := fx.schema.Index(model.ScoreFeature)
	if !ok {
		t.Fatal("model_score not declared")
	}
	for _, c := range []struct {
		amount  float64
		reasons []string
	}{
		{950, []string{"decline model:score>=0.90"}},
		{600, []string{"review model:score>=0.5"}},
		{100, nil},
	} {
		ev := fx.score("tx-1", map[string]float64{"amount": c.amount, "card_count_1d": math.NaN(), "is_night": 1})
		if want := c.amount / 1000; !ev.HasScore || ev.Score != want || ev.Features[is] != want {
			t.Errorf("amount %v: score %v (has %v, feature %v), want %v", c.amount, ev.Score, ev.HasScore, ev.Features[is], want)
		}
		if got := reasons(ev); !reflect.DeepEqual(got, c.reasons) {
			t.Errorf("amount %v: reasons %q, want %q", c.amount, got, c.reasons)
		}
	}
	body, h := srv.last()
	if want := `{"id":"tx-1","features":{"amount":100,"card_count_1d":null}}`; body != want {
		t.Errorf("request body %s, want %s", body, want)
	}
	if h.Get("Authorization") != "Bearer s3cret" || h.Get("X-Tenant") != "acme" || h.Get("Content-Type") != "application/json" {
		t.Errorf("request headers %v", h)
	}
	if kind, v := fx.f.Version(); kind != "model" || v != "remote:fraud-http" {
		t.Errorf("version %s %s", kind, v)
	}
	st := fx.f.Stats()
	if st.Calls != 3 || st.OK != 3 || st.State != Closed || st.CallTime <= 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestDefaultFeaturesAreTheSchema(t *testing.T) {
	srv := newModelServer(t)
	fx := newFixture(t, httpCaller(t, srv.URL), Config{})
	if got := strings.Join(fx.f.Features(), ","); got != "is_night,amount,card_count_1d,secs_since_last" {
		t.Errorf("features %s", got)
	}
	fx.score("tx-2", map[string]float64{"amount": 12.5})
	body, _ := srv.last()
	if want := `{"id":"tx-2","features":{"is_night":0,"amount":12.5,"card_count_1d":0,"secs_since_last":0}}`; body != want {
		t.Errorf("request body %s, want %s", body, want)
	}
}

// TestFallbacks checks each way a call fails, with each fallback: no score, and a tag or a
// review with reason remote:unavailable; the failure counted by kind.
func TestFallbacks(t *testing.T) {
	srv := newModelServer(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connection refused from now on
	for _, c := range []struct {
		name  string
		mode  int32
		url   string
		stat  func(Stats) int64
		kind  string
		short bool // a short timeout
	}{
		{"timeout", slow, "", func(s Stats) int64 { return s.Timeouts }, "timeout", true},
		{"5xx", fail, "", func(s Stats) int64 { return s.Status }, "status", false},
		{"garbage", garbage, "", func(s Stats) int64 { return s.Invalid }, "invalid", false},
		{"out of range", outside, "", func(s Stats) int64 { return s.Invalid }, "invalid", false},
		{"refused", answer, deadURL, func(s Stats) int64 { return s.Errors }, "error", false},
	} {
		for _, fb := range []Fallback{FailOpen, FailClosed} {
			t.Run(c.name+"/"+fb.String(), func(t *testing.T) {
				srv.mode.Store(c.mode)
				url := srv.URL
				if c.url != "" {
					url = c.url
				}
				cfg := Config{Fallback: fb}
				if c.short {
					cfg.Timeout = 30 * time.Millisecond
				}
				fx := newFixture(t, httpCaller(t, url), cfg)
				ev := fx.score("tx-9", map[string]float64{"amount": 990})
				want := []string{"approve remote:unavailable"}
				if fb == FailClosed {
					want = []string{"review remote:unavailable"}
				}
				if got := reasons(ev); ev.HasScore || !reflect.DeepEqual(got, want) {
					t.Errorf("score %v (has %v), reasons %q; want no score, %q", ev.Score, ev.HasScore, got, want)
				}
				is, _ := fx.schema.Index(model.ScoreFeature)
				if !math.IsNaN(ev.Features[is]) {
					t.Errorf("model_score %v without a score, want NaN", ev.Features[is])
				}
				st := fx.f.Stats()
				if c.stat(st) != 1 || st.Calls != 1 || st.OK != 0 {
					t.Errorf("stats %+v, want one %s", st, c.kind)
				}
			})
		}
	}
}

// TestBreaker opens the breaker after N consecutive failures, refuses calls during the
// cool-down without calling the server, and closes again when the trial call succeeds (or
// opens again when it fails).
func TestBreaker(t *testing.T) {
	srv := newModelServer(t)
	fx := newFixture(t, httpCaller(t, srv.URL), Config{Fallback: FailClosed, Breaker: BreakerConfig{Failures: 3, OpenFor: time.Minute}})
	srv.mode.Store(fail)
	for range 3 {
		fx.score("tx", map[string]float64{"amount": 1})
	}
	if st := fx.f.Stats(); st.State != Open || st.Opened != 1 || st.Status != 3 {
		t.Fatalf("after 3 failures: %+v, want open", st)
	}
	srv.mode.Store(answer)
	ev := fx.score("tx", map[string]float64{"amount": 950})
	if ev.HasScore || !reflect.DeepEqual(reasons(ev), []string{"review remote:unavailable"}) {
		t.Errorf("open breaker: score %v, reasons %q", ev.HasScore, reasons(ev))
	}
	if n := srv.hits.Load(); n != 3 {
		t.Errorf("the server got %d calls while the breaker was open, want 3 (none more)", n)
	}
	fx.clock.advance(time.Minute - time.Millisecond)
	if fx.score("tx", map[string]float64{"amount": 950}).HasScore || srv.hits.Load() != 3 {
		t.Error("a call went out before the cool-down ended")
	}
	fx.clock.advance(time.Millisecond)
	ev = fx.score("tx", map[string]float64{"amount": 950})
	if !ev.HasScore || !reflect.DeepEqual(reasons(ev), []string{"decline model:score>=0.90"}) {
		t.Errorf("trial call: score %v %v, reasons %q", ev.HasScore, ev.Score, reasons(ev))
	}
	st := fx.f.Stats()
	if st.State != Closed || st.HalfOpened != 1 || st.Closed != 1 || st.Rejected != 2 || st.OK != 1 {
		t.Errorf("after the trial call: %+v, want closed", st)
	}
	// Open again, and a failed trial call opens it for another cool-down.
	srv.mode.Store(fail)
	for range 3 {
		fx.score("tx", map[string]float64{"amount": 1})
	}
	fx.clock.advance(time.Minute)
	fx.score("tx", map[string]float64{"amount": 1})
	st = fx.f.Stats()
	if st.State != Open || st.Opened != 3 || st.HalfOpened != 2 {
		t.Errorf("after a failed trial call: %+v, want open (3 openings, 2 trials)", st)
	}
	hits := srv.hits.Load()
	fx.score("tx", map[string]float64{"amount": 1})
	if srv.hits.Load() != hits {
		t.Error("a call went out right after a failed trial call")
	}
}

// TestConcurrentPartitions scores from several partitions at once: one shared breaker and
// counters (run with -race).
func TestConcurrentPartitions(t *testing.T) {
	srv := newModelServer(t)
	fx := newFixture(t, httpCaller(t, srv.URL), Config{})
	var wg sync.WaitGroup
	for p := range 4 {
		s, err := fx.f.NewScorer(p)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range 25 {
				ev := &pipeline.Eval{Tx: &pipeline.Transaction{ID: fmt.Sprintf("tx-%d-%d", p, i)}, Features: make([]float64, fx.schema.Len())}
				ev.Features[1] = float64(i)
				s.Score(ev)
				if !ev.HasScore || ev.Score != float64(i)/1000 {
					t.Errorf("partition %d tx %d: score %v %v", p, i, ev.HasScore, ev.Score)
				}
			}
		})
	}
	wg.Wait()
	if st := fx.f.Stats(); st.OK != 100 || st.Calls != 100 {
		t.Errorf("stats %+v, want 100 calls", st)
	}
}

func TestShadow(t *testing.T) {
	srv := newModelServer(t)
	fx := newFixture(t, httpCaller(t, srv.URL), Config{Shadow: true, Fallback: FailClosed})
	if _, ok := fx.schema.Index(model.ScoreFeature); ok {
		t.Error("a shadow scorer declared model_score")
	}
	if _, v := fx.f.Version(); v != "shadow:remote:fraud-http" {
		t.Errorf("version %s", v)
	}
	ev := fx.score("tx", map[string]float64{"amount": 990})
	if ev.HasScore || !ev.HasShadowScore || ev.ShadowScore != 0.99 || len(ev.Hits) != 0 {
		t.Errorf("shadow: shadow score %v %v, score set %v, hits %v; want only the shadow score", ev.HasShadowScore, ev.ShadowScore, ev.HasScore, ev.Hits)
	}
	srv.mode.Store(fail)
	ev = fx.score("tx", map[string]float64{"amount": 990})
	if ev.HasScore || len(ev.Hits) != 0 {
		t.Errorf("shadow failure: score %v, hits %v; want nothing", ev.HasScore, ev.Hits)
	}
}

func TestMetrics(t *testing.T) {
	srv := newModelServer(t)
	reg := prometheus.NewRegistry()
	a := newFixture(t, httpCaller(t, srv.URL), Config{Name: "champion", Breaker: BreakerConfig{Failures: 2, OpenFor: time.Hour}})
	b := newFixture(t, httpCaller(t, srv.URL), Config{Name: "challenger", Shadow: true})
	for _, fx := range []*fixture{a, b} {
		if err := fx.f.Register(reg); err != nil {
			t.Fatal(err)
		}
	}
	a.score("tx", map[string]float64{"amount": 1})
	b.score("tx", map[string]float64{"amount": 1})
	srv.mode.Store(fail)
	for range 3 {
		a.score("tx", map[string]float64{"amount": 1})
	}
	got := gather(t, reg)
	for name, want := range map[string]float64{
		`fraudpipe_remote_calls_total{result="ok",scorer="champion"}`:                1,
		`fraudpipe_remote_calls_total{result="status",scorer="champion"}`:            2,
		`fraudpipe_remote_calls_total{result="rejected",scorer="champion"}`:          1,
		`fraudpipe_remote_calls_total{result="ok",scorer="challenger"}`:              1,
		`fraudpipe_remote_call_duration_seconds_count{scorer="champion"}`:            3,
		`fraudpipe_remote_breaker_state{scorer="champion"}`:                          float64(Open),
		`fraudpipe_remote_breaker_state{scorer="challenger"}`:                        float64(Closed),
		`fraudpipe_remote_breaker_transitions_total{scorer="champion",state="open"}`: 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if err := a.f.Register(reg); err == nil || !strings.Contains(err.Error(), "champion") {
		t.Errorf("registering twice: %v", err)
	}
}

// gather returns every sample of reg by its name and labels, Prometheus' text style.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			lbl := "{" + strings.Join(ls, ",") + "}"
			switch {
			case m.Counter != nil:
				out[mf.GetName()+lbl] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[mf.GetName()+lbl] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[mf.GetName()+"_count"+lbl] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestNewErrors(t *testing.T) {
	h := httpCaller(t, "http://127.0.0.1:1/score")
	th := func(s string) model.Threshold { return threshold(t, s) }
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Caller: h, Review: th("0.5"), Decline: th("0.9")}, "no name"},
		{Config{Name: "x", Review: th("0.5"), Decline: th("0.9")}, "no model server"},
		{Config{Name: "x", Caller: h, Review: th("0.9"), Decline: th("0.5")}, "above the decline threshold"},
		{Config{Name: "x", Caller: h, Review: th("0.5"), Decline: th("0.9"), Features: []string{"amount", "mcc_risk", "ip_age"}},
			"sends features the engine does not compute: mcc_risk, ip_age (the engine computes: is_night, amount, card_count_1d, secs_since_last)"},
		{Config{Name: "x", Caller: h, Review: th("0.5"), Decline: th("0.9"), Features: []string{"amount", "amount"}}, `"amount" listed twice`},
		{Config{Name: "x", Caller: h, Review: th("0.5"), Decline: th("0.9"), Breaker: BreakerConfig{FailureRatio: 1.5}}, "failure ratio"},
		{Config{Name: "x", Caller: h, Review: th("0.5"), Decline: th("0.9"), Timeout: -time.Second}, "negative"},
	} {
		if _, err := New(c.cfg, testSchema(t)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
	for _, u := range []string{"", "ftp://x/y", "localhost:8080", "http://"} {
		if _, err := NewHTTP(HTTPOptions{URL: u}); err == nil {
			t.Errorf("url %q accepted", u)
		}
	}
	for s, want := range map[string]Fallback{"": FailOpen, "fail_open": FailOpen, "fail_closed": FailClosed} {
		if got, err := ParseFallback(s); err != nil || got != want {
			t.Errorf("ParseFallback(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseFallback("fail_safe"); err == nil {
		t.Error("fail_safe accepted")
	}
}

func TestParseScore(t *testing.T) {
	for _, c := range []struct {
		body string
		want float64
		ok   bool
	}{
		{`{"score": 0.25}`, 0.25, true},
		{` {"score":1} `, 1, true},
		{`{"predictions":[{"score":0.5}]}`, 0.5, true},
		{`{"predictions":[0.125]}`, 0.125, true},
		{`[0.75]`, 0.75, true},
		{`[[0.75]]`, 0.75, true},
		{"0.0625\n", 0.0625, true},
		{"0.5,0.4\n", 0.5, true},
		{"0.5\n0.4\n", 0.5, true},
		{`{"score": 1.5}`, 0, false},
		{`{"score": -0.1}`, 0, false},
		{`{"score": "0.5"}`, 0, false},
		{`{"prob": 0.5}`, 0, false},
		{`{"predictions":[]}`, 0, false},
		{`[]`, 0, false},
		{``, 0, false},
		{`NaN`, 0, false},
		{`<html>`, 0, false},
	} {
		got, err := parseScore([]byte(c.body))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseScore(%q) = %v, %v; want %v (ok %v)", c.body, got, err, c.want, c.ok)
		}
	}
}

// BenchmarkScoreHTTP scores through an HTTP JSON model server on loopback: the cost of a
// call without the network and the model, the floor of a remote scorer's latency.
func BenchmarkScoreHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"score":0.01}`)
	}))
	defer srv.Close()
	h, err := NewHTTP(HTTPOptions{URL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	fx := newFixture(b, h, Config{})
	ev := &pipeline.Eval{Tx: &pipeline.Transaction{ID: "tx-1"}, Features: make([]float64, fx.schema.Len())}
	b.ReportAllocs()
	for b.Loop() {
		ev.Hits = ev.Hits[:0]
		fx.s.Score(ev)
	}
	if st := fx.f.Stats(); st.OK != st.Calls {
		b.Fatalf("stats %+v", st)
	}
}

// FuzzParseScore feeds parseScore arbitrary answers: it must not panic, and a score it
// accepts is a probability.
func FuzzParseScore(f *testing.F) {
	for _, s := range []string{`{"score":0.5}`, `{"predictions":[{"score":0.1}]}`, `[[0.2]]`, "0.3,1\n", `<html>`, `{"score":1e999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseScore(b)
		if err == nil && !(p >= 0 && p <= 1) {
			t.Fatalf("parseScore(%q) = %v, no error", b, p)
		}
	})
}
