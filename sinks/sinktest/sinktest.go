// Package sinktest is the conformance suite every fraudpipe sink passes: events delivered at
// least once and in order per key, no successful Flush of a required sink before its events
// are durable, recovery after the target comes back, and dead letters, with a reason, for
// what the target refuses for good.
//
// A sink's test calls Run with a Factory that builds the sink over a target the suite can
// inspect and, where the target allows it, take down or make refuse an event.
package sinktest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Instance is one sink under test and the handles on its target.
type Instance struct {
	// Sink is the sink under test; the suite closes it.
	Sink pipeline.Sink
	// Delivered returns the transaction ids durably in the target, in the order they
	// arrived there, redeliveries included.
	Delivered func() []string
	// SetDown makes the target fail every write retryably (a 503, a refused connection)
	// or brings it back. nil when the target cannot be taken down: the outage tests skip.
	SetDown func(down bool)
	// Reject makes the target refuse the transaction id for good (a mapping error, a 400).
	// nil when it cannot: the dead-letter test skips.
	Reject func(id string)
	// BestEffort says the sink is not required: Flush does not wait for the target, so the
	// suite polls the target instead, and skips the no-ack-before-durable test.
	BestEffort bool
}

// Factory builds a fresh sink and target for one test. dead is the dead-letter sink the
// sink must send what it gives up to.
type Factory func(t *testing.T, dead pipeline.Sink) Instance

// Timeout bounds every wait of the suite.
var Timeout = 10 * time.Second

// Run runs the conformance suite on the sinks factory builds.
func Run(t *testing.T, factory Factory) {
	t.Run("AtLeastOnceInOrderPerKey", func(t *testing.T) { testOrder(t, factory) })
	t.Run("CopiesEvents", func(t *testing.T) { testCopies(t, factory) })
	t.Run("NoAckBeforeDurable", func(t *testing.T) { testNoAck(t, factory) })
	t.Run("RecoversAfterOutage", func(t *testing.T) { testRecovery(t, factory) })
	t.Run("DeadLettersPermanentFailures", func(t *testing.T) { testDeadLetters(t, factory) })
}

// Event returns a decided event for tests: transaction id, card (the ordering key) and a
// decline with a rule reason when decline is set.
func Event(seq int, id, card string, decline bool) *pipeline.Event {
	ev := &pipeline.Event{Seq: uint64(seq), Source: "test", Pos: int64(seq)}
	ev.Tx = pipeline.Transaction{
		ID: id, TSText: "2026-11-25T10:15:30.123Z", TS: 1795601730123, CardID: card,
		AccountID: "acct-" + card, MerchantID: "m-" + strconv.Itoa(seq%7), Amount: int64(1000 + seq),
		Currency: pipeline.Currency{Code: "EUR", Digits: 2}, Channel: pipeline.ChannelEcom, Country: "DE",
		Lat: 52.52, Lon: 13.405, HasGeo: true,
	}
	ev.Decision = pipeline.Decision{Outcome: pipeline.Approve, Ledger: pipeline.LedgerPosted, Rules: "rules-v1",
		Score: 0.125, HasScore: true}
	if decline {
		ev.Decision.Outcome = pipeline.Decline
		ev.Decision.Ledger = pipeline.LedgerSkipped
		ev.Decision.Reasons = []string{"rule:card_testing", "model:score>=0.90"}
		ev.Decision.Score = 0.97
	}
	return ev
}

// stream returns n events over keys cards, all declines (so alerters route them too).
func stream(prefix string, n, keys int) []*pipeline.Event {
	evs := make([]*pipeline.Event, n)
	for i := range evs {
		evs[i] = Event(i, fmt.Sprintf("%s-%04d", prefix, i), fmt.Sprintf("card-%d", i%keys), true)
	}
	return evs
}

// write feeds events to s in batches of size per, reusing one slice as the engine does.
func write(t *testing.T, ctx context.Context, s pipeline.Sink, evs []*pipeline.Event, per int) {
	t.Helper()
	buf := make([]*pipeline.Event, 0, per)
	for i := 0; i < len(evs); i += per {
		buf = append(buf[:0], evs[i:min(i+per, len(evs))]...)
		if err := s.WriteBatch(ctx, buf); err != nil {
			t.Fatalf("WriteBatch: %v", err)
		}
		clear(buf)
	}
}

// checkOrder checks that every event is delivered (or dead-lettered, when dead holds it)
// and that, per key, the last delivery of each event is in input order.
func checkOrder(t *testing.T, evs []*pipeline.Event, delivered []string, dead map[string]string) {
	t.Helper()
	last := map[string]int{}
	for i, id := range delivered {
		last[id] = i
	}
	prev := map[string]int{} // key -> position of the previous event's last delivery
	for _, ev := range evs {
		id, key := ev.Tx.ID, ev.Tx.CardID
		if _, ok := dead[id]; ok {
			continue
		}
		at, ok := last[id]
		if !ok {
			t.Errorf("%s was never delivered nor dead-lettered", id)
			continue
		}
		if p, ok := prev[key]; ok && at < p {
			t.Errorf("key %s: %s was last delivered at %d, before the previous event's %d", key, id, at, p)
		}
		prev[key] = at
	}
}

// eventually polls cond until it holds or Timeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", Timeout, what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// settle flushes the sink and, when it is best-effort, waits until every id in want is
// in the target or in dead letters.
func settle(t *testing.T, ctx context.Context, in Instance, dead *Recorder, want []*pipeline.Event) {
	t.Helper()
	if err := in.Sink.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if !in.BestEffort {
		return
	}
	eventually(t, "delivery", func() bool {
		got := map[string]bool{}
		for _, id := range in.Delivered() {
			got[id] = true
		}
		d := dead.Reasons()
		for _, ev := range want {
			if _, ok := d[ev.Tx.ID]; !got[ev.Tx.ID] && !ok {
				return false
			}
		}
		return true
	})
}

func closeSink(t *testing.T, s pipeline.Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func testOrder(t *testing.T, factory Factory) {
	dead := NewRecorder()
	in := factory(t, dead)
	ctx := context.Background()
	evs := stream("order", 600, 13)
	write(t, ctx, in.Sink, evs, 37)
	settle(t, ctx, in, dead, evs)
	checkOrder(t, evs, in.Delivered(), dead.Reasons())
	if n := len(dead.Reasons()); n != 0 {
		t.Errorf("%d dead letters from a healthy target: %v", n, dead.Reasons())
	}
	closeSink(t, in.Sink)
}

// testCopies checks that the sink keeps nothing of the engine's events past Flush: the
// engine reuses them for the next batches.
func testCopies(t *testing.T, factory Factory) {
	dead := NewRecorder()
	in := factory(t, dead)
	ctx := context.Background()
	evs := stream("copy", 50, 5)
	want := make([]*pipeline.Event, len(evs))
	for i, ev := range evs {
		c := *ev
		want[i] = &c
	}
	write(t, ctx, in.Sink, evs, 10)
	if err := in.Sink.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	for _, ev := range evs { // the engine reuses the events
		ev.Tx.ID, ev.Tx.CardID = "clobbered", "clobbered"
		if len(ev.Decision.Reasons) > 0 {
			ev.Decision.Reasons[0] = "clobbered"
		}
	}
	settle(t, ctx, in, dead, want)
	got := in.Delivered()
	if slices.Contains(got, "clobbered") {
		t.Errorf("the sink delivered an event changed after Flush returned: %v", got)
	}
	checkOrder(t, want, got, dead.Reasons())
	closeSink(t, in.Sink)
}

func testNoAck(t *testing.T, factory Factory) {
	dead := NewRecorder()
	in := factory(t, dead)
	defer closeSink(t, in.Sink)
	if in.SetDown == nil || in.BestEffort {
		t.Skip("the target cannot be taken down, or the sink is best-effort")
	}
	in.SetDown(true)
	evs := stream("noack", 20, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := writeAndFlush(ctx, in.Sink, evs)
	if err == nil {
		t.Fatal("Flush returned nil while the target was down")
	}
	for _, id := range in.Delivered() {
		if strings.HasPrefix(id, "noack-") {
			t.Errorf("%s is in a target that was down", id)
		}
	}
	if n := len(dead.Reasons()); n != 0 {
		t.Errorf("a required sink dead-lettered %d retryable items: %v", n, dead.Reasons())
	}
	in.SetDown(false)
	if err := in.Sink.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after the target came back: %v", err)
	}
	checkOrder(t, evs, in.Delivered(), nil)
}

func writeAndFlush(ctx context.Context, s pipeline.Sink, evs []*pipeline.Event) error {
	if err := s.WriteBatch(ctx, evs); err != nil {
		return err
	}
	return s.Flush(ctx)
}

// testRecovery takes the target down while a Flush waits, and brings it back: the Flush
// then succeeds with everything delivered.
func testRecovery(t *testing.T, factory Factory) {
	dead := NewRecorder()
	in := factory(t, dead)
	defer closeSink(t, in.Sink)
	if in.SetDown == nil {
		t.Skip("the target cannot be taken down")
	}
	ctx := context.Background()
	first := stream("before", 30, 4)
	write(t, ctx, in.Sink, first, 10)
	settle(t, ctx, in, dead, first)

	in.SetDown(true)
	during := stream("during", 60, 4)
	flushed := make(chan error, 1)
	go func() { flushed <- writeAndFlush(ctx, in.Sink, during) }()
	if !in.BestEffort {
		select {
		case err := <-flushed:
			t.Fatalf("Flush returned (%v) while the target was down", err)
		case <-time.After(100 * time.Millisecond): // proving a negative: it is still waiting
		}
	}
	in.SetDown(false)
	select {
	case err := <-flushed:
		if err != nil {
			t.Fatalf("Flush after recovery: %v", err)
		}
	case <-time.After(Timeout):
		t.Fatal("Flush did not return after the target came back")
	}
	settle(t, ctx, in, dead, during)
	all := append(slices.Clone(first), during...)
	d := dead.Reasons()
	if !in.BestEffort && len(d) > 0 {
		t.Errorf("a required sink dead-lettered retryable items: %v", d)
	}
	checkOrder(t, all, in.Delivered(), d)
}

func testDeadLetters(t *testing.T, factory Factory) {
	dead := NewRecorder()
	in := factory(t, dead)
	defer closeSink(t, in.Sink)
	if in.Reject == nil {
		t.Skip("the target cannot refuse an event")
	}
	evs := stream("dl", 40, 4)
	bad := map[string]bool{evs[3].Tx.ID: true, evs[17].Tx.ID: true, evs[39].Tx.ID: true}
	for id := range bad {
		in.Reject(id)
	}
	ctx := context.Background()
	write(t, ctx, in.Sink, evs, 16)
	settle(t, ctx, in, dead, evs)
	d := dead.Reasons()
	for id := range bad {
		if r, ok := d[id]; !ok || r == "" {
			t.Errorf("%s was refused by the target but is not in dead letters with a reason (%q)", id, r)
		}
	}
	for id, r := range d {
		if !bad[id] {
			t.Errorf("%s dead-lettered (%s) though the target accepts it", id, r)
		}
	}
	for _, id := range in.Delivered() {
		if bad[id] {
			t.Errorf("%s reported delivered though the target refused it", id)
		}
	}
	checkOrder(t, evs, in.Delivered(), d)
}

// Recorder is a dead-letter sink for tests: it keeps the transaction id and reason of each
// dead letter, counting them as durable when flushed.
type Recorder struct {
	mu      sync.Mutex
	pending map[string]string
	durable map[string]string
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{pending: map[string]string{}, durable: map[string]string{}}
}

// WriteBatch records the dead letters' ids and reasons.
func (r *Recorder) WriteBatch(_ context.Context, evs []*pipeline.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range evs {
		reason := ""
		if ev.Err != nil {
			reason = ev.Err.Error()
		}
		r.pending[ev.Tx.ID] = reason
	}
	return nil
}

// Flush makes the recorded dead letters durable.
func (r *Recorder) Flush(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, reason := range r.pending {
		r.durable[id] = reason
	}
	clear(r.pending)
	return nil
}

// Close flushes.
func (r *Recorder) Close(ctx context.Context) error { return r.Flush(ctx) }

// Reasons returns the durable dead letters: transaction id to reason.
func (r *Recorder) Reasons() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.durable))
	for id, reason := range r.durable {
		out[id] = reason
	}
	return out
}
