package eval

import (
	"math"
	"reflect"
	"testing"
)

func labels(bits ...int) []bool {
	l := make([]bool, len(bits))
	for i, b := range bits {
		l[i] = b == 1
	}
	return l
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestAUCAndAveragePrecision(t *testing.T) {
	for _, c := range []struct {
		name    string
		scores  []float64
		labels  []bool
		auc, ap float64
	}{
		// Pairs (fraud, genuine): (0.35,0.1) yes, (0.35,0.4) no, (0.8,·) yes twice: 3/4.
		// Ranking 0.8 F, 0.4 G, 0.35 F: AP = 1/2·1 + 1/2·2/3.
		{"scikit-learn's example", []float64{0.1, 0.4, 0.35, 0.8}, labels(0, 0, 1, 1), 0.75, 0.5 + 1.0/3},
		// All tied: every pair counts a half; one threshold, precision 2/4.
		{"all tied", []float64{0.5, 0.5, 0.5, 0.5}, labels(1, 0, 1, 0), 0.5, 0.5},
		// (0.9,0.5) 1, (0.9,0.1) 1, (0.5,0.5) 1/2, (0.5,0.1) 1: 3.5/4.
		// Thresholds 0.9: P 1, ΔR 1/2; 0.5 (two taken together): P 2/3, ΔR 1/2.
		{"a tie across classes", []float64{0.9, 0.5, 0.5, 0.1}, labels(1, 1, 0, 0), 0.875, 0.5 + 1.0/3},
		{"perfect", []float64{0.2, 0.9, 0.1, 0.8}, labels(0, 1, 0, 1), 1, 1},
		{"inverted", []float64{0.9, 0.1}, labels(0, 1), 0, 0.5},
		// Checked against scikit-learn 1.2.1.
		{"mixed ties", []float64{.3, .3, .7, .7, .2, .9, .1}, labels(0, 1, 0, 1, 0, 1, 1), 0.5833333333333333, 0.7095238095238094},
	} {
		if got := AUC(c.scores, c.labels); !near(got, c.auc) {
			t.Errorf("%s: AUC %v, want %v", c.name, got, c.auc)
		}
		if got := AveragePrecision(c.scores, c.labels); !near(got, c.ap) {
			t.Errorf("%s: AP %v, want %v", c.name, got, c.ap)
		}
	}
	if !math.IsNaN(AUC([]float64{1, 2}, labels(1, 1))) || !math.IsNaN(AveragePrecision([]float64{1}, labels(0))) {
		t.Error("one class only: want NaN")
	}
}

func TestCardPrecisionAtK(t *testing.T) {
	obs := []Obs{
		// Day 10: card a (fraud) scores 0.9 at most, b 0.8, c (fraud) 0.7 and 0.2, d 0.1.
		{10, "a", 0.3, true}, {10, "a", 0.9, false}, {10, "b", 0.8, false},
		{10, "c", 0.7, true}, {10, "c", 0.2, false}, {10, "d", 0.1, false},
		// Day 11: a was found on day 10 and is dropped; c was not (outside the top 2).
		// c and e tie at 0.6: c ranks first by id.
		{11, "a", 0.99, true}, {11, "c", 0.6, true}, {11, "e", 0.6, false}, {11, "f", 0.5, true},
	}
	mean, perDay, days := CardPrecisionAtK(obs, 2)
	// Day 10 top 2: a (fraud), b: 1/2. Day 11 top 2: c (fraud), e: 1/2.
	if !reflect.DeepEqual(perDay, []float64{0.5, 0.5}) || !reflect.DeepEqual(days, []int64{10, 11}) || mean != 0.5 {
		t.Errorf("k=2: mean %v, per day %v on %v; want 0.5, [0.5 0.5] on [10 11]", mean, perDay, days)
	}
	// k=3, day 10: a, b, c: 2/3; a and c are dropped on day 11: e, f: 1/3.
	mean, perDay, _ = CardPrecisionAtK(obs, 3)
	if !near(perDay[0], 2.0/3) || !near(perDay[1], 1.0/3) || !near(mean, 0.5) {
		t.Errorf("k=3: mean %v, per day %v; want 0.5, [2/3 1/3]", mean, perDay)
	}
	// Fewer cards than k still divides by k, as the handbook does.
	_, perDay, _ = CardPrecisionAtK([]Obs{{1, "x", 1, true}}, 100)
	if perDay[0] != 0.01 {
		t.Errorf("one card, k=100: %v, want 0.01", perDay[0])
	}
}

func TestConfusion(t *testing.T) {
	var c Confusion
	for _, x := range [][2]bool{{true, true}, {true, false}, {true, true}, {false, true}, {false, false}} {
		c.Count(x[0], x[1])
	}
	if c != (Confusion{TP: 2, FP: 1, FN: 1, TN: 1}) || !near(c.Precision(), 2.0/3) || !near(c.Recall(), 2.0/3) {
		t.Errorf("%+v precision %v recall %v", c, c.Precision(), c.Recall())
	}
	if !math.IsNaN(Confusion{}.Precision()) {
		t.Error("nothing flagged: precision should be NaN")
	}
}

func TestKnown(t *testing.T) {
	// The handbook's split: train days 0-6, delay 7, test days 14-20. A fraud on day 3 is
	// known on every test day; one on day 9 becomes known on day 17 (9 + 7 + 1).
	k := NewKnown([]Obs{{3, "a", 0, true}, {9, "b", 0, true}, {12, "b", 0, true}, {-1, "c", 0, true}, {2, "d", 0, false}}, 0, 7)
	for _, c := range []struct {
		card string
		day  int64
		want bool
	}{
		{"a", 14, true}, {"b", 16, false}, {"b", 17, true}, {"c", 20, false}, {"d", 20, false}, {"x", 20, false},
	} {
		if got := k.At(c.card, c.day); got != c.want {
			t.Errorf("card %s on day %d: known %v, want %v", c.card, c.day, got, c.want)
		}
	}
}
