package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sliceSource serves lines in batches and records acknowledgements.
type sliceSource struct {
	lines [][]byte
	batch int
	next  int
	mu    sync.Mutex
	acked int
}

func (s *sliceSource) Name() string { return "test" }
func (s *sliceSource) Close() error { return nil }
func (s *sliceSource) ReadBatch(ctx context.Context) ([]Message, AckFunc, error) {
	if s.next >= len(s.lines) {
		return nil, nil, ErrEndOfInput
	}
	end := min(s.next+s.batch, len(s.lines))
	var msgs []Message
	for i := s.next; i < end; i++ {
		msgs = append(msgs, Message{Data: s.lines[i], Pos: int64(i)})
	}
	s.next = end
	return msgs, func(context.Context, error) error {
		s.mu.Lock()
		s.acked += len(msgs)
		s.mu.Unlock()
		return nil
	}, nil
}

// countScorer counts each card's transactions and reviews the third one and later; it
// declines amounts over 1000.00 and tags ecom payments.
type countScorer struct{ seen map[string]int }

type countFactory struct{ feature int }

func (f *countFactory) NewScorer(int) (Scorer, error) {
	return &countScorer{seen: map[string]int{}}, nil
}
func (f *countFactory) Version() (string, string) { return "rules", "test-1" }

func (s *countScorer) Score(e *Eval) {
	if !e.Late {
		s.seen[e.Tx.CardID]++
	}
	e.Features[0] = float64(s.seen[e.Tx.CardID])
	if e.Tx.Channel == ChannelEcom {
		e.Hits = append(e.Hits, Hit{Outcome: Approve, Reason: "tag:ecom"})
	}
	if s.seen[e.Tx.CardID] >= 3 {
		e.Hits = append(e.Hits, Hit{Outcome: Review, Reason: "rule:third"})
	}
	if e.Tx.Amount > 100000 {
		e.Hits = append(e.Hits, Hit{Outcome: Decline, Reason: "rule:big"})
	}
}

// memLedger posts in memory with a limit per payer.
type memLedger struct {
	limit    int64
	balances map[string]int64
	posted   map[string]bool
	fail     bool
	calls    int
}

func (l *memLedger) Post(_ context.Context, reqs []PostRequest) error {
	l.calls++
	if l.fail {
		return errors.New("disk on fire")
	}
	for i := range reqs {
		r := &reqs[i]
		switch {
		case l.posted[r.TxID]:
			r.Status = LedgerDuplicate
		case l.balances[r.Payer]-r.Amount < -l.limit:
			r.Status, r.Reason = LedgerRejected, "ledger:insufficient_funds"
		default:
			l.balances[r.Payer] -= r.Amount
			l.balances[r.Payee] += r.Amount
			l.posted[r.TxID] = true
			r.Status = LedgerPosted
		}
	}
	return nil
}
func (l *memLedger) Close() error { return nil }

// collectSink keeps the JSON of what it receives.
type collectSink struct {
	dead  bool
	lines []string
	names []string
}

func (c *collectSink) WriteBatch(_ context.Context, evs []*Event) error {
	for _, ev := range evs {
		if c.dead {
			c.lines = append(c.lines, string(AppendDeadLetterJSON(nil, ev)))
		} else {
			c.lines = append(c.lines, string(AppendDecisionJSON(nil, ev, c.names)))
		}
	}
	return nil
}
func (c *collectSink) Flush(context.Context) error { return nil }
func (c *collectSink) Close(context.Context) error { return nil }

// flakySink accepts writes and fails its flushes after the first few.
type flakySink struct {
	collectSink
	flushes, okFlushes int
}

func (f *flakySink) Flush(context.Context) error {
	f.flushes++
	if f.flushes > f.okFlushes {
		return errors.New("bulk endpoint said 503")
	}
	return nil
}

func txLine(id, card string, amount string, channel string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"ts":"2026-11-25T10:%02d:00Z","card_id":%q,"account_id":"acct-%s","merchant_id":"m-1","amount":%q,"currency":"EUR","channel":%q}`,
		id, len(id)%60, card, card, amount, channel)
}

type runResult struct {
	decisions, dead []string
	stats           Stats
	src             *sliceSource
}

func runEngine(t *testing.T, lines [][]byte, cfg EngineConfig, l Ledger) runResult {
	t.Helper()
	schema := NewFeatureSchema()
	if _, err := schema.Declare("card_count"); err != nil {
		t.Fatal(err)
	}
	dec := &collectSink{names: schema.Names()}
	dead := &collectSink{dead: true}
	e, err := NewEngine(EngineOptions{Config: cfg, Schema: schema, Scorers: []ScorerFactory{&countFactory{}}, Ledger: l, Sinks: []Sink{dec}, DeadLetters: dead})
	if err != nil {
		t.Fatal(err)
	}
	src := &sliceSource{lines: lines, batch: 7}
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	return runResult{dec.lines, dead.lines, e.Stats(), src}
}

func manyLines(n int) [][]byte {
	var lines [][]byte
	for i := range n {
		ch := "pos"
		if i%5 == 0 {
			ch = "ecom"
		}
		amount := fmt.Sprintf("%d.%02d", 1+i%700, i%100)
		lines = append(lines, txLine(fmt.Sprintf("tx-%05d", i), fmt.Sprintf("card-%d", i%37), amount, ch))
	}
	return lines
}

func TestEngineOrderAndDeterminism(t *testing.T) {
	lines := manyLines(2000)
	var first []string
	for _, p := range []int{1, 2, 5, 16} {
		res := runEngine(t, lines, EngineConfig{Partitions: p, Decoders: 3, QueueBatches: 2, KeepFeatures: true}, nil)
		if len(res.decisions) != len(lines) {
			t.Fatalf("partitions=%d: %d decisions for %d lines", p, len(res.decisions), len(lines))
		}
		for i, d := range res.decisions {
			if want := fmt.Sprintf(`{"id":"tx-%05d"`, i); !strings.HasPrefix(d, want) {
				t.Fatalf("partitions=%d: decision %d is %s, want id tx-%05d", p, i, d, i)
			}
		}
		if first == nil {
			first = res.decisions
		} else if !slices.Equal(first, res.decisions) {
			t.Fatalf("partitions=%d: decisions differ from partitions=1", p)
		}
		if res.src.acked != len(lines) {
			t.Errorf("partitions=%d: acked %d of %d", p, res.src.acked, len(lines))
		}
	}
	// card-0 is seen at 0, 37, 74: its third transaction is reviewed, the count feature says 3.
	if d := first[74]; !strings.Contains(d, `"decision":"review"`) || !strings.Contains(d, `"card_count":3`) {
		t.Errorf("third transaction of card-0: %s", d)
	}
	if d := first[0]; !strings.Contains(d, `"decision":"approve","reasons":["tag:ecom"]`) {
		t.Errorf("first transaction: %s", d)
	}
}

func TestEngineReasonsOrder(t *testing.T) {
	lines := [][]byte{
		txLine("a", "c1", "1.00", "ecom"),
		txLine("b", "c1", "1.00", "ecom"),
		txLine("c", "c1", "2000.00", "ecom"),
	}
	res := runEngine(t, lines, EngineConfig{}, nil)
	want := `"decision":"decline","reasons":["rule:big","rule:third","tag:ecom"],"ledger":"skipped","rules":"test-1"`
	if !strings.Contains(res.decisions[2], want) {
		t.Errorf("got %s\nwant %s", res.decisions[2], want)
	}
}

func TestEngineDeadLettersAndDuplicates(t *testing.T) {
	lines := [][]byte{
		txLine("a", "c1", "1.00", "pos"),
		[]byte(`{"id":`),
		txLine("b", "c1", "1.00", "pos"),
		txLine("a", "c1", "1.00", "pos"), // a redelivery
		[]byte(`{"id":"x","ts":"2026-11-25T10:00:00Z","card_id":"c","account_id":"a","merchant_id":"m","amount":"1","currency":"ZZZ"}`),
	}
	res := runEngine(t, lines, EngineConfig{Partitions: 3}, nil)
	if len(res.decisions) != 2 || len(res.dead) != 3 {
		t.Fatalf("decisions %d, dead %d: %v %v", len(res.decisions), len(res.dead), res.decisions, res.dead)
	}
	for i, code := range []string{"invalid_json", "duplicate_id", "unknown_currency"} {
		if !strings.Contains(res.dead[i], `"reason":"`+code+`: `) {
			t.Errorf("dead letter %d: %s, want %s", i, res.dead[i], code)
		}
	}
	if !strings.Contains(res.dead[0], `"raw":"{\"id\":","reason"`) || !strings.Contains(res.dead[0], `"source":"test","offset":1`) {
		t.Errorf("dead letter fields: %s", res.dead[0])
	}
	s := res.stats
	if s.Events != 5 || s.Decided != 2 || s.DeadLetterTotal() != 3 || s.Duplicates != 1 {
		t.Errorf("stats %+v", s)
	}
	// The duplicate must not count in the card's state: b is the card's second transaction.
	if !strings.Contains(res.decisions[1], `"decision":"approve"`) {
		t.Errorf("b: %s", res.decisions[1])
	}
}

func TestEngineLedger(t *testing.T) {
	l := &memLedger{limit: 500, balances: map[string]int64{}, posted: map[string]bool{"pre": true}}
	lines := [][]byte{
		txLine("a", "c1", "3.00", "pos"),
		txLine("b", "c1", "3.00", "pos"), // would take c1 to -6.00 > limit 5.00
		txLine("pre", "c2", "1.00", "pos"),
		txLine("d", "c3", "2000.00", "pos"), // declined by rule: never posted
	}
	res := runEngine(t, lines, EngineConfig{LedgerBatch: 2}, l)
	want := []string{
		`"decision":"approve","reasons":[],"ledger":"posted"`,
		`"decision":"decline","reasons":["ledger:insufficient_funds"],"ledger":"rejected"`,
		`"decision":"approve","reasons":[],"ledger":"duplicate"`,
		`"decision":"decline","reasons":["rule:big"],"ledger":"skipped"`,
	}
	for i, w := range want {
		if !strings.Contains(res.decisions[i], w) {
			t.Errorf("decision %d: %s\nwant %s", i, res.decisions[i], w)
		}
	}
	if l.balances["acct-c1"] != -300 || l.balances["m-1"] != 300 {
		t.Errorf("balances %v", l.balances)
	}
	if res.stats.ByLedger[LedgerPosted] != 1 || res.stats.ByLedger[LedgerRejected] != 1 || res.stats.ByOutcome[Decline] != 2 {
		t.Errorf("stats %+v", res.stats)
	}
}

func TestEngineLedgerFailureAcksNothingAfter(t *testing.T) {
	l := &memLedger{fail: true, balances: map[string]int64{}, posted: map[string]bool{}}
	schema := NewFeatureSchema()
	schema.Declare("card_count")
	dec := &collectSink{}
	e, _ := NewEngine(EngineOptions{Config: EngineConfig{LedgerBatch: 1}, Schema: schema, Scorers: []ScorerFactory{&countFactory{}}, Ledger: l, Sinks: []Sink{dec}})
	src := &sliceSource{lines: manyLines(500), batch: 10}
	err := e.Run(context.Background(), src)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Run = %v, want the ledger's error", err)
	}
	if src.acked != 0 || len(dec.lines) != 0 {
		t.Errorf("acked %d, wrote %d after a failed ledger", src.acked, len(dec.lines))
	}
}

func TestEngineCancelDrains(t *testing.T) {
	schema := NewFeatureSchema()
	schema.Declare("card_count")
	dec := &collectSink{}
	e, _ := NewEngine(EngineOptions{Schema: schema, Scorers: []ScorerFactory{&countFactory{}}, Sinks: []Sink{dec}})
	ctx, cancel := context.WithCancel(context.Background())
	src := &cancelSource{sliceSource: sliceSource{lines: manyLines(1000), batch: 10}, cancelAt: 300, cancel: cancel}
	if err := e.Run(ctx, src); err != nil {
		t.Fatal(err)
	}
	// Everything read before the cancellation was decided and acknowledged, in order.
	if len(dec.lines) != src.next || src.acked != src.next || src.next >= 1000 {
		t.Errorf("read %d, decided %d, acked %d", src.next, len(dec.lines), src.acked)
	}
}

type cancelSource struct {
	sliceSource
	cancelAt int
	cancel   func()
}

func (c *cancelSource) ReadBatch(ctx context.Context) ([]Message, AckFunc, error) {
	if c.next >= c.cancelAt {
		c.cancel()
	}
	return c.sliceSource.ReadBatch(ctx)
}

func TestDedupRemembersForTTL(t *testing.T) {
	d := newDedup(10 * 1e6) // 10ms of event time: ttl in ms is 10
	if d.seen("a", 100) {
		t.Fatal("new id seen")
	}
	if !d.seen("a", 105) || !d.seen("a", 109) {
		t.Fatal("id forgotten within ttl")
	}
	d.seen("b", 111) // rotates: a moves to the previous generation
	if !d.seen("a", 115) {
		t.Fatal("id forgotten after one rotation within ttl")
	}
	d.seen("c", 200) // far ahead: everything older is dropped
	if d.seen("a", 200) {
		t.Fatal("id remembered long after ttl")
	}
}

// TestEngineAcksOnlyFlushed checks that a batch a sink has accepted but not made durable is
// never acknowledged to its source.
func TestEngineAcksOnlyFlushed(t *testing.T) {
	schema := NewFeatureSchema()
	schema.Declare("card_count")
	sink := &flakySink{okFlushes: 2}
	e, _ := NewEngine(EngineOptions{Config: EngineConfig{MaxUnflushed: 3}, Schema: schema, Scorers: []ScorerFactory{&countFactory{}}, Sinks: []Sink{sink}})
	src := &sliceSource{lines: manyLines(1000), batch: 10}
	err := e.Run(context.Background(), src)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Run = %v, want the flush error", err)
	}
	// Two flushes succeeded, each covering at most MaxUnflushed batches of 10.
	if src.acked == 0 || src.acked > 2*3*10 || src.acked%10 != 0 {
		t.Errorf("acked %d events after 2 good flushes of at most 3 batches", src.acked)
	}
	if len(sink.lines) <= src.acked {
		t.Errorf("wrote %d, acked %d: the failing flush's writes should be unacknowledged", len(sink.lines), src.acked)
	}
}
