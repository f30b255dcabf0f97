package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// merchantCounter is an ordered scorer: per merchant, the transactions seen before this one
// and the frauds confirmed among them.
type merchantCounter struct {
	idx    []int
	State  map[string][2]float64 // merchant → [transactions, frauds]
	OfTx   map[string]string     // transaction id → merchant
	frauds []string
}

func newMerchantCounter(t *testing.T, schema *FeatureSchema) *merchantCounter {
	a, err := schema.Declare("merchant_tx")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := schema.Declare("merchant_frauds")
	return &merchantCounter{idx: []int{a, b}, State: map[string][2]float64{}, OfTx: map[string]string{}}
}

func (m *merchantCounter) Features() []int { return m.idx }
func (m *merchantCounter) Score(tx *Transaction, late bool, dst []float64) {
	s := m.State[tx.MerchantID]
	dst[0], dst[1] = s[0], s[1]
	if _, dup := m.OfTx[tx.ID]; dup || late {
		return
	}
	s[0]++
	m.State[tx.MerchantID] = s
	m.OfTx[tx.ID] = tx.MerchantID
}
func (m *merchantCounter) Feedback(fb *Feedback) {
	if mer, ok := m.OfTx[fb.ID]; ok && fb.Fraud {
		s := m.State[mer]
		s[1]++
		m.State[mer] = s
	}
}
func (m *merchantCounter) Snapshot() ([]byte, error) { return json.Marshal(m) }
func (m *merchantCounter) Restore(b []byte) error    { return json.Unmarshal(b, m) }

func feedbackLine(id string, fraud bool) []byte {
	return fmt.Appendf(nil, `{"kind":"feedback","id":%q,"ts":"2026-11-25T10:05:00Z","fraud":%v}`, id, fraud)
}

// chargebacks records the engine's chargeback calls.
type chargebacks struct {
	mu  sync.Mutex
	ids []string
}

func (c *chargebacks) call(_ context.Context, fb *Feedback) (LedgerStatus, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = append(c.ids, fb.ID)
	if strings.HasSuffix(fb.ID, "3") {
		return LedgerSkipped, "", nil
	}
	return LedgerPosted, "", nil
}

func TestEngineFeedbackAndOrderedScorers(t *testing.T) {
	var lines [][]byte
	for i := range 40 {
		lines = append(lines, txLine(fmt.Sprintf("tx-%02d", i), fmt.Sprintf("card-%d", i%7), "10.00", "pos"))
		if i%10 == 3 {
			lines = append(lines, feedbackLine(fmt.Sprintf("tx-%02d", i), true))
			lines = append(lines, feedbackLine(fmt.Sprintf("tx-%02d", i-1), false))
		}
	}
	lines = append(lines, []byte(`{"kind":"feedback","id":"x","ts":"2026-11-25T11:00:00Z"}`)) // no verdict
	lines = append(lines, []byte(`{"kind":"refund","id":"x"}`))

	var outputs []string
	for _, partitions := range []int{1, 3} {
		schema := NewFeatureSchema()
		mc := newMerchantCounter(t, schema)
		cb := &chargebacks{}
		dec := &collectSink{names: schema.Names()}
		dead := &collectSink{dead: true}
		e, err := NewEngine(EngineOptions{
			Config:  EngineConfig{Partitions: partitions, KeepFeatures: true},
			Schema:  schema,
			Ordered: []OrderedScorer{mc},
			Ledger:  &memLedger{}, Chargeback: cb.call,
			Sinks: []Sink{dec}, DeadLetters: dead,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Run(context.Background(), &sliceSource{lines: lines, batch: 5}); err != nil {
			t.Fatal(err)
		}
		st := e.Stats()
		if st.Decided != 40 || st.Feedback != 8 || st.FeedbackFraud != 4 || len(dec.lines) != 40 {
			t.Fatalf("decided %d (%d lines), feedback %d, fraud %d; want 40, 8, 4", st.Decided, len(dec.lines), st.Feedback, st.FeedbackFraud)
		}
		if want := [4]int64{LedgerSkipped: 4}; st.Chargebacks != want {
			t.Errorf("chargebacks by status = %v, want %v", st.Chargebacks, want)
		}
		if fmt.Sprint(cb.ids) != "[tx-03 tx-13 tx-23 tx-33]" {
			t.Errorf("chargebacks called for %v", cb.ids)
		}
		if len(dead.lines) != 2 || !strings.Contains(dead.lines[0], `missing_field: fraud is required`) || !strings.Contains(dead.lines[1], `kind \"refund\"`) {
			t.Errorf("dead letters = %v", dead.lines)
		}
		// The fifth transaction of the merchant after tx-03's fraud verdict sees it.
		last := dec.lines[39]
		if !strings.Contains(last, `"merchant_tx":39,"merchant_frauds":4`) {
			t.Errorf("last decision = %s", last)
		}
		outputs = append(outputs, strings.Join(dec.lines, "\n"))
	}
	if outputs[0] != outputs[1] {
		t.Error("decisions differ between 1 and 3 partitions")
	}
}

// TestCheckpointCarriesOrderedScorers crashes a run with an ordered scorer and resumes it:
// the ordered scorer's state comes back with the checkpoint, so the features are those of
// a run that never stopped.
func TestCheckpointCarriesOrderedScorers(t *testing.T) {
	var lines [][]byte
	for i := range 600 {
		lines = append(lines, txLine(fmt.Sprintf("tx-%04d", i), fmt.Sprintf("card-%d", i%13), "10.00", "pos"))
		if i%50 == 7 {
			lines = append(lines, feedbackLine(fmt.Sprintf("tx-%04d", i), true))
		}
	}
	newEngine := func(store CheckpointStore, sink *fileLikeSink) *Engine {
		schema := NewFeatureSchema()
		sink.names = schema.Names()
		mc := newMerchantCounter(t, schema)
		sink.names = schema.Names()
		e, err := NewEngine(EngineOptions{
			Config:  EngineConfig{Partitions: 2, KeepFeatures: true, CheckpointEvery: 1, QueueBatches: 2},
			Schema:  schema,
			Ordered: []OrderedScorer{mc},
			Sinks:   []Sink{sink}, Checkpoints: store,
		})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ctx := context.Background()
	whole := &fileLikeSink{}
	if err := newEngine(nil, whole).Run(ctx, &sliceSource{lines: lines, batch: 9}); err != nil {
		t.Fatal(err)
	}
	store, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sink := &fileLikeSink{}
	for _, failAfter := range []int{20, 45, 0} {
		e := newEngine(store, sink)
		if _, err := e.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		err := e.Run(ctx, &posSource{sliceSource: sliceSource{lines: lines, batch: 9}, failAfter: failAfter})
		if (err != nil) != (failAfter > 0) {
			t.Fatalf("run failing after %d batches: %v", failAfter, err)
		}
	}
	if got, want := strings.Join(sink.lines, "\n"), strings.Join(whole.lines, "\n"); got != want {
		t.Errorf("resumed output differs from an uninterrupted run (%d lines, want %d)", len(sink.lines), len(whole.lines))
	}
}
