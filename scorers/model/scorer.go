package model

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// ScoreFeature is the feature the model declares for its score, so rules, which run after
// the model, can read features.model_score. A shadow model declares nothing: its score must
// not be acted on, by rules either.
const ScoreFeature = "model_score"

// Threshold is a decision threshold on the score, with the text it was written as, which
// the reason code repeats: "model:score>=0.90".
type Threshold struct {
	Value float64
	Text  string
}

// ParseThreshold reads a threshold such as "0.90": a probability in [0, 1].
func ParseThreshold(s string) (Threshold, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v < 0 || v > 1 || v != v {
		return Threshold{}, fmt.Errorf("threshold %q is not a probability from 0 to 1", s)
	}
	return Threshold{Value: v, Text: strings.TrimSpace(s)}, nil
}

// Config is a model scorer's decision policy.
type Config struct {
	Model   *Model
	Review  Threshold // a score at or above it asks for review
	Decline Threshold // a score at or above it asks for decline
	// ExplainTop is how many feature contributions are written into the reasons of a review
	// or decline, as model:<feature>, after the threshold reason; 0 for none.
	ExplainTop int
	// Shadow scores and records (the decision's score, its model version prefixed with
	// "shadow:") but never adds a hit nor the model_score feature: a challenger.
	Shadow bool
}

// Factory builds the model scorer of each partition. It maps the model's features, by name,
// onto the engine's feature schema.
type Factory struct {
	cfg     Config
	index   []int    // the schema index of each model feature
	explain []string // "model:<feature>" for each model feature
	policy  *Policy
}

// New checks that every feature the model reads is in schema (declared by the scorers that
// run before it) and declares model_score unless the model is a shadow.
func New(cfg Config, schema *pipeline.FeatureSchema) (*Factory, error) {
	if cfg.Model == nil {
		return nil, fmt.Errorf("model: no model")
	}
	if cfg.ExplainTop < 0 {
		return nil, fmt.Errorf("model: explain_top %d is negative", cfg.ExplainTop)
	}
	f := &Factory{cfg: cfg}
	var missing []string
	for _, name := range cfg.Model.FeatureNames() {
		i, ok := schema.Index(name)
		if !ok {
			missing = append(missing, name)
		}
		f.index = append(f.index, i)
		f.explain = append(f.explain, "model:"+name)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("model %s reads features the engine does not compute: %s (the engine computes: %s)",
			cfg.Model.Version(), strings.Join(missing, ", "), strings.Join(schema.Names(), ", "))
	}
	p, err := NewPolicy("model", cfg.Review, cfg.Decline, cfg.Shadow, schema)
	if err != nil {
		return nil, err
	}
	f.policy = p
	return f, nil
}

// Version reports the model's version for the decisions' model field; a shadow model's is
// prefixed with "shadow:".
func (f *Factory) Version() (kind, version string) { return f.policy.Version(f.cfg.Model.Version()) }

// NewScorer returns one partition's scorer, with its own scratch space.
func (f *Factory) NewScorer(int) (pipeline.Scorer, error) {
	n := len(f.index)
	return &Scorer{f: f, x: make([]float32, n), contrib: make([]float64, n), top: make([]int, 0, f.cfg.ExplainTop)}, nil
}

// Scorer scores one partition's transactions. It allocates nothing per transaction.
type Scorer struct {
	f       *Factory
	x       []float32
	contrib []float64
	top     []int
}

// Score sets the eval's score from the features computed before it, and adds a decline or
// review hit, followed by the top feature contributions, when the score reaches a threshold.
func (s *Scorer) Score(ev *pipeline.Eval) {
	f := s.f
	for i, j := range f.index {
		s.x[i] = float32(ev.Features[j])
	}
	out := f.policy.Apply(ev, f.cfg.Model.Predict(s.x))
	if out == pipeline.Approve {
		return
	}
	for _, i := range s.explain() {
		ev.Hits = append(ev.Hits, pipeline.Hit{Outcome: out, Reason: f.explain[i]})
	}
}

// explain returns the model features with the largest positive contributions to the current
// score, largest first, at most ExplainTop of them.
func (s *Scorer) explain() []int {
	k := s.f.cfg.ExplainTop
	if k == 0 {
		return nil
	}
	s.f.cfg.Model.Contributions(s.x, s.contrib)
	s.top = topPositive(s.contrib, k, s.top[:0])
	return s.top
}

// topPositive appends to top the indices of the k largest positive values, largest first;
// equal values keep their index order. It allocates nothing when top has room for k.
func topPositive(values []float64, k int, top []int) []int {
	for i, c := range values {
		if c <= 0 {
			continue
		}
		pos := len(top)
		for pos > 0 && values[top[pos-1]] < c {
			pos--
		}
		if pos >= k {
			continue
		}
		if len(top) < k {
			top = append(top, 0)
		}
		copy(top[pos+1:], top[pos:len(top)-1])
		top[pos] = i
	}
	return top
}
