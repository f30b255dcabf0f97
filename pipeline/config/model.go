package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Model configures the tree-model scorer (scorers/model): which XGBoost model scores the
// transactions and what its score decides.
type Model struct {
	Enabled          bool    `yaml:"enabled" default:"true" doc:"Score every transaction with the model, after the velocity features and before the rules (which can read features.model_score)."`
	Format           string  `yaml:"format" default:"xgboost" enum:"xgboost,lightgbm" doc:"The model file's format: xgboost (XGBoost JSON, booster.save_model(\"model.json\")) or lightgbm (LightGBM text, booster.save_model(\"model.txt\"); explain_top does not apply). The bundled model is XGBoost."`
	Path             string  `yaml:"path" doc:"An XGBoost model in XGBoost's JSON format (booster.save_model(\"model.json\")); relative paths are relative to this config file. Empty: the bundled model (models/default/model.json, built into the binary)."`
	ReviewThreshold  Decimal `yaml:"review_threshold" default:"0.50" doc:"A score at or above this fraud probability sends the transaction to review, with reason model:score>=<threshold>."`
	DeclineThreshold Decimal `yaml:"decline_threshold" default:"0.90" doc:"A score at or above this fraud probability declines the transaction, with reason model:score>=<threshold>."`
	ExplainTop       int     `yaml:"explain_top" default:"3" doc:"How many of the features that pushed the score up most are added to a review or decline's reasons, as model:<feature>; 0 for none."`
	Shadow           bool    `yaml:"shadow" default:"false" doc:"A challenger: scored and recorded (the decision's score, its model version prefixed with shadow:) but never acted on, not even by rules."`
}

// Remote is scoring.remote: a model server asked for each transaction's score.
type Remote struct {
	Enabled          bool            `yaml:"enabled" default:"false" doc:"Ask a model server for each transaction's score; it runs where the model runs, before the rules. One call per transaction from each partition: for the decision API or modest streams (docs/scorers.md)."`
	Name             string          `yaml:"name" default:"remote" doc:"Names the scorer in metrics and in the decisions' model field (remote:<name>)."`
	Kind             string          `yaml:"kind" default:"http" enum:"http,sagemaker" doc:"http: JSON over HTTP; sagemaker: SageMaker runtime InvokeEndpoint."`
	Features         []string        `yaml:"features" default:"[]" doc:"Features sent, in order (a text/csv row's order); empty: every feature computed before it, in schema order."`
	ReviewThreshold  Decimal         `yaml:"review_threshold" default:"0.50" doc:"A score at or above it sends to review, reason model:score>=<threshold>."`
	DeclineThreshold Decimal         `yaml:"decline_threshold" default:"0.90" doc:"A score at or above it declines, reason model:score>=<threshold>."`
	Shadow           bool            `yaml:"shadow" default:"false" doc:"A challenger: scored and recorded, never acted on."`
	Timeout          Duration        `yaml:"timeout" default:"50ms" doc:"Bound on each call, connection included."`
	Fallback         string          `yaml:"fallback" default:"fail_open" enum:"fail_open,fail_closed" doc:"Without a score (error, timeout, breaker open): fail_open decides without the model (tag remote:unavailable); fail_closed sends to review (remote:unavailable)."`
	Breaker          RemoteBreaker   `yaml:"breaker" doc:"Stops calling a server that keeps failing."`
	HTTP             RemoteHTTP      `yaml:"http" doc:"For kind http."`
	SageMaker        RemoteSageMaker `yaml:"sagemaker" doc:"For kind sagemaker."`
}

// RemoteBreaker is scoring.remote.breaker.
type RemoteBreaker struct {
	Failures     int      `yaml:"failures" default:"5" doc:"Consecutive failed calls that open the breaker."`
	FailureRatio float64  `yaml:"failure_ratio" default:"0" doc:"Also open when this share of the window's calls failed (0: off)."`
	Window       Duration `yaml:"window" default:"10s" doc:"Time over which failure_ratio is measured."`
	MinCalls     int      `yaml:"min_calls" default:"20" doc:"Fewest calls in the window for failure_ratio to count."`
	OpenFor      Duration `yaml:"open_for" default:"5s" doc:"Cool-down before one trial call."`
}

// RemoteHTTP is scoring.remote.http.
type RemoteHTTP struct {
	URL         string   `yaml:"url" doc:"Receives POST {\"id\", \"features\"} per transaction and answers {\"score\": p}."`
	Headers     []string `yaml:"headers" default:"[]" doc:"Headers added to every request, each as \"Name: value\"."`
	BearerToken Secret   `yaml:"bearer_token" doc:"Sent as Authorization: Bearer; write ${VAR}, never the token itself."`
}

// RemoteSageMaker is scoring.remote.sagemaker.
type RemoteSageMaker struct {
	EndpointName    string `yaml:"endpoint_name" doc:"The SageMaker endpoint to invoke."`
	ContentType     string `yaml:"content_type" default:"text/csv" enum:"text/csv,application/json" doc:"text/csv (feature values in order, the XGBoost container's input) or application/json."`
	TargetVariant   string `yaml:"target_variant" doc:"Production variant to send every call to; empty: the endpoint's routing."`
	Region          string `yaml:"region" doc:"AWS region; empty: from the AWS chain."`
	Endpoint        string `yaml:"endpoint" doc:"Service URL override (a VPC endpoint); empty: AWS."`
	AccessKeyID     string `yaml:"access_key_id" doc:"Access key id; empty: the standard AWS chain."`
	SecretAccessKey Secret `yaml:"secret_access_key" doc:"With access_key_id; write ${AWS_SECRET_ACCESS_KEY}."`
	SessionToken    Secret `yaml:"session_token" doc:"Session token of temporary credentials; write ${AWS_SESSION_TOKEN}."`
}

// remote adds the issues of scoring.remote.
func (v *validator) remote(r Remote, model Model) {
	if !r.Enabled {
		return
	}
	if model.Enabled && !model.Shadow && !r.Shadow {
		v.add("scoring.remote.enabled", "scoring.model is enabled too, and a decision has one score: disable one of them or make one a shadow")
	}
	rv, rok := v.probability("scoring.remote.review_threshold", r.ReviewThreshold)
	dv, dok := v.probability("scoring.remote.decline_threshold", r.DeclineThreshold)
	if rok && dok && rv > dv {
		v.add("scoring.remote.review_threshold", "%s is above decline_threshold %s", r.ReviewThreshold, r.DeclineThreshold)
	}
	v.positive("scoring.remote.timeout", r.Timeout)
	if r.Name == "" {
		v.add("scoring.remote.name", "must name the scorer")
	}
	switch r.Kind {
	case "http":
		if !strings.HasPrefix(r.HTTP.URL, "http://") && !strings.HasPrefix(r.HTTP.URL, "https://") {
			v.add("scoring.remote.http.url", "must be an http:// or https:// URL, got %q", r.HTTP.URL)
		}
		for i, h := range r.HTTP.Headers {
			if name, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(name) == "" {
				v.add(fmt.Sprintf("scoring.remote.http.headers[%d]", i), "must be \"Name: value\", got %q", h)
			}
		}
	case "sagemaker":
		if r.SageMaker.EndpointName == "" {
			v.add("scoring.remote.sagemaker.endpoint_name", "must name the SageMaker endpoint")
		}
	}
	if r.Breaker.Failures < 1 {
		v.add("scoring.remote.breaker.failures", "must be 1 or more, got %d", r.Breaker.Failures)
	}
	if r.Breaker.FailureRatio < 0 || r.Breaker.FailureRatio > 1 {
		v.add("scoring.remote.breaker.failure_ratio", "must be from 0 to 1, got %g", r.Breaker.FailureRatio)
	}
	v.positive("scoring.remote.breaker.open_for", r.Breaker.OpenFor)
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
