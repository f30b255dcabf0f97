package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/models"
	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/scorers/lightgbm"
	"github.com/fraudpipe/fraudpipe/scorers/model"
	"github.com/fraudpipe/fraudpipe/scorers/remote"
)

// appendModel adds the tree-model scorer that scoring.model asks for to scorers. It must run
// after the feature scorers, whose features the model reads by name, and before the rules,
// which can read its score as features.model_score.
func appendModel(cfg *config.Config, schema *pipeline.FeatureSchema, scorers []pipeline.ScorerFactory) ([]pipeline.ScorerFactory, error) {
	mc := cfg.Scoring.Model
	if !mc.Enabled {
		return appendRemote(cfg, schema, scorers)
	}
	if mc.Format == "lightgbm" {
		return appendLightGBM(cfg, schema, scorers)
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
	return appendRemote(cfg, schema, append(scorers, f))
}

// thresholds parses a review and a decline threshold of a config block.
func thresholds(block string, review, decline config.Decimal) (model.Threshold, model.Threshold, error) {
	r, err := model.ParseThreshold(review.String())
	if err != nil {
		return r, r, fmt.Errorf("%s.review_threshold: %w", block, err)
	}
	d, err := model.ParseThreshold(decline.String())
	if err != nil {
		return r, d, fmt.Errorf("%s.decline_threshold: %w", block, err)
	}
	return r, d, nil
}

// appendLightGBM adds the LightGBM model scorer of scoring.model (format lightgbm).
func appendLightGBM(cfg *config.Config, schema *pipeline.FeatureSchema, scorers []pipeline.ScorerFactory) ([]pipeline.ScorerFactory, error) {
	mc := cfg.Scoring.Model
	if mc.Path == "" {
		return nil, fmt.Errorf("scoring.model.path: format lightgbm needs a model file (the bundled model is XGBoost)")
	}
	path := cfg.Resolve(mc.Path)
	m, err := lightgbm.Load(path)
	if err != nil {
		return nil, fmt.Errorf("scoring.model.path %s: %w", path, err)
	}
	review, decline, err := thresholds("scoring.model", mc.ReviewThreshold, mc.DeclineThreshold)
	if err != nil {
		return nil, err
	}
	f, err := lightgbm.New(lightgbm.Config{Model: m, Review: review, Decline: decline, Shadow: mc.Shadow}, schema)
	if err != nil {
		return nil, fmt.Errorf("scoring.model.path %s: %w", path, err)
	}
	return appendRemote(cfg, schema, append(scorers, f))
}

// appendRemote adds the remote scorer of scoring.remote, when enabled.
func appendRemote(cfg *config.Config, schema *pipeline.FeatureSchema, scorers []pipeline.ScorerFactory) ([]pipeline.ScorerFactory, error) {
	rc := cfg.Scoring.Remote
	if !rc.Enabled {
		return scorers, nil
	}
	review, decline, err := thresholds("scoring.remote", rc.ReviewThreshold, rc.DeclineThreshold)
	if err != nil {
		return nil, err
	}
	fallback, err := remote.ParseFallback(rc.Fallback)
	if err != nil {
		return nil, fmt.Errorf("scoring.remote.fallback: %w", err)
	}
	var caller remote.Caller
	switch rc.Kind {
	case "sagemaker":
		sm := rc.SageMaker
		caller, err = remote.NewSageMaker(context.Background(), remote.SageMakerOptions{
			EndpointName: sm.EndpointName, ContentType: sm.ContentType, TargetVariant: sm.TargetVariant,
			Region: sm.Region, Endpoint: sm.Endpoint, AccessKeyID: sm.AccessKeyID,
			SecretAccessKey: sm.SecretAccessKey.Reveal(), SessionToken: sm.SessionToken.Reveal(),
		})
	default:
		headers := map[string]string{}
		for _, h := range rc.HTTP.Headers {
			name, value, _ := strings.Cut(h, ":")
			headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
		}
		caller, err = remote.NewHTTP(remote.HTTPOptions{URL: rc.HTTP.URL, Headers: headers, BearerToken: rc.HTTP.BearerToken.Reveal()})
	}
	if err != nil {
		return nil, fmt.Errorf("scoring.remote: %w", err)
	}
	f, err := remote.New(remote.Config{
		Name: rc.Name, Caller: caller, Features: rc.Features, Review: review, Decline: decline, Shadow: rc.Shadow,
		Timeout: time.Duration(rc.Timeout), Fallback: fallback,
		Breaker: remote.BreakerConfig{Failures: rc.Breaker.Failures, FailureRatio: rc.Breaker.FailureRatio,
			Window: time.Duration(rc.Breaker.Window), MinCalls: rc.Breaker.MinCalls, OpenFor: time.Duration(rc.Breaker.OpenFor)},
	}, schema)
	if err != nil {
		return nil, fmt.Errorf("scoring.remote: %w", err)
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
