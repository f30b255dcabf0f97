// Package remote scores transactions by asking a model server: a plain HTTP JSON service
// or an Amazon SageMaker endpoint. It is for teams whose model lives elsewhere.
//
// The scorer runs in the partition goroutine and makes one call per transaction, so a
// pipeline's throughput is at most partitions × 1/latency (8 partitions and a 5 ms model
// server: 1,600 transactions a second; while the server is slow, every call waits for the
// timeout). A remote model suits the HTTP decision API and modest streams; a high-volume
// stream wants a model evaluated in process (scorers/model, scorers/lightgbm).
//
// Every call has a timeout (default 50 ms). A circuit breaker, shared by the partitions,
// stops calling a server that keeps failing: it opens after N consecutive failures or a
// failure ratio over a window, stays open for a cool-down, then lets one trial call
// through. When a call fails or the breaker is open, the fallback decides: fail_open
// decides without the model (a tag reason remote:unavailable), fail_closed asks for review
// (reason remote:unavailable).
//
// The decision policy is scorers/model's: the same thresholds and reason codes
// (model:score>=0.90), the model_score feature and shadow mode.
package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/scorers/model"
)

// ReasonUnavailable is the reason code of a decision made while the model server could
// not score.
const ReasonUnavailable = "remote:unavailable"

// DefaultTimeout is the per-call timeout when Config.Timeout is zero.
const DefaultTimeout = 50 * time.Millisecond

// Request is what a Caller sends for one transaction: its id and the configured features,
// in order. Values holds NaN for a missing value.
type Request struct {
	ID     string
	Names  []string
	Values []float64
}

// Caller asks a model server for the fraud probability of one transaction. It must be safe
// for concurrent use (the partitions share it) and return promptly once ctx is done.
// Errors that wrap ErrStatus or ErrInvalid are counted as such; others as transport errors.
type Caller interface {
	Call(ctx context.Context, req *Request) (float64, error)
}

// ErrStatus reports an answer with an error status (HTTP 4xx or 5xx, a SageMaker error).
var ErrStatus = errors.New("model server answered with an error status")

// ErrInvalid reports an answer that holds no probability: not the expected format, or a
// score outside [0, 1].
var ErrInvalid = errors.New("model server answer holds no score")

// Fallback is what the scorer does when it gets no score.
type Fallback uint8

// Fallbacks.
const (
	// FailOpen decides without the model: no score, a tag reason remote:unavailable.
	FailOpen Fallback = iota
	// FailClosed asks for review, reason remote:unavailable.
	FailClosed
)

// ParseFallback reads "fail_open" or "fail_closed" ("" is fail_open).
func ParseFallback(s string) (Fallback, error) {
	switch s {
	case "", "fail_open":
		return FailOpen, nil
	case "fail_closed":
		return FailClosed, nil
	}
	return 0, fmt.Errorf("fallback %q is not fail_open or fail_closed", s)
}

// String returns the fallback's config name.
func (f Fallback) String() string {
	if f == FailClosed {
		return "fail_closed"
	}
	return "fail_open"
}

// Config is a remote scorer's connection and decision policy.
type Config struct {
	// Name identifies the scorer in metrics and in the decisions' model version
	// ("remote:<name>").
	Name string
	// Caller makes the calls: NewHTTP or NewSageMaker.
	Caller Caller
	// Features are the features sent, in order (the order of a text/csv row); empty sends
	// every feature declared on the schema before the scorer, in schema order.
	Features []string
	Review   model.Threshold // a score at or above it asks for review
	Decline  model.Threshold // a score at or above it asks for decline
	// Shadow scores and records (the decision's score, its model version prefixed with
	// "shadow:") but never adds a hit nor the model_score feature, and its fallback adds
	// nothing either.
	Shadow bool
	// Timeout bounds each call; default 50ms.
	Timeout  time.Duration
	Fallback Fallback
	Breaker  BreakerConfig
	// Logger receives the breaker's state changes; default slog.Default().
	Logger *slog.Logger

	now func() time.Time // the breaker's clock; time.Now outside tests
}

// Factory builds the remote scorer of each partition. Its breaker and counters are shared
// by the partitions.
type Factory struct {
	cfg     Config
	names   []string
	index   []int // the schema index of each feature sent
	policy  *model.Policy
	version string
	breaker *breaker
	counts  [numResults]atomic.Int64
	nanos   atomic.Int64 // time spent in calls
	changes [3]atomic.Int64
	lastErr atomic.Pointer[string]
	metrics *metrics
}

// New checks that every feature to send is in schema (declared by the scorers that run
// before it) and declares model_score unless the scorer is a shadow.
func New(cfg Config, schema *pipeline.FeatureSchema) (*Factory, error) {
	if cfg.Name == "" {
		return nil, errors.New("remote scorer: no name: give it one for its metrics and the decisions' model field")
	}
	if cfg.Caller == nil {
		return nil, fmt.Errorf("remote scorer %s: no model server to call", cfg.Name)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("remote scorer %s: timeout %v is negative", cfg.Name, cfg.Timeout)
	}
	if r := cfg.Breaker.FailureRatio; r < 0 || r > 1 || r != r {
		return nil, fmt.Errorf("remote scorer %s: breaker failure ratio %v is not from 0 to 1", cfg.Name, r)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	f := &Factory{
		cfg:     cfg,
		version: "remote:" + cfg.Name,
		metrics: newMetrics(cfg.Name),
	}
	if cfg.Shadow {
		f.version = "shadow:" + f.version
	}
	f.names = cfg.Features
	if len(f.names) == 0 {
		f.names = append([]string(nil), schema.Names()...)
	}
	var missing []string
	seen := make(map[string]bool, len(f.names))
	for _, name := range f.names {
		if seen[name] {
			return nil, fmt.Errorf("remote scorer %s: feature %q listed twice", cfg.Name, name)
		}
		seen[name] = true
		i, ok := schema.Index(name)
		if !ok {
			missing = append(missing, name)
		}
		f.index = append(f.index, i)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("remote scorer %s sends features the engine does not compute: %s (the engine computes: %s)",
			cfg.Name, strings.Join(missing, ", "), strings.Join(schema.Names(), ", "))
	}
	p, err := model.NewPolicy("remote scorer "+cfg.Name, cfg.Review, cfg.Decline, cfg.Shadow, schema)
	if err != nil {
		return nil, err
	}
	f.policy = p
	f.breaker = newBreaker(cfg.Breaker, f.stateChanged)
	return f, nil
}

// stateChanged counts and logs a breaker transition; called under the breaker's lock.
func (f *Factory) stateChanged(from, to BreakerState) {
	f.changes[to].Add(1)
	f.metrics.state(to)
	attrs := []any{"scorer", f.cfg.Name, "from", from.String(), "to", to.String()}
	if e := f.lastErr.Load(); e != nil && to == Open {
		attrs = append(attrs, "last_error", *e)
	}
	switch to {
	case Open:
		f.cfg.Logger.Warn("remote scorer: circuit breaker opened, calls stop for the cool-down; the fallback decides", append(attrs, "fallback", f.cfg.Fallback.String(), "cool_down", f.breaker.cfg.OpenFor)...)
	default:
		f.cfg.Logger.Info("remote scorer: circuit breaker state changed", attrs...)
	}
}

// Version reports "remote:<name>" for the decisions' model field; a shadow scorer's is
// prefixed with "shadow:".
func (f *Factory) Version() (kind, version string) { return "model", f.version }

// Features returns the features sent, in order. The caller must not modify it.
func (f *Factory) Features() []string { return f.names }

// NewScorer returns one partition's scorer.
func (f *Factory) NewScorer(int) (pipeline.Scorer, error) {
	return &Scorer{f: f, req: Request{Names: f.names, Values: make([]float64, len(f.names))}}, nil
}

// Scorer scores one partition's transactions, one call each.
type Scorer struct {
	f   *Factory
	req Request
}

// Score asks the model server for the score and applies the thresholds, or the fallback
// when no score came.
func (s *Scorer) Score(ev *pipeline.Eval) {
	f := s.f
	for i, j := range f.index {
		s.req.Values[i] = ev.Features[j]
	}
	s.req.ID = ""
	if ev.Tx != nil {
		s.req.ID = ev.Tx.ID
	}
	p, ok := f.call(&s.req)
	if !ok {
		if f.cfg.Shadow {
			return
		}
		f.policy.Missing(ev)    // no score: a rule on model_score does not fire
		out := pipeline.Approve // a tag
		if f.cfg.Fallback == FailClosed {
			out = pipeline.Review
		}
		ev.Hits = append(ev.Hits, pipeline.Hit{Outcome: out, Reason: ReasonUnavailable})
		return
	}
	f.policy.Apply(ev, p)
}

// Call results, the values of fraudpipe_remote_calls_total's result label.
const (
	resultOK       = iota
	resultTimeout  // the call took longer than the timeout
	resultError    // transport: refused connection, reset, DNS, ...
	resultStatus   // an error status
	resultInvalid  // an answer without a probability
	resultRejected // not called: the breaker is open
	numResults
)

var resultNames = [numResults]string{"ok", "timeout", "error", "status", "invalid", "rejected"}

// call makes one call through the breaker and counts it.
func (f *Factory) call(req *Request) (float64, bool) {
	allowed, probe := f.breaker.allow(f.cfg.now())
	if !allowed {
		f.counts[resultRejected].Add(1)
		f.metrics.calls[resultRejected].Inc()
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Timeout)
	start := time.Now()
	p, err := f.cfg.Caller.Call(ctx, req)
	d := time.Since(start)
	expired := ctx.Err() != nil
	cancel()
	res := resultOK
	switch {
	case err == nil && !(p >= 0 && p <= 1):
		res, err = resultInvalid, fmt.Errorf("%w: score %v is not a probability", ErrInvalid, p)
	case err == nil:
	case errors.Is(err, ErrInvalid):
		res = resultInvalid
	case errors.Is(err, ErrStatus):
		res = resultStatus
	case expired || errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		res = resultTimeout
	default:
		res = resultError
	}
	if err != nil {
		msg := err.Error()
		f.lastErr.Store(&msg)
	}
	f.breaker.record(f.cfg.now(), res == resultOK, probe)
	f.counts[res].Add(1)
	f.nanos.Add(int64(d))
	f.metrics.calls[res].Inc()
	f.metrics.duration.Observe(d.Seconds())
	return p, res == resultOK
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Stats are a remote scorer's counters since it was built.
type Stats struct {
	Calls    int64 // calls made (not counting those the open breaker refused)
	OK       int64 // calls that returned a score
	Timeouts int64 // calls that took longer than the timeout
	Errors   int64 // calls that failed in transport (connection refused, reset, ...)
	Status   int64 // calls answered with an error status
	Invalid  int64 // calls answered without a probability
	Rejected int64 // transactions not sent because the breaker was open
	// Opened, HalfOpened and Closed count the breaker's state changes.
	Opened, HalfOpened, Closed int64
	State                      BreakerState
	// CallTime is the time spent in calls, all of them added up.
	CallTime time.Duration
}

// Stats returns the scorer's counters.
func (f *Factory) Stats() Stats {
	s := Stats{
		OK:         f.counts[resultOK].Load(),
		Timeouts:   f.counts[resultTimeout].Load(),
		Errors:     f.counts[resultError].Load(),
		Status:     f.counts[resultStatus].Load(),
		Invalid:    f.counts[resultInvalid].Load(),
		Rejected:   f.counts[resultRejected].Load(),
		Opened:     f.changes[Open].Load(),
		HalfOpened: f.changes[HalfOpen].Load(),
		Closed:     f.changes[Closed].Load(),
		State:      f.breaker.current(),
		CallTime:   time.Duration(f.nanos.Load()),
	}
	s.Calls = s.OK + s.Timeouts + s.Errors + s.Status + s.Invalid
	return s
}
