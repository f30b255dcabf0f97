package lightgbm

import (
	"fmt"
	"strings"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/scorers/model"
)

// Config is a LightGBM scorer's decision policy: scorers/model's, without explanations.
type Config struct {
	Model   *Model
	Review  model.Threshold // a score at or above it asks for review
	Decline model.Threshold // a score at or above it asks for decline
	// Shadow scores and records (the decision's score, its model version prefixed with
	// "shadow:") but never adds a hit nor the model_score feature: a challenger.
	Shadow bool
}

// Factory builds the LightGBM scorer of each partition. It maps the model's features, by
// name, onto the engine's feature schema.
type Factory struct {
	cfg    Config
	index  []int // the schema index of each model feature
	policy *model.Policy
}

// New checks that every feature the model reads is in schema (declared by the scorers that
// run before it) and declares model_score unless the model is a shadow.
func New(cfg Config, schema *pipeline.FeatureSchema) (*Factory, error) {
	if cfg.Model == nil {
		return nil, fmt.Errorf("lightgbm: no model")
	}
	f := &Factory{cfg: cfg}
	var missing []string
	for _, name := range cfg.Model.FeatureNames() {
		i, ok := schema.Index(name)
		if !ok {
			missing = append(missing, name)
		}
		f.index = append(f.index, i)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("lightgbm model %s reads features the engine does not compute: %s (the engine computes: %s)",
			cfg.Model.Version(), strings.Join(missing, ", "), strings.Join(schema.Names(), ", "))
	}
	p, err := model.NewPolicy("lightgbm", cfg.Review, cfg.Decline, cfg.Shadow, schema)
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
	return &Scorer{f: f, x: make([]float64, len(f.index)), out: make([]float64, 1)}, nil
}

// Scorer scores one partition's transactions. It allocates nothing per transaction.
type Scorer struct {
	f   *Factory
	x   []float64
	out []float64
}

// Score sets the eval's score from the features computed before it, and adds a decline or
// review hit when the score reaches a threshold.
func (s *Scorer) Score(ev *pipeline.Eval) {
	f := s.f
	for i, j := range f.index {
		s.x[i] = ev.Features[j]
	}
	m := f.cfg.Model
	f.policy.Apply(ev, m.prob(m.margin(s.x, s.out)))
}
