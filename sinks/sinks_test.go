package sinks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sinks"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
)

// memTarget is an in-memory Writer that can be taken down, refuse ids for good, and fail
// some items retryably (a flaky target).
type memTarget struct {
	mu        sync.Mutex
	delivered []string
	down      bool
	reject    map[string]bool
	flaky     map[string]int // id -> retryable failures left
	calls     int
	closed    bool
}

func newMemTarget() *memTarget {
	return &memTarget{reject: map[string]bool{}, flaky: map[string]int{}}
}

func (m *memTarget) Write(_ context.Context, batch []*pipeline.Event) ([]error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.down {
		return nil, errors.New("503 service unavailable")
	}
	res := make([]error, len(batch))
	for i, ev := range batch {
		id := ev.Tx.ID
		switch {
		case m.reject[id]:
			res[i] = sinks.Permanent("mapper_parsing_exception: bad %s", id)
		case m.flaky[id] > 0:
			m.flaky[id]--
			res[i] = sinks.Retryable("429 too many requests")
		default:
			m.delivered = append(m.delivered, id)
		}
	}
	return res, nil
}

func (m *memTarget) Close(context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}

func (m *memTarget) Delivered() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.delivered...)
}

func (m *memTarget) setDown(d bool) { m.mu.Lock(); m.down = d; m.mu.Unlock() }

func fastRetry() sinks.Retry {
	return sinks.Retry{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond}
}

func factory(required bool) sinktest.Factory {
	return func(t *testing.T, dead pipeline.Sink) sinktest.Instance {
		m := newMemTarget()
		s := sinks.New(m, sinks.Options{
			Name: "mem", Required: required, DeadLetters: dead,
			Batching: sinks.Batching{Count: 25, Period: 5 * time.Millisecond},
			Retry:    fastRetry(),
		})
		return sinktest.Instance{
			Sink: s, Delivered: m.Delivered, SetDown: m.setDown, BestEffort: !required,
			Reject: func(id string) { m.mu.Lock(); m.reject[id] = true; m.mu.Unlock() },
		}
	}
}

func TestConformanceRequired(t *testing.T)   { sinktest.Run(t, factory(true)) }
func TestConformanceBestEffort(t *testing.T) { sinktest.Run(t, factory(false)) }

// TestRetriedItemKeepsKeyOrder: when an item fails retryably and a later item of the same
// key succeeds in the same batch, the later one is sent again after the retried one.
func TestRetriedItemKeepsKeyOrder(t *testing.T) {
	m := newMemTarget()
	m.flaky["a1"] = 2
	s := sinks.New(m, sinks.Options{Name: "mem", Required: true, Retry: fastRetry()})
	evs := []*pipeline.Event{
		sinktest.Event(0, "a1", "A", false), sinktest.Event(1, "b1", "B", false),
		sinktest.Event(2, "a2", "A", false), sinktest.Event(3, "b2", "B", false),
	}
	ctx := context.Background()
	if err := s.WriteBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(m.Delivered(), ",")
	if want := "b1,a2,b2,a2,a1,a2"; got != want { // a2 again after each try of a1
		t.Errorf("delivered %s, want %s", got, want)
	}
	s.Close(ctx)
}

type countMetrics struct {
	mu sync.Mutex
	n  map[sinks.Outcome]int
}

func (c *countMetrics) Add(_ string, o sinks.Outcome, n int) {
	c.mu.Lock()
	c.n[o] += n
	c.mu.Unlock()
}

func (c *countMetrics) get(o sinks.Outcome) int { c.mu.Lock(); defer c.mu.Unlock(); return c.n[o] }

// TestBestEffortGivesUp: a best-effort sink dead-letters items whose retries run out,
// with the reason, and counts them.
func TestBestEffortGivesUp(t *testing.T) {
	m := newMemTarget()
	m.setDown(true)
	dead := sinktest.NewRecorder()
	met := &countMetrics{n: map[sinks.Outcome]int{}}
	r := fastRetry()
	r.MaxRetries = 3
	s := sinks.New(m, sinks.Options{Name: "be", DeadLetters: dead, Retry: r, Metrics: met,
		Batching: sinks.Batching{Count: 10, Period: time.Millisecond}})
	ctx := context.Background()
	if err := s.WriteBatch(ctx, []*pipeline.Event{sinktest.Event(0, "x", "A", true), sinktest.Event(1, "y", "A", true)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil { // best-effort: does not wait for the target
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(dead.Reasons()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("dead letters %v", dead.Reasons())
		}
		time.Sleep(time.Millisecond)
	}
	for id, reason := range dead.Reasons() {
		if !strings.HasPrefix(reason, sinks.ReasonGaveUp+": be: ") || !strings.Contains(reason, "503") {
			t.Errorf("%s: reason %q", id, reason)
		}
	}
	if got := met.get(sinks.DeadLettered); got != 2 {
		t.Errorf("dead_lettered = %d, want 2", got)
	}
	if got := met.get(sinks.Retried); got != 6 {
		t.Errorf("retried = %d, want 6 (3 retries of 2 items)", got)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !m.closed {
		t.Error("Close did not close the writer")
	}
}

// TestBestEffortOverflow: a full queue sends new items to dead letters at once, without
// waiting for the target.
func TestBestEffortOverflow(t *testing.T) {
	block := make(chan struct{})
	var calls atomic.Int32
	w := writerFunc(func(ctx context.Context, b []*pipeline.Event) ([]error, error) {
		calls.Add(1)
		<-block
		return make([]error, len(b)), nil
	})
	dead := sinktest.NewRecorder()
	s := sinks.New(w, sinks.Options{Name: "q", QueueSize: 3, DeadLetters: dead,
		Batching: sinks.Batching{Count: 1}, Retry: fastRetry()})
	ctx := context.Background()
	s.WriteBatch(ctx, []*pipeline.Event{sinktest.Event(0, "e0", "A", true)})
	for calls.Load() == 0 { // wait until e0 is in flight and the queue is empty
		time.Sleep(time.Millisecond)
	}
	var evs []*pipeline.Event
	for i := 1; i <= 5; i++ {
		evs = append(evs, sinktest.Event(i, "e"+string(rune('0'+i)), "A", true))
	}
	if err := s.WriteBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	s.Flush(ctx)
	d := dead.Reasons()
	if len(d) != 2 || !strings.HasPrefix(d["e4"], sinks.ReasonOverflow) || !strings.HasPrefix(d["e5"], sinks.ReasonOverflow) {
		t.Errorf("dead letters %v, want e4 and e5 overflowed", d)
	}
	close(block)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRequiredFlushWaitsAndCancels: Flush of a required sink with the target down returns
// the context's error, keeps the items, and delivers them at the next Flush.
func TestRequiredFlushWaitsAndCancels(t *testing.T) {
	m := newMemTarget()
	m.setDown(true)
	s := sinks.New(m, sinks.Options{Name: "r", Required: true, Retry: fastRetry()})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s.WriteBatch(ctx, []*pipeline.Event{sinktest.Event(0, "x", "A", true)})
	if err := s.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush = %v, want the deadline", err)
	}
	m.setDown(false)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := m.Delivered(); len(got) != 1 || got[0] != "x" {
		t.Errorf("delivered %v", got)
	}
}

func TestBatchingByCountAndBytes(t *testing.T) {
	var sizes []int
	w := writerFunc(func(ctx context.Context, b []*pipeline.Event) ([]error, error) {
		sizes = append(sizes, len(b))
		return make([]error, len(b)), nil
	})
	s := sinks.New(w, sinks.Options{Name: "b", Required: true, Batching: sinks.Batching{Count: 4, ByteSize: 250},
		Size: func(ev *pipeline.Event) int { return 100 }})
	ctx := context.Background()
	var evs []*pipeline.Event
	for i := range 7 {
		evs = append(evs, sinktest.Event(i, "id", "A", false))
	}
	s.WriteBatch(ctx, evs) // 3 items make 300 bytes >= 250: batches of 3
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(sizes); got != 3 || sizes[0] != 3 || sizes[1] != 3 || sizes[2] != 1 {
		t.Errorf("batch sizes %v, want [3 3 1]", sizes)
	}
}

func TestBackoff(t *testing.T) {
	r := sinks.Retry{InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 9: time.Second} {
		for range 50 {
			if d := r.Backoff(n); d < want/2 || d >= want*3/2 {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v)", n, d, want/2, want*3/2)
			}
		}
	}
}

type writerFunc func(ctx context.Context, b []*pipeline.Event) ([]error, error)

func (f writerFunc) Write(ctx context.Context, b []*pipeline.Event) ([]error, error) {
	return f(ctx, b)
}
func (f writerFunc) Close(context.Context) error { return nil }

// TestBestEffortCloseDeadLettersTheRest: Close with the target down waits for its context,
// then sends what is still queued to dead letters (reason sink_closed): nothing vanishes.
func TestBestEffortCloseDeadLettersTheRest(t *testing.T) {
	m := newMemTarget()
	m.setDown(true)
	dead := sinktest.NewRecorder()
	s := sinks.New(m, sinks.Options{Name: "c", DeadLetters: dead, Retry: fastRetry(),
		Batching: sinks.Batching{Count: 2, Period: time.Millisecond}, CloseTimeout: 50 * time.Millisecond})
	var evs []*pipeline.Event
	for i := range 5 {
		evs = append(evs, sinktest.Event(i, "c"+string(rune('0'+i)), "A", true))
	}
	ctx := context.Background()
	if err := s.WriteBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err == nil {
		t.Error("Close = nil, want the undelivered items reported")
	}
	d := dead.Reasons()
	if len(d) != 5 {
		t.Fatalf("dead letters %v, want all 5", d)
	}
	for id, r := range d {
		if !strings.HasPrefix(r, sinks.ReasonClosed) {
			t.Errorf("%s: %s", id, r)
		}
	}
}

// TestDeadLetterFile: dead letters land in the file as CONTRACT.md dead letters, the raw
// decision JSON with the reason, and a reopened file keeps the earlier ones.
func TestDeadLetterFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "os.dead.ndjson")
	for round := range 2 {
		dead, err := sinks.DeadLetterFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m := newMemTarget()
		id := fmt.Sprintf("bad-%d", round)
		m.reject[id] = true
		s := sinks.New(m, sinks.Options{Name: "os", Required: true, DeadLetters: dead, Retry: fastRetry()})
		ctx := context.Background()
		s.WriteBatch(ctx, []*pipeline.Event{sinktest.Event(0, id, "A", true)})
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %s", len(lines), b)
	}
	var dl struct{ Raw, Reason, Source string }
	if err := json.Unmarshal([]byte(lines[1]), &dl); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dl.Raw, `{"id":"bad-1",`) || dl.Reason != "sink_rejected: os: mapper_parsing_exception: bad bad-1" || dl.Source != "test" {
		t.Errorf("dead letter %s", lines[1])
	}
}

// BenchmarkRequiredSink is the framework's own cost per item (copying, batching, results)
// over a writer that does nothing.
func BenchmarkRequiredSink(b *testing.B) {
	w := writerFunc(func(ctx context.Context, batch []*pipeline.Event) ([]error, error) {
		return make([]error, len(batch)), nil
	})
	s := sinks.New(w, sinks.Options{Name: "bench", Required: true, Batching: sinks.Batching{Count: 500}})
	evs := make([]*pipeline.Event, 512)
	for i := range evs {
		evs[i] = sinktest.Event(i, fmt.Sprintf("tx-%d", i), "A", i%10 == 0)
		evs[i].Features = make([]float64, 12)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.WriteBatch(ctx, evs)
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/item")
}

func TestSpecCheck(t *testing.T) {
	base := sinks.Spec{Name: "s",
		Batching: config.Batching{Count: 10, Period: config.Duration(time.Second)},
		Retry:    config.Retry{Backoff: config.Backoff{InitialInterval: config.Duration(time.Millisecond), MaxInterval: config.Duration(time.Second)}}}
	if err := base.Check("output.x[0]"); err != nil {
		t.Fatal(err)
	}
	for want, mod := range map[string]func(s *sinks.Spec){
		"output.x[0].batching.count":                 func(s *sinks.Spec) { s.Batching.Count = -1 },
		"output.x[0].batching.period":                func(s *sinks.Spec) { s.Batching.Period = 0 },
		"output.x[0].retry.backoff.max_interval":     func(s *sinks.Spec) { s.Retry.Backoff.MaxInterval = 1 },
		"output.x[0].retry.backoff.initial_interval": func(s *sinks.Spec) { s.Retry.Backoff.InitialInterval = 0 },
		"output.x[0].retry.max_retries":              func(s *sinks.Spec) { s.Retry.MaxRetries = -2 },
	} {
		s := base
		mod(&s)
		if err := s.Check("output.x[0]"); err == nil || !strings.HasPrefix(err.Error(), want+":") {
			t.Errorf("%s: %v", want, err)
		}
	}
}
