package model

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

func threshold(t testing.TB, s string) Threshold {
	t.Helper()
	th, err := ParseThreshold(s)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// tinyScorer builds the scorer of tinyJSON over a schema where other features come first.
func tinyScorer(t testing.TB, cfg Config) (*Factory, pipeline.Scorer, *pipeline.FeatureSchema) {
	t.Helper()
	schema := pipeline.NewFeatureSchema()
	for _, n := range []string{"x", "b", "a"} {
		schema.Declare(n)
	}
	cfg.Model = mustParse(t, tinyJSON)
	f, err := New(cfg, schema)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.NewScorer(0)
	if err != nil {
		t.Fatal(err)
	}
	return f, s, schema
}

func TestScorerThresholdsAndReasons(t *testing.T) {
	_, s, schema := tinyScorer(t, Config{Review: threshold(t, "0.60"), Decline: threshold(t, "0.645"), ExplainTop: 3})
	ia, _ := schema.Index("a")
	ib, _ := schema.Index("b")
	is, ok := schema.Index(ScoreFeature)
	if !ok {
		t.Fatal("model_score not declared")
	}
	sig := func(m float64) float64 { return 1 / (1 + math.Exp(-m)) }
	for _, c := range []struct {
		name    string
		a, b    float64
		score   float64
		reasons []string
		outcome pipeline.Outcome
	}{
		// margin 0.6: p = 0.6457 >= 0.645: decline; a and b both pushed it up, b most.
		{"decline", 0, 3, sig(0.6), []string{"model:score>=0.645", "model:b", "model:a"}, pipeline.Decline},
		// margin 0.5: p = 0.6225: review.
		{"review", 0, 1, sig(0.5), []string{"model:score>=0.60", "model:b", "model:a"}, pipeline.Review},
		// margin 0.1: p = 0.525: nothing.
		{"approve", 2, 0.6, sig(0.1), nil, pipeline.Approve},
	} {
		ev := &pipeline.Eval{Features: make([]float64, schema.Len())}
		ev.Features[ia], ev.Features[ib] = c.a, c.b
		s.Score(ev)
		if !ev.HasScore || math.Abs(ev.Score-c.score) > 1e-6 || ev.Features[is] != ev.Score {
			t.Errorf("%s: score %v (has %v, feature %v), want %v", c.name, ev.Score, ev.HasScore, ev.Features[is], c.score)
		}
		var reasons []string
		for _, h := range ev.Hits {
			reasons = append(reasons, h.Reason)
			if h.Outcome != c.outcome {
				t.Errorf("%s: hit %v with outcome %v, want %v", c.name, h.Reason, h.Outcome, c.outcome)
			}
		}
		if !reflect.DeepEqual(reasons, c.reasons) {
			t.Errorf("%s: reasons %q, want %q", c.name, reasons, c.reasons)
		}
	}
}

func TestScorerExplainTop(t *testing.T) {
	for _, c := range []struct {
		top  int
		want []string
	}{
		{0, []string{"model:score>=0.5"}},
		{1, []string{"model:score>=0.5", "model:b"}},
		{5, []string{"model:score>=0.5", "model:b", "model:a"}},
	} {
		_, s, schema := tinyScorer(t, Config{Review: threshold(t, "0.5"), Decline: threshold(t, "0.99"), ExplainTop: c.top})
		ev := &pipeline.Eval{Features: make([]float64, schema.Len())}
		ib, _ := schema.Index("b")
		ev.Features[ib] = 3
		s.Score(ev)
		var got []string
		for _, h := range ev.Hits {
			got = append(got, h.Reason)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("explain_top %d: reasons %q, want %q", c.top, got, c.want)
		}
	}
}

func TestScorerShadow(t *testing.T) {
	f, s, schema := tinyScorer(t, Config{Review: threshold(t, "0"), Decline: threshold(t, "0"), ExplainTop: 3, Shadow: true})
	if _, ok := schema.Index(ScoreFeature); ok {
		t.Error("a shadow model declared model_score")
	}
	ev := &pipeline.Eval{Features: make([]float64, schema.Len())}
	s.Score(ev)
	if ev.HasScore || !ev.HasShadowScore || len(ev.Hits) != 0 {
		t.Errorf("shadow: score %v (has %v), shadow score %v (has %v), hits %v; want only a shadow score", ev.Score, ev.HasScore, ev.ShadowScore, ev.HasShadowScore, ev.Hits)
	}
	if kind, v := f.Version(); kind != "model" || !strings.HasPrefix(v, "shadow:sha256:") {
		t.Errorf("version %s %s", kind, v)
	}
}

func TestNewErrors(t *testing.T) {
	m := mustParse(t, tinyJSON)
	schema := pipeline.NewFeatureSchema()
	schema.Declare("a")
	_, err := New(Config{Model: m, Review: threshold(t, "0.5"), Decline: threshold(t, "0.9")}, schema)
	if err == nil || !strings.Contains(err.Error(), "does not compute: b") {
		t.Errorf("missing feature: %v", err)
	}
	schema.Declare("b")
	_, err = New(Config{Model: m, Review: threshold(t, "0.9"), Decline: threshold(t, "0.5")}, schema)
	if err == nil || !strings.Contains(err.Error(), "above the decline threshold") {
		t.Errorf("review above decline: %v", err)
	}
	for _, s := range []string{"-0.1", "1.5", "x", "NaN"} {
		if _, err := ParseThreshold(s); err == nil {
			t.Errorf("threshold %q accepted", s)
		}
	}
}

// bundled returns a scorer of the bundled model (models/default) and evals holding the
// parity fixture's rows.
func bundled(t testing.TB, cfg Config) (pipeline.Scorer, []*pipeline.Eval) {
	t.Helper()
	m, err := Load("../../models/default/model.json")
	if err != nil {
		t.Fatal(err)
	}
	fx := loadFixture(t, "../../models/default/parity.json")
	schema := pipeline.NewFeatureSchema()
	for _, n := range m.FeatureNames() {
		schema.Declare(n)
	}
	cfg.Model = m
	f, err := New(cfg, schema)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := f.NewScorer(0)
	var evs []*pipeline.Eval
	for _, row := range fx.Rows {
		ev := &pipeline.Eval{Features: make([]float64, schema.Len()), Hits: make([]pipeline.Hit, 0, 8)}
		for j, v := range row {
			if v == nil {
				ev.Features[j] = math.NaN()
			} else {
				ev.Features[j] = *v
			}
		}
		evs = append(evs, ev)
	}
	return s, evs
}

func TestScoreAllocatesNothing(t *testing.T) {
	s, evs := bundled(t, Config{Review: threshold(t, "0"), Decline: threshold(t, "0.5"), ExplainTop: 3})
	allocs := testing.AllocsPerRun(20, func() {
		for _, ev := range evs {
			ev.Hits = ev.Hits[:0]
			s.Score(ev)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run, want 0", allocs)
	}
}

// BenchmarkScore is one score of the bundled model (models/default), no explanation.
func BenchmarkScore(b *testing.B) {
	s, evs := bundled(b, Config{Review: threshold(b, "1"), Decline: threshold(b, "1")})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ev := evs[i%len(evs)]
		ev.Hits = ev.Hits[:0]
		s.Score(ev)
	}
}

// BenchmarkScoreExplained scores and explains every transaction (top 3 contributions).
func BenchmarkScoreExplained(b *testing.B) {
	s, evs := bundled(b, Config{Review: threshold(b, "0"), Decline: threshold(b, "1"), ExplainTop: 3})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ev := evs[i%len(evs)]
		ev.Hits = ev.Hits[:0]
		s.Score(ev)
	}
}

func TestTopPositive(t *testing.T) {
	for _, c := range []struct {
		values []float64
		k      int
		want   []int
	}{
		{[]float64{0.1, 0.5, -1, 0.3, 0.5, 0.2}, 3, []int{1, 4, 3}},
		{[]float64{0.1, 0.5, -1, 0.3, 0.5, 0.2}, 10, []int{1, 4, 3, 5, 0}},
		{[]float64{0.1, 0.5, -1, 0.3, 0.5, 0.2}, 1, []int{1}},
		{[]float64{-1, 0, -2}, 3, nil},
		{[]float64{1, 2, 3, 4, 5}, 2, []int{4, 3}},
	} {
		got := topPositive(c.values, c.k, make([]int, 0, c.k))
		if len(got) == 0 && len(c.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("topPositive(%v, %d) = %v, want %v", c.values, c.k, got, c.want)
		}
	}
}

// BenchmarkMargin is the tree walk alone, on the fixture rows without missing values (the
// branch-free path) and with them (the general walk).
func BenchmarkMargin(b *testing.B) {
	m, err := Load("../../models/default/model.json")
	if err != nil {
		b.Fatal(err)
	}
	fx := loadFixture(b, "../../models/default/parity.json")
	var full, missing [][]float32
	for _, row := range fx.Rows {
		x := make([]float32, len(row))
		hasNaN := false
		for j, v := range row {
			if v == nil {
				x[j], hasNaN = float32(math.NaN()), true
			} else {
				x[j] = float32(*v)
			}
		}
		if hasNaN {
			missing = append(missing, x)
		} else {
			full = append(full, x)
		}
	}
	for _, c := range []struct {
		name string
		rows [][]float32
	}{{"complete", full}, {"missing", missing}} {
		b.Run(c.name, func(b *testing.B) {
			var sink float32
			for i := 0; b.Loop(); i++ {
				sink += m.Margin(c.rows[i%len(c.rows)])
			}
			_ = sink
		})
	}
}
