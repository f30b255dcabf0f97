package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	tests := []struct {
		file string
		vars map[string]string
		want []string
	}{
		{"testdata/good.yaml", nil, nil},
		{"testdata/minimal.yaml", nil, nil},
		{"testdata/anchors.yaml", nil, nil},
		{"testdata/bad_syntax.yaml", nil, []string{
			"testdata/bad_syntax.yaml: line 3: invalid YAML: did not find expected key",
		}},
		{"testdata/bad_many.yaml", nil, []string{
			`testdata/bad_many.yaml: line 2: engine.partitions: expected an integer, got "four"`,
			`testdata/bad_many.yaml: line 3: engine.batch_size: must be 1 or more, got 0`,
			`testdata/bad_many.yaml: line 4: field queue_batchs not recognized in engine (did you mean "queue_batches"?)`,
			`testdata/bad_many.yaml: line 6: windows.durations[1]: 1h is not longer than the window before it (1d): list windows shortest first, each once`,
			`testdata/bad_many.yaml: line 7: windows.ttl: expected a duration such as 500ms, 1h30m, 7d or 2w, got "2 days"`,
			`testdata/bad_many.yaml: line 9: source.type: "kafka" is not one of file, stdin, nats, kinesis, http, s3`,
			`testdata/bad_many.yaml: line 11: ledger.driver: "sqllite" is not one of sqlite, postgres, none`,
			`testdata/bad_many.yaml: line 12: environment variable PG_PASSWORD is not set and has no default (write ${PG_PASSWORD:value} to give one)`,
			`testdata/bad_many.yaml: line 13: ledger.default_limit: expected a decimal number such as 10000.00, got "1e4" (exponents are not allowed; write the amount in full)`,
			`testdata/bad_many.yaml: line 15: ledger.batch_size: duplicate key (first set on line 14)`,
			`testdata/bad_many.yaml: line 18: field yourl not recognized in output.decisions (did you mean "path"?)`,
			`testdata/bad_many.yaml: line 19: output.features: expected true or false, got "yes"`,
			`testdata/bad_many.yaml: line 22: scoring.velocity.night_start_hour: must be an hour from 0 to 23, got 24`,
		}},
		{"testdata/bad_many.yaml", map[string]string{"PG_PASSWORD": "x"}, nil}, // checked below: one issue fewer
		{"testdata/missing.yaml", nil, []string{
			"testdata/missing.yaml: cannot read the file: no such file or directory",
		}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			issues := Lint(tt.file, env(tt.vars))
			if tt.vars != nil {
				for _, is := range issues {
					if strings.Contains(is.Msg, "PG_PASSWORD") {
						t.Errorf("PG_PASSWORD is set, yet: %s", is)
					}
				}
				if len(issues) != 12 {
					t.Errorf("%d issues, want 12", len(issues))
				}
				return
			}
			got := make([]string, len(issues))
			for i, is := range issues {
				got[i] = is.String()
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Lint(%s):\n%s\nwant:\n%s", tt.file, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestIssueString(t *testing.T) {
	tests := []struct {
		is   Issue
		want string
	}{
		{Issue{File: "a.yaml", Line: 3, Msg: "m"}, "a.yaml: line 3: m"},
		{Issue{File: "a.yaml", Msg: "m"}, "a.yaml: m"},
		{Issue{Line: 3, Msg: "m"}, "line 3: m"},
		{Issue{Msg: "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.is.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.is, got, tt.want)
		}
	}
	e := &Error{Issues: []Issue{{File: "a", Line: 1, Msg: "x"}, {File: "a", Line: 2, Msg: "y"}}}
	if got := e.Error(); got != "a: line 1: x\na: line 2: y" {
		t.Errorf("Error() = %q", got)
	}
}
