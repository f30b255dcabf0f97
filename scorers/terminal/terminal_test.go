package terminal

import (
	"fmt"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

const dayMs = int64(24 * time.Hour / time.Millisecond)

func newScorer(t *testing.T) (*Scorer, *pipeline.FeatureSchema) {
	t.Helper()
	schema := pipeline.NewFeatureSchema()
	s, err := New(DefaultConfig(), schema)
	if err != nil {
		t.Fatal(err)
	}
	return s, schema
}

func tx(id, terminal string, ts int64) *pipeline.Transaction {
	return &pipeline.Transaction{ID: id, TerminalID: terminal, MerchantID: "m-" + terminal, TS: ts}
}

// score returns [count_1d, count_7d, count_30d, risk_1d, risk_7d, risk_30d].
func score(s *Scorer, t *pipeline.Transaction) []float64 {
	dst := make([]float64, 6)
	s.Score(t, false, dst)
	return dst
}

func TestFeatureNames(t *testing.T) {
	_, schema := newScorer(t)
	want := []string{"terminal_count_1d", "terminal_count_7d", "terminal_count_30d", "terminal_risk_1d", "terminal_risk_7d", "terminal_risk_30d"}
	if got := schema.Names(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("features = %v, want %v", got, want)
	}
}

func TestWindowsEndADelayBefore(t *testing.T) {
	s, _ := newScorer(t)
	t0 := int64(1_700_000_000_000)
	score(s, tx("a", "T1", t0))
	score(s, tx("b", "T1", t0+dayMs/2))
	s.Feedback(&pipeline.Feedback{ID: "a", Fraud: true, TS: t0 + 7*dayMs})
	// 7 days after a: a is in the windows, b (half a day later) not yet.
	got := score(s, tx("c", "T1", t0+7*dayMs))
	if want := []float64{1, 1, 1, 1, 1, 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("at t0+7d: %v, want %v", got, want)
	}
	got = score(s, tx("d", "T1", t0+7*dayMs+dayMs/2))
	if want := []float64{2, 2, 2, 0.5, 0.5, 0.5}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("at t0+7.5d: %v, want %v", got, want)
	}
	// 8.25 days after a: the windows end at t0+1.25d; a has left the 1-day window, not the 7-day one.
	got = score(s, tx("e", "T1", t0+8*dayMs+dayMs/4))
	if want := []float64{1, 2, 2, 0, 0.5, 0.5}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("at t0+8.25d: %v, want %v", got, want)
	}
	// Another terminal knows nothing.
	if got := score(s, tx("f", "T2", t0+8*dayMs)); fmt.Sprint(got) != fmt.Sprint([]float64{0, 0, 0, 0, 0, 0}) {
		t.Errorf("other terminal: %v", got)
	}
}

func TestFeedbackReversedAndUnknown(t *testing.T) {
	s, _ := newScorer(t)
	t0 := int64(1_700_000_000_000)
	score(s, tx("a", "T", t0))
	s.Feedback(&pipeline.Feedback{ID: "a", Fraud: true})
	s.Feedback(&pipeline.Feedback{ID: "a", Fraud: true}) // repeated: counted once
	if got := score(s, tx("b", "T", t0+7*dayMs)); got[3] != 1 {
		t.Fatalf("risk after fraud feedback = %v", got)
	}
	s.Feedback(&pipeline.Feedback{ID: "a", Fraud: false}) // an analyst reverses the verdict
	if got := score(s, tx("c", "T", t0+7*dayMs+1)); got[3] != 0 || got[0] != 1 {
		t.Fatalf("after the verdict was reversed: %v", got)
	}
	s.Feedback(&pipeline.Feedback{ID: "never-seen", Fraud: true})
	if s.UnknownFeedback() != 1 {
		t.Errorf("UnknownFeedback = %d, want 1", s.UnknownFeedback())
	}
}

func TestDuplicatesAndLateEventsAreNotAdded(t *testing.T) {
	s, _ := newScorer(t)
	t0 := int64(1_700_000_000_000)
	score(s, tx("a", "T", t0))
	score(s, tx("a", "T", t0)) // redelivered
	dst := make([]float64, 6)
	s.Score(tx("late", "T", t0+1), true, dst)
	if got := score(s, tx("b", "T", t0+7*dayMs+10)); got[0] != 1 {
		t.Errorf("count = %v, want 1: a redelivery or a late event was added", got[0])
	}
}

func TestMerchantWhenNoTerminal(t *testing.T) {
	s, _ := newScorer(t)
	t0 := int64(1_700_000_000_000)
	s.Score(&pipeline.Transaction{ID: "a", MerchantID: "M", TS: t0}, false, make([]float64, 6))
	got := score(s, &pipeline.Transaction{ID: "b", MerchantID: "M", TS: t0 + 7*dayMs})
	if got[0] != 1 {
		t.Errorf("merchant-keyed count = %v, want 1", got[0])
	}
	// A terminal named like the merchant is another key.
	if got := score(s, tx("c", "M", t0+7*dayMs)); got[0] != 0 {
		t.Errorf("terminal M shares the merchant's history: %v", got)
	}
}

func TestHistoryBeyondTheHorizonIsForgotten(t *testing.T) {
	s, _ := newScorer(t)
	t0 := int64(1_700_000_000_000)
	for i := range 1000 {
		score(s, tx(fmt.Sprint("old-", i), fmt.Sprint("T", i), t0))
	}
	// 40 days later, past 7 + 30 days: every old terminal goes at the next sweep.
	score(s, tx("new", "X", t0+40*dayMs))
	if s.keys.Len() != 1 || s.byID.len() != 1 {
		t.Errorf("after the horizon: %d terminals, %d ids held, want 1 and 1", s.keys.Len(), s.byID.len())
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s, _ := newScorer(t)
	t0 := int64(1_700_000_000_000)
	for i := range 200 {
		term := fmt.Sprint("T", i%7)
		if i%3 == 0 {
			term = ""
		}
		score(s, &pipeline.Transaction{ID: fmt.Sprint("t", i), TerminalID: term, MerchantID: fmt.Sprint("M", i%5), TS: t0 + int64(i)*dayMs/10})
		if i%11 == 0 {
			s.Feedback(&pipeline.Feedback{ID: fmt.Sprint("t", i/2), Fraud: true})
		}
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newScorer(t)
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	again, _ := r.Snapshot()
	if string(again) != string(snap) {
		t.Fatal("snapshot of the restored state differs")
	}
	for i := range 50 {
		x := &pipeline.Transaction{ID: fmt.Sprint("n", i), TerminalID: fmt.Sprint("T", i%7), TS: t0 + 27*dayMs + int64(i)}
		a, b := score(s, x), score(r, x)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("restored scorer gives %v, the original %v", b, a)
		}
	}
	for _, bad := range [][]byte{nil, {9}, snap[:len(snap)-3], append(append([]byte(nil), snap...), 0)} {
		if err := r.Restore(bad); err == nil {
			t.Errorf("Restore accepted a damaged snapshot of %d bytes", len(bad))
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Delay: 0, Windows: []time.Duration{time.Hour}},
		{Delay: time.Hour},
		{Delay: time.Hour, Windows: []time.Duration{2 * time.Hour, time.Hour}},
	} {
		if _, err := New(c, pipeline.NewFeatureSchema()); err == nil {
			t.Errorf("New(%+v) accepted a bad config", c)
		}
	}
}

func BenchmarkScore(b *testing.B) {
	schema := pipeline.NewFeatureSchema()
	s, _ := New(DefaultConfig(), schema)
	t0 := int64(1_700_000_000_000)
	txs := make([]pipeline.Transaction, 1<<20) // 10k terminals, 9 ms apart: ~100 per terminal in 37 days
	for i := range txs {
		txs[i] = pipeline.Transaction{ID: fmt.Sprint("t", i), TerminalID: fmt.Sprint("T", i%10000), TS: t0 + int64(i)*9}
	}
	dst := make([]float64, 6)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Score(&txs[i%len(txs)], false, dst)
	}
}
