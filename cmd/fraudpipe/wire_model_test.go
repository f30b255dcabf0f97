package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/models"
	"github.com/fraudpipe/fraudpipe/scorers/model"
)

// stepModel is an XGBoost JSON model with one tree: margin -3 below an amount of 100, +3 at
// or above (probabilities 0.047 and 0.953).
const stepModel = `{"learner":{"feature_names":["amount","card_count_1h"],
 "learner_model_param":{"base_score":"5E-1","num_class":"0","num_target":"1"},
 "objective":{"name":"binary:logistic"},
 "gradient_booster":{"name":"gbtree","model":{"tree_info":[0],"trees":[
  {"split_indices":[0,0,0],"split_conditions":[100,-3,3],"left_children":[1,-1,-1],
   "right_children":[2,-1,-1],"default_left":[0,0,0],"base_weights":[0,-3,3],"sum_hessian":[2,1,1]}]}}}}`

const oneTx = `{"id":"t1","ts":"2018-04-02T10:00:00Z","card_id":"c1","account_id":"a1","merchant_id":"m1","amount":"150.00","currency":"EUR"}
{"id":"t2","ts":"2018-04-02T11:00:00Z","card_id":"c2","account_id":"a2","merchant_id":"m1","amount":"20.00","currency":"EUR"}
`

// replayWith writes config (and the step model and rules beside it) and replays oneTx,
// returning the decisions' lines, or the error output when replay fails.
func replayWith(t *testing.T, config string) ([]string, string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "models"), 0o755)
	os.WriteFile(filepath.Join(dir, "models", "step.json"), []byte(stepModel), 0o644)
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(`rules:
  - id: model_and_amount
    description: the model is sure and the amount is high
    expr: features.model_score >= 0.95 && tx.amount >= 100.0
    action: decline
`), 0o644)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("ledger:\n  driver: none\n"+config), 0o644)
	input := filepath.Join(dir, "in.ndjson")
	os.WriteFile(input, []byte(oneTx), 0o644)
	out := filepath.Join(dir, "d.ndjson")
	code, _, stderr := fraudpipe(t, "replay", "--config", cfg, "--input", input, "--out", out)
	if code != 0 {
		return nil, stderr
	}
	return lines(t, out), ""
}

func TestModelFromConfig(t *testing.T) {
	d, errOut := replayWith(t, `scoring:
  model:
    path: models/step.json
    review_threshold: 0.5
    decline_threshold: 0.950
    explain_top: 1
`)
	if errOut != "" {
		t.Fatal(errOut)
	}
	if !strings.Contains(d[0], `"decision":"decline","score":0.9525741`) ||
		!strings.Contains(d[0], `"reasons":["model:score>=0.950","model:amount"`) ||
		!strings.Contains(d[0], `"model":"sha256:`) {
		t.Errorf("high amount: %s", d[0])
	}
	if !strings.Contains(d[1], `"decision":"approve","score":0.04742587`) || strings.Contains(d[1], "model:") {
		t.Errorf("low amount: %s", d[1])
	}
}

func TestModelShadow(t *testing.T) {
	d, errOut := replayWith(t, "scoring:\n  model:\n    path: models/step.json\n    shadow: true\n")
	if errOut != "" {
		t.Fatal(errOut)
	}
	if !strings.Contains(d[0], `"shadow_model":"sha256:`) || !strings.Contains(d[0], `"shadow_score":0.9525741`) ||
		strings.Contains(d[0], `"score"`) || strings.Contains(d[0], "model:score") {
		t.Errorf("shadow model acted or was not recorded: %s", d[0])
	}
}

// TestChampionAndChallenger scores with the model (the champion) and a remote model server
// in shadow (the challenger): the decision acts on the champion's score and records the
// challenger's beside it.
func TestChampionAndChallenger(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"score":0.42}`)
	}))
	defer srv.Close()
	d, errOut := replayWith(t, "scoring:\n  model:\n    path: models/step.json\n  remote:\n    enabled: true\n    name: challenger\n    shadow: true\n    timeout: 2s\n    http: {url: \""+srv.URL+"\"}\n")
	if errOut != "" {
		t.Fatal(errOut)
	}
	for _, want := range []string{`"score":0.9525741`, `"model":"sha256:`, `"shadow_model":"remote:challenger"`, `"shadow_score":0.42`} {
		if !strings.Contains(d[0], want) {
			t.Errorf("decision lacks %s: %s", want, d[0])
		}
	}
}

func TestRulesReadModelScore(t *testing.T) {
	d, errOut := replayWith(t, "scoring:\n  rules:\n    file: rules.yaml\n  model:\n    path: models/step.json\n    decline_threshold: 0.99\n    review_threshold: 0.99\n")
	if errOut != "" {
		t.Fatal(errOut)
	}
	if !strings.Contains(d[0], `"decision":"decline"`) || !strings.Contains(d[0], "rule:model_and_amount") {
		t.Errorf("the rule on features.model_score did not fire: %s", d[0])
	}
	// A shadow model's score is not a feature: a rule reading it does not compile.
	_, errOut = replayWith(t, "scoring:\n  rules:\n    file: rules.yaml\n  model:\n    path: models/step.json\n    shadow: true\n")
	if !strings.Contains(errOut, "model_score") {
		t.Errorf("rules on a shadow model's score: %q", errOut)
	}
}

func TestModelConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, config, want string }{
		{"thresholds crossed", "scoring:\n  model:\n    review_threshold: 0.9\n    decline_threshold: 0.5\n",
			"line 5: scoring.model.review_threshold: 0.9 is above decline_threshold 0.5"},
		{"threshold out of range", "scoring:\n  model:\n    decline_threshold: 1.5\n", "must be a probability"},
		{"missing file", "scoring:\n  model:\n    path: models/none.json\n", "none.json: no such file"},
		{"unknown feature", "windows:\n  durations: [2h, 1d, 7d, 30d]\nscoring:\n  model:\n    path: models/step.json\n",
			"reads features the engine does not compute: card_count_1h"},
		{"bundled model without velocity", "scoring:\n  velocity:\n    enabled: false\n",
			"the bundled model reads the default velocity features"},
	} {
		_, errOut := replayWith(t, c.config)
		if !strings.Contains(errOut, c.want) {
			t.Errorf("%s: %q, want it to mention %q", c.name, errOut, c.want)
		}
	}
}

func TestModelDisabled(t *testing.T) {
	d, errOut := replayWith(t, "scoring:\n  model:\n    enabled: false\n")
	if errOut != "" {
		t.Fatal(errOut)
	}
	if strings.Contains(d[0], `"score"`) || strings.Contains(d[0], `"model"`) {
		t.Errorf("model disabled, yet: %s", d[0])
	}
}

// TestBundledModelByDefault replays without a model config: the bundled model, built into
// the binary, scores every decision.
func TestBundledModelByDefault(t *testing.T) {
	m, err := model.Parse(models.Default)
	if err != nil {
		t.Fatal(err)
	}
	d, errOut := replayWith(t, "")
	if errOut != "" {
		t.Fatal(errOut)
	}
	for _, l := range d {
		if !strings.Contains(l, `"score":`) || !strings.Contains(l, `"model":"`+m.Version()+`"`) {
			t.Errorf("not scored by the bundled model %s: %s", m.Version(), l)
		}
	}
}
