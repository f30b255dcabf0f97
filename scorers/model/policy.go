package model

import (
	"fmt"
	"math"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Policy is what a model's score decides, the same for every model scorer (XGBoost,
// LightGBM, a remote model server): a score at or above the decline threshold declines, at
// or above the review threshold reviews, each with the reason model:score>=<threshold>;
// the score is the model_score feature, which the rules after it can read. A shadow
// (challenger) model's score is only recorded, as the decision's shadow_score.
type Policy struct {
	Review, Decline Threshold
	Shadow          bool
	review, decline string // the reason codes
	scoreIdx        int    // the schema index of model_score; -1 for a shadow
}

// NewPolicy checks the thresholds and declares model_score on schema unless shadow. what
// names the scorer in errors ("lightgbm").
func NewPolicy(what string, review, decline Threshold, shadow bool, schema *pipeline.FeatureSchema) (*Policy, error) {
	if review.Value > decline.Value {
		return nil, fmt.Errorf("%s: review threshold %s is above the decline threshold %s", what, review.Text, decline.Text)
	}
	p := &Policy{Review: review, Decline: decline, Shadow: shadow,
		review: "model:score>=" + review.Text, decline: "model:score>=" + decline.Text, scoreIdx: -1}
	if !shadow {
		i, err := schema.Declare(ScoreFeature)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		p.scoreIdx = i
	}
	return p, nil
}

// Version is a model version as the decisions' model field reports it: a shadow's is
// prefixed with "shadow:" (the engine records it as shadow_model).
func (p *Policy) Version(v string) (kind, version string) {
	if p.Shadow {
		return "model", "shadow:" + v
	}
	return "model", v
}

// Apply records score on ev and adds the decline or review hit it asks for. It returns that
// outcome (Approve for none, and always for a shadow), for explanations to follow.
func (p *Policy) Apply(ev *pipeline.Eval, score float64) pipeline.Outcome {
	ev.SetScore(score, p.Shadow)
	if p.Shadow {
		return pipeline.Approve
	}
	ev.Features[p.scoreIdx] = score
	switch {
	case score >= p.Decline.Value:
		ev.Hits = append(ev.Hits, pipeline.Hit{Outcome: pipeline.Decline, Reason: p.decline})
		return pipeline.Decline
	case score >= p.Review.Value:
		ev.Hits = append(ev.Hits, pipeline.Hit{Outcome: pipeline.Review, Reason: p.review})
		return pipeline.Review
	}
	return pipeline.Approve
}

// Missing records that no score could be had: model_score is NaN, so no rule on it fires.
func (p *Policy) Missing(ev *pipeline.Eval) {
	if !p.Shadow {
		ev.Features[p.scoreIdx] = math.NaN()
	}
}
