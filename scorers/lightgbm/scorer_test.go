package lightgbm

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/scorers/model"
)

func threshold(t testing.TB, s string) model.Threshold {
	t.Helper()
	th, err := model.ParseThreshold(s)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// fixtureScorer builds the scorer of the fixture over a schema where the model's features
// come in another order, after another feature.
func fixtureScorer(t testing.TB, cfg Config) (*Factory, pipeline.Scorer, *pipeline.FeatureSchema) {
	t.Helper()
	schema := pipeline.NewFeatureSchema()
	for _, n := range []string{"is_night", "secs_since_last", "card_count_1d", "amount"} {
		if _, err := schema.Declare(n); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Model = mustLoad(t, fixture)
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

func eval(schema *pipeline.FeatureSchema, vals map[string]float64) *pipeline.Eval {
	ev := &pipeline.Eval{Features: make([]float64, schema.Len())}
	for n, v := range vals {
		i, _ := schema.Index(n)
		ev.Features[i] = v
	}
	return ev
}

func TestScorerThresholdsAndReasons(t *testing.T) {
	f, s, schema := fixtureScorer(t, Config{Review: threshold(t, "0.30"), Decline: threshold(t, "0.60")})
	is, ok := schema.Index(model.ScoreFeature)
	if !ok {
		t.Fatal("model_score not declared")
	}
	if kind, v := f.Version(); kind != "model" || v != mustLoad(t, fixture).Version() {
		t.Errorf("version %s %s", kind, v)
	}
	sig := func(m float64) float64 { return 1 / (1 + math.Exp(-m)) }
	for _, c := range []struct {
		name    string
		x       map[string]float64
		score   float64
		reasons []string
		outcome pipeline.Outcome
	}{
		{"decline", map[string]float64{"amount": 250, "card_count_1d": 5, "secs_since_last": math.NaN()}, sig(0.45), []string{"model:score>=0.60"}, pipeline.Decline},
		{"review", map[string]float64{"amount": 120, "card_count_1d": math.NaN(), "secs_since_last": 60}, sig(-0.65), []string{"model:score>=0.30"}, pipeline.Review},
		{"approve", map[string]float64{"amount": 50, "card_count_1d": 2, "secs_since_last": 30, "is_night": 1}, sig(-1.55), nil, pipeline.Approve},
	} {
		ev := eval(schema, c.x)
		s.Score(ev)
		if !ev.HasScore || math.Abs(ev.Score-c.score) > 1e-9 || ev.Features[is] != ev.Score {
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

func TestScorerShadow(t *testing.T) {
	f, s, schema := fixtureScorer(t, Config{Review: threshold(t, "0"), Decline: threshold(t, "0"), Shadow: true})
	if _, ok := schema.Index(model.ScoreFeature); ok {
		t.Error("a shadow model declared model_score")
	}
	ev := eval(schema, map[string]float64{"amount": 3000, "card_count_1d": 4})
	s.Score(ev)
	if ev.HasScore || !ev.HasShadowScore || len(ev.Hits) != 0 || math.Abs(ev.ShadowScore-1/(1+math.Exp(-1.35))) > 1e-9 {
		t.Errorf("shadow: shadow score %v (has %v), score set %v, hits %v; want only a shadow score", ev.ShadowScore, ev.HasShadowScore, ev.HasScore, ev.Hits)
	}
	if kind, v := f.Version(); kind != "model" || !strings.HasPrefix(v, "shadow:sha256:") {
		t.Errorf("version %s %s", kind, v)
	}
}

func TestNewErrors(t *testing.T) {
	m := mustLoad(t, fixture)
	schema := pipeline.NewFeatureSchema()
	schema.Declare("amount")
	schema.Declare("is_night")
	_, err := New(Config{Model: m, Review: threshold(t, "0.5"), Decline: threshold(t, "0.9")}, schema)
	if err == nil || !strings.Contains(err.Error(), "does not compute: card_count_1d, secs_since_last (the engine computes: amount, is_night)") {
		t.Errorf("unknown features: %v", err)
	}
	schema.Declare("card_count_1d")
	schema.Declare("secs_since_last")
	_, err = New(Config{Model: m, Review: threshold(t, "0.9"), Decline: threshold(t, "0.5")}, schema)
	if err == nil || !strings.Contains(err.Error(), "above the decline threshold") {
		t.Errorf("review above decline: %v", err)
	}
	if _, err := New(Config{Review: threshold(t, "0.5"), Decline: threshold(t, "0.9")}, schema); err == nil {
		t.Error("no model accepted")
	}
	// model_score declared by another model scorer first: a clear error, not a panic.
	schema.Declare(model.ScoreFeature)
	_, err = New(Config{Model: m, Review: threshold(t, "0.5"), Decline: threshold(t, "0.9")}, schema)
	if err == nil || !strings.Contains(err.Error(), "model_score") {
		t.Errorf("model_score twice: %v", err)
	}
}

func TestScorerAllocatesNothing(t *testing.T) {
	_, s, schema := fixtureScorer(t, Config{Review: threshold(t, "0.30"), Decline: threshold(t, "0.60")})
	ev := eval(schema, map[string]float64{"amount": 250, "card_count_1d": 5})
	ev.Hits = make([]pipeline.Hit, 0, 4)
	allocs := testing.AllocsPerRun(100, func() {
		ev.Hits = ev.Hits[:0]
		s.Score(ev)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per score, want 0", allocs)
	}
}

// BenchmarkScore scores with a model of 100 complete trees of depth 6 over 20 features,
// the size of the bundled XGBoost model.
func BenchmarkScore(b *testing.B) {
	m := mustParse(b, synthetic(100, 6, 20, 1))
	schema := pipeline.NewFeatureSchema()
	for _, n := range m.FeatureNames() {
		schema.Declare(n)
	}
	f, err := New(Config{Model: m, Review: threshold(b, "1"), Decline: threshold(b, "1")}, schema)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := f.NewScorer(0)
	evs := make([]*pipeline.Eval, 256)
	seed := uint64(3)
	for i := range evs {
		evs[i] = &pipeline.Eval{Features: make([]float64, schema.Len())}
		for j := range m.FeatureNames() {
			seed = seed*6364136223846793005 + 1442695040888963407
			evs[i].Features[j] = float64(seed>>11) / (1 << 53) * 100
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ev := evs[i%len(evs)]
		ev.Hits = ev.Hits[:0]
		s.Score(ev)
	}
}
