package pipeline

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestWatermarks(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	w := newWatermarks(10*time.Second, time.Minute, clock.now, math.MinInt64)
	if w.current() != math.MinInt64 {
		t.Fatal("watermark before any event")
	}
	const s = int64(1000)
	w.observe(0, 100*s)
	if got := w.current(); got != 90*s {
		t.Fatalf("one partition: %d, want %d", got, 90*s)
	}
	// A second partition far behind holds the watermark where it is.
	w.observe(1, 20*s)
	w.observe(0, 500*s)
	if got := w.current(); got != 90*s {
		t.Fatalf("slow partition: %d, want it held at %d", got, 90*s)
	}
	w.observe(1, 300*s)
	if got := w.current(); got != 290*s {
		t.Fatalf("slow partition caught up: %d, want %d", got, 290*s)
	}
	// Partition 1 goes silent for longer than the idle timeout: the watermark follows 0.
	clock.t = clock.t.Add(2 * time.Minute)
	w.observe(0, 600*s)
	if got := w.current(); got != 590*s {
		t.Fatalf("idle partition: %d, want %d", got, 590*s)
	}
	// It comes back behind: the watermark does not go back.
	w.observe(1, 310*s)
	if got := w.current(); got != 590*s {
		t.Fatalf("returning partition moved the watermark back to %d", got)
	}
	// A restored watermark is the floor.
	r := newWatermarks(10*time.Second, time.Minute, clock.now, 1000*s)
	r.observe(0, 50*s)
	if r.current() != 1000*s {
		t.Fatalf("restored watermark went back to %d", r.current())
	}
}

// TestSlowSourcePartitionIsNotLate: events of a lagging source partition are not late just
// because another partition is ahead.
func TestSlowSourcePartitionIsNotLate(t *testing.T) {
	at := func(id, ts string) []byte {
		return []byte(`{"id":"` + id + `","ts":"` + ts + `","card_id":"c` + id + `","account_id":"a","merchant_id":"m","amount":"1.00","currency":"EUR"}`)
	}
	src := &partitionedSource{msgs: []Message{
		{Data: at("1", "2026-11-25T11:00:00Z"), Partition: 1},
		{Data: at("2", "2026-11-25T12:00:00Z"), Partition: 0},
		{Data: at("3", "2026-11-25T12:30:00Z"), Partition: 0},
		{Data: at("4", "2026-11-25T11:01:00Z"), Partition: 1}, // an hour behind partition 0: on time for its own
		{Data: at("5", "2026-11-25T10:00:00Z"), Partition: 1}, // an hour behind its own partition: late
	}}
	schema := NewFeatureSchema()
	schema.Declare("card_count")
	sink := &collectSink{}
	e, _ := NewEngine(EngineOptions{Schema: schema, Scorers: []ScorerFactory{&countFactory{}}, Sinks: []Sink{sink}})
	if err := e.Run(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if e.Stats().Late != 1 {
		t.Fatalf("late %d, want 1:\n%v", e.Stats().Late, sink.lines)
	}
	for i, l := range sink.lines {
		if late := i == 4; late != (len(l) > 0 && contains(l, `"late":true`)) {
			t.Errorf("decision %d: %s", i, l)
		}
	}
}

type partitionedSource struct {
	msgs []Message
	done bool
}

func (p *partitionedSource) Name() string { return "partitioned" }
func (p *partitionedSource) Close() error { return nil }
func (p *partitionedSource) ReadBatch(ctx context.Context) ([]Message, AckFunc, error) {
	if p.done {
		return nil, nil, ErrEndOfInput
	}
	p.done = true
	return p.msgs, nil, nil
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
