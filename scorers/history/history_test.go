package history

import (
	"fmt"
	"math"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

func newScorer(t *testing.T, cfg Config) (*Factory, *Scorer) {
	t.Helper()
	f, err := New(cfg, pipeline.NewFeatureSchema())
	if err != nil {
		t.Fatal(err)
	}
	s, _ := f.NewScorer(0)
	return f, s.(*Scorer)
}

var eur = pipeline.Currency{Code: "EUR", Digits: 2}

// pay scores a payment of cents on card at ts (ms) and reports its decision.
func pay(f *Factory, s *Scorer, card string, cents, ts int64, out pipeline.Outcome) (z, declines float64) {
	ev := &pipeline.Eval{Tx: &pipeline.Transaction{ID: fmt.Sprint(card, ts), CardID: card, Amount: cents, Currency: eur, TS: ts}, Features: make([]float64, 2)}
	s.Score(ev)
	s.Decided(ev, out)
	return ev.Features[f.zscore], ev.Features[f.declines]
}

func TestZScore(t *testing.T) {
	f, s := newScorer(t, Config{Alpha: 0.5, MinHistory: 3})
	// Reference: the same exponentially weighted mean and variance, computed plainly.
	amounts := []float64{10, 12, 8, 11, 9, 100}
	mean, variance := amounts[0], 0.0
	for i, a := range amounts {
		z, _ := pay(f, s, "c", int64(a*100), int64(i)*1000, pipeline.Approve)
		want := 0.0
		if i >= 3 && variance > 0 {
			want = (a - mean) / math.Sqrt(variance)
		}
		if math.Abs(z-want) > 1e-12 {
			t.Fatalf("payment %d (%.0f): z = %v, want %v", i, a, z, want)
		}
		if i > 0 {
			d := a - mean
			mean += 0.5 * d
			variance = 0.5 * (variance + 0.5*d*d)
		}
	}
	if z, _ := pay(f, s, "other", 100000, 0, pipeline.Approve); z != 0 {
		t.Errorf("a new card's z-score = %v, want 0", z)
	}
}

func TestDeclines24h(t *testing.T) {
	f, s := newScorer(t, Config{})
	h := int64(3_600_000)
	pay(f, s, "c", 100, 0, pipeline.Decline)
	pay(f, s, "c", 100, 2*h, pipeline.Review)
	pay(f, s, "c", 100, 3*h, pipeline.Decline)
	pay(f, s, "d", 100, 3*h, pipeline.Decline) // another card
	if _, n := pay(f, s, "c", 100, 4*h, pipeline.Approve); n != 2 {
		t.Errorf("declines in 24h = %v, want 2", n)
	}
	if _, n := pay(f, s, "c", 100, 25*h, pipeline.Approve); n != 1 {
		t.Errorf("a day later = %v, want 1 (the first decline left the window)", n)
	}
	// A late transaction is decided from the history but changes nothing.
	ev := &pipeline.Eval{Tx: &pipeline.Transaction{ID: "late", CardID: "c", Amount: 100, Currency: eur, TS: h}, Features: make([]float64, 2), Late: true}
	s.Score(ev)
	s.Decided(ev, pipeline.Decline)
	if _, n := pay(f, s, "c", 100, 26*h, pipeline.Approve); n != 1 {
		t.Errorf("after a late decline = %v, want 1", n)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	f, s := newScorer(t, Config{})
	for i := range 300 {
		out := pipeline.Approve
		if i%7 == 0 {
			out = pipeline.Decline
		}
		pay(f, s, fmt.Sprint("card-", i%17), int64(1000+i*37), int64(i)*600_000, out)
	}
	snap, _ := s.Snapshot()
	_, r := newScorer(t, Config{})
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	again, _ := r.Snapshot()
	if string(again) != string(snap) {
		t.Fatal("the restored state snapshots differently")
	}
	for i := range 17 {
		card := fmt.Sprint("card-", i)
		z1, d1 := pay(f, s, card, 5000, 300*600_000, pipeline.Approve)
		z2, d2 := pay(f, r, card, 5000, 300*600_000, pipeline.Approve)
		if z1 != z2 || d1 != d2 {
			t.Fatalf("%s: restored gives %v %v, original %v %v", card, z2, d2, z1, d1)
		}
	}
	for _, b := range [][]byte{nil, {7}, snap[:len(snap)-2], append(append([]byte(nil), snap...), 1)} {
		if err := r.Restore(b); err == nil {
			t.Errorf("Restore accepted %d damaged bytes", len(b))
		}
	}
}

func TestBoundsAndExpiry(t *testing.T) {
	f, s := newScorer(t, Config{MaxCards: 100})
	for i := range 1000 {
		pay(f, s, fmt.Sprint("c", i), 100, int64(i), pipeline.Approve)
	}
	if len(s.cards) > 100 {
		t.Errorf("%d cards held, bound 100", len(s.cards))
	}
	f, s = newScorer(t, Config{})
	pay(f, s, "old", 100, 0, pipeline.Approve)
	pay(f, s, "new", 100, 40*dayMs, pipeline.Approve)
	if _, ok := s.cards["old"]; ok || len(s.cards) != 1 {
		t.Errorf("a card idle past the TTL is still held: %d cards", len(s.cards))
	}
	if _, err := New(Config{Alpha: 2}, pipeline.NewFeatureSchema()); err == nil {
		t.Error("alpha 2 accepted")
	}
}
