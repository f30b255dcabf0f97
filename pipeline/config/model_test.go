package config

import (
	"strings"
	"testing"
)

func TestModelDefaults(t *testing.T) {
	m := Default().Scoring.Model
	if !m.Enabled || m.Path != "" || m.ReviewThreshold.String() != "0.50" || m.DeclineThreshold.String() != "0.90" ||
		m.ExplainTop != 3 || m.Shadow {
		t.Errorf("defaults %+v", m)
	}
	if err := Default().Validate(); err != nil {
		t.Error(err)
	}
}

func TestValidateModel(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"scoring:\n  model:\n    review_threshold: 0.95\n", "m.yaml: line 3: scoring.model.review_threshold: 0.95 is above decline_threshold 0.90"},
		{"scoring:\n  model:\n    decline_threshold: -0.1\n", "line 3: scoring.model.decline_threshold: must be a probability from 0 to 1, got -0.1"},
		{"scoring:\n  model:\n    explain_top: -1\n", "line 3: scoring.model.explain_top: must be 0 or more, got -1"},
		{"scoring:\n  model:\n    review_threshold: 0.2\n    decline_threshold: \"1\"\n    path: m.json\n    shadow: true\n", ""},
	} {
		_, err := Parse("m.yaml", []byte(c.yaml), noEnv) // Parse validates
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.yaml, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}
