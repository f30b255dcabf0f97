package config

import "strconv"

// Model configures the tree-model scorer (scorers/model): which XGBoost model scores the
// transactions and what its score decides.
type Model struct {
	Enabled          bool    `yaml:"enabled" default:"true" doc:"Score every transaction with the model, after the velocity features and before the rules (which can read features.model_score)."`
	Path             string  `yaml:"path" doc:"An XGBoost model in XGBoost's JSON format (booster.save_model(\"model.json\")); relative paths are relative to this config file. Empty: the bundled model (models/default/model.json, built into the binary)."`
	ReviewThreshold  Decimal `yaml:"review_threshold" default:"0.50" doc:"A score at or above this fraud probability sends the transaction to review, with reason model:score>=<threshold>."`
	DeclineThreshold Decimal `yaml:"decline_threshold" default:"0.90" doc:"A score at or above this fraud probability declines the transaction, with reason model:score>=<threshold>."`
	ExplainTop       int     `yaml:"explain_top" default:"3" doc:"How many of the features that pushed the score up most are added to a review or decline's reasons, as model:<feature>; 0 for none."`
	Shadow           bool    `yaml:"shadow" default:"false" doc:"A challenger: scored and recorded (the decision's score, its model version prefixed with shadow:) but never acted on, not even by rules."`
}

// model adds the issues of scoring.model.
func (v *validator) model(m Model) {
	rv, rok := v.probability("scoring.model.review_threshold", m.ReviewThreshold)
	dv, dok := v.probability("scoring.model.decline_threshold", m.DeclineThreshold)
	if rok && dok && rv > dv {
		v.add("scoring.model.review_threshold", "%s is above decline_threshold %s: a score would decline before it is reviewed",
			m.ReviewThreshold, m.DeclineThreshold)
	}
	if m.ExplainTop < 0 {
		v.add("scoring.model.explain_top", "must be 0 or more, got %d", m.ExplainTop)
	}
}

// probability checks that d is a number from 0 to 1 and returns it.
func (v *validator) probability(path string, d Decimal) (float64, bool) {
	f, err := strconv.ParseFloat(d.String(), 64)
	if err != nil || f < 0 || f > 1 {
		v.add(path, "must be a probability from 0 to 1, got %s", d)
		return 0, false
	}
	return f, true
}
