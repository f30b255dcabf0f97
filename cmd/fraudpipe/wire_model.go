package main

import (
	"fmt"

	"github.com/fraudpipe/fraudpipe/models"
	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/scorers/model"
)

// appendModel adds the tree-model scorer that scoring.model asks for to scorers. It must run
// after the feature scorers, whose features the model reads by name, and before the rules,
// which can read its score as features.model_score.
func appendModel(cfg *config.Config, schema *pipeline.FeatureSchema, scorers []pipeline.ScorerFactory) ([]pipeline.ScorerFactory, error) {
	mc := cfg.Scoring.Model
	if !mc.Enabled {
		return scorers, nil
	}
	m, name, err := loadModel(cfg)
	if err != nil {
		return nil, err
	}
	review, err := model.ParseThreshold(mc.ReviewThreshold.String())
	if err != nil {
		return nil, fmt.Errorf("scoring.model.review_threshold: %w", err)
	}
	decline, err := model.ParseThreshold(mc.DeclineThreshold.String())
	if err != nil {
		return nil, fmt.Errorf("scoring.model.decline_threshold: %w", err)
	}
	f, err := model.New(model.Config{
		Model: m, Review: review, Decline: decline, ExplainTop: mc.ExplainTop, Shadow: mc.Shadow,
	}, schema)
	if err != nil {
		if mc.Path == "" {
			return nil, fmt.Errorf("scoring.model: %w; the bundled model reads the default velocity features: "+
				"set scoring.model.path to a model trained on this config's features, or scoring.model.enabled: false", err)
		}
		return nil, fmt.Errorf("scoring.model.path %s: %w", name, err)
	}
	return append(scorers, f), nil
}

// loadModel reads the configured model, or the bundled one when scoring.model.path is empty.
func loadModel(cfg *config.Config) (*model.Model, string, error) {
	p := cfg.Scoring.Model.Path
	if p == "" {
		m, err := model.Parse(models.Default)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", models.DefaultName, err)
		}
		return m, models.DefaultName, nil
	}
	path := cfg.Resolve(p)
	m, err := model.Load(path)
	return m, path, err
}
