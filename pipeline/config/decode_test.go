package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// env returns an environment lookup over vars, for Parse and Lint.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// noEnv is an empty environment.
var noEnv = env(nil)

// issueStrings parses yaml and returns its issues as printed.
func issueStrings(t *testing.T, yaml string, vars map[string]string) []string {
	t.Helper()
	_, err := Parse("t.yaml", []byte(yaml), env(vars))
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse error %T %v, want *Error", err, err)
	}
	out := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		if is.File != "t.yaml" || is.Msg == "" {
			t.Errorf("issue %+v: want File t.yaml and a message", is)
		}
		out[i] = is.String()
	}
	return out
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown top-level field with suggestion", "engin:\n  partitions: 1\n",
			[]string{`t.yaml: line 1: field engin not recognized (did you mean "engine"?)`}},
		{"unknown nested field, only one field to suggest", "output:\n  features: true\n  decisions:\n    yourl: x\n",
			[]string{`t.yaml: line 4: field yourl not recognized in output.decisions (did you mean "path"?)`}},
		{"unknown field with a typo", "engine:\n  queue_batchs: 2\n",
			[]string{`t.yaml: line 2: field queue_batchs not recognized in engine (did you mean "queue_batches"?)`}},
		{"unknown field with a prefix", "scoring:\n  velocity:\n    night_start: 1\n",
			[]string{`t.yaml: line 3: field night_start not recognized in scoring.velocity (did you mean "night_start_hour"?)`}},
		{"unknown field far from any", "engine:\n  zzz: 1\n",
			[]string{`t.yaml: line 2: field zzz not recognized in engine (valid fields: partitions, batch_size, queue_batches, max_out_of_orderness, allowed_lateness, idle_timeout, dedup_ttl)`}},
		{"wrong case", "Engine: {}\n",
			[]string{`t.yaml: line 1: field Engine not recognized (did you mean "engine"?)`}},
		{"integer expected", "engine:\n  partitions: four\n",
			[]string{`t.yaml: line 2: engine.partitions: expected an integer, got "four"`}},
		{"integer, not a float", "engine:\n  batch_size: 1.5\n",
			[]string{`t.yaml: line 2: engine.batch_size: expected an integer, got "1.5"`}},
		{"integer out of range", "engine:\n  batch_size: 99999999999999999999\n",
			[]string{`t.yaml: line 2: engine.batch_size: expected an integer, got "99999999999999999999"`}},
		{"boolean expected", "output:\n  features: yes\n",
			[]string{`t.yaml: line 2: output.features: expected true or false, got "yes"`}},
		{"duration expected", "windows:\n  ttl: 2 days\n",
			[]string{`t.yaml: line 2: windows.ttl: expected a duration such as 500ms, 1h30m, 7d or 2w, got "2 days"`}},
		{"duration in a list", "windows:\n  durations: [1h, 1 day]\n",
			[]string{`t.yaml: line 2: windows.durations[1]: expected a duration such as 500ms, 1h30m, 7d or 2w, got "1 day"`}},
		{"type error at the alias, not the anchor", "x: &l [1h]\nwindows:\n  ttl: *l\n",
			[]string{
				`t.yaml: line 1: field x not recognized (valid fields: engine, windows, source, scoring, ledger, output, log, admin, checkpoint, scale)`,
				`t.yaml: line 3: windows.ttl: expected a duration such as 500ms, 1h30m, 7d or 2w, got a list`,
			}},
		{"list expected", "windows:\n  durations: 1h\n",
			[]string{`t.yaml: line 2: windows.durations: expected a list, got "1h"`}},
		{"mapping expected", "engine: [1, 2]\n",
			[]string{`t.yaml: line 1: engine: expected a mapping of fields, got a list`}},
		{"string expected", "source:\n  path: {a: b}\n",
			[]string{`t.yaml: line 2: source.path: expected a string, got a mapping`}},
		{"top level not a mapping", "hello\n",
			[]string{`t.yaml: line 1: top level: expected a mapping of fields, got "hello"`}},
		{"decimal with exponent", "ledger:\n  default_limit: 1e4\n",
			[]string{`t.yaml: line 2: ledger.default_limit: expected a decimal number such as 10000.00, got "1e4" (exponents are not allowed; write the amount in full)`}},
		{"decimal with 7 fraction digits", "ledger:\n  default_limit: 0.1000001\n",
			[]string{`t.yaml: line 2: ledger.default_limit: expected a decimal number such as 10000.00, got "0.1000001" (more than 6 fraction digits)`}},
		{"enum", "ledger:\n  driver: sqllite\n",
			[]string{`t.yaml: line 2: ledger.driver: "sqllite" is not one of sqlite, postgres, none`}},
		{"enum is case-sensitive", "source: {type: FILE}\n",
			[]string{`t.yaml: line 1: source.type: "FILE" is not one of file, stdin, nats, kinesis, http, s3`}},
		{"enum refuses empty", "source:\n  type: \"\"\n",
			[]string{`t.yaml: line 2: source.type: "" is not one of file, stdin, nats, kinesis, http, s3`}},
		{"duplicate key", "ledger:\n  batch_size: 10\n  path: a.db\n  batch_size: 20\n",
			[]string{`t.yaml: line 4: ledger.batch_size: duplicate key (first set on line 2)`}},
		{"duplicate block", "engine: {}\nledger: {}\nengine: {}\n",
			[]string{`t.yaml: line 3: engine: duplicate key (first set on line 1)`}},
		{"unsupported tag", "source:\n  path: !!binary aGVsbG8=\n",
			[]string{`t.yaml: line 2: source.path: unsupported YAML tag !!binary`}},
		{"custom tag", "source:\n  path: !secret x\n",
			[]string{`t.yaml: line 2: source.path: unsupported YAML tag !secret`}},
		{"key not a name", "? [a, b]\n: 1\n",
			[]string{`t.yaml: line 1: top level: a key must be a plain name, got a list`}},
		{"syntax error: unclosed list", "engine:\n  partitions: [1\n",
			[]string{`t.yaml: line 2: invalid YAML: did not find expected ',' or ']'`}},
		{"syntax error: bad indentation", "engine:\n  partitions: 4\n batch_size: 3\n",
			[]string{`t.yaml: line 3: invalid YAML: did not find expected key`}},
		{"syntax error on the first line", "engine: partitions: 4\n",
			[]string{`t.yaml: line 1: invalid YAML: mapping values are not allowed in this context`}},
		{"not UTF-8", "engine:\n  partitions: \xff\n",
			[]string{`t.yaml: line 2: invalid YAML: the file is not UTF-8 text (a config file must be UTF-8)`}},
		{"control character", "source:\n  path: a\x01b\n",
			[]string{`t.yaml: line 2: invalid YAML: control character U+0001 is not allowed`}},
		{"tab indentation", "engine:\n\tpartitions: 1\n",
			[]string{`t.yaml: line 2: invalid YAML: found character that cannot start any token`}},
		{"unknown anchor", "engine: *nope\n",
			[]string{`t.yaml: invalid YAML: unknown anchor 'nope' referenced`}},
		{"two documents", "engine: {}\n---\nledger: {}\n",
			[]string{`t.yaml: line 2: a second YAML document: a config file holds one (remove the --- line)`}},
		{"bad merge", "engine:\n  <<: 5\n",
			[]string{`t.yaml: line 2: engine: a merge key (<<) takes a mapping or a list of mappings, got "5"`}},
		{"self-referencing merge", "engine: &a\n  <<: *a\n",
			[]string{`t.yaml: line 2: engine: merge keys nested too deeply`}},
		{"validation points at the line", "engine:\n  partitions: 2\n  batch_size: 0\n",
			[]string{`t.yaml: line 3: engine.batch_size: must be 1 or more, got 0`}},
		{"empty list overrides the default, then fails validation", "windows:\n  durations: []\n",
			[]string{`t.yaml: line 2: windows.durations: must list at least one window length, such as [1h, 1d, 7d, 30d]`}},
		{"empty path overrides the default, then fails validation", "ledger:\n  path: \"\"\n",
			[]string{`t.yaml: line 2: ledger.path: must name the SQLite database file when ledger.driver is sqlite`}},
		{"all issues collected, in file order",
			"engine:\n  partitions: four\n  queue_batchs: 2\nledger:\n  driver: sqllite\n  max_delay: 0s\n  path: ${DB_PATH}\n",
			[]string{
				`t.yaml: line 2: engine.partitions: expected an integer, got "four"`,
				`t.yaml: line 3: field queue_batchs not recognized in engine (did you mean "queue_batches"?)`,
				`t.yaml: line 5: ledger.driver: "sqllite" is not one of sqlite, postgres, none`,
				`t.yaml: line 6: ledger.max_delay: must be longer than 0, got 0s`,
				`t.yaml: line 7: environment variable DB_PATH is not set and has no default (write ${DB_PATH:value} to give one)`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := issueStrings(t, tt.yaml, nil)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("issues:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestIssueFields(t *testing.T) {
	_, err := Parse("prod.yaml", []byte("output:\n  decisions:\n      yourl: x\n"), noEnv)
	var e *Error
	if !errors.As(err, &e) || len(e.Issues) != 1 {
		t.Fatalf("Parse: %v", err)
	}
	want := Issue{File: "prod.yaml", Line: 3, Column: 7, Path: "output.decisions.yourl",
		Msg: `field yourl not recognized in output.decisions (did you mean "path"?)`}
	if e.Issues[0] != want {
		t.Errorf("issue %+v, want %+v", e.Issues[0], want)
	}
	if got := err.Error(); got != `prod.yaml: line 3: field yourl not recognized in output.decisions (did you mean "path"?)` {
		t.Errorf("Error() = %q", got)
	}
}

// parseOK parses yaml that must be valid.
func parseOK(t *testing.T, yaml string, vars map[string]string) *Config {
	t.Helper()
	c, err := Parse("t.yaml", []byte(yaml), env(vars))
	if err != nil {
		t.Fatalf("Parse(%q): %v", yaml, err)
	}
	return c
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(c *Config) bool
	}{
		{"empty file keeps every default", "", func(c *Config) bool { return sameConfig(c, Default()) }},
		{"comments only", "# nothing\n", func(c *Config) bool { return sameConfig(c, Default()) }},
		{"explicit null document", "~\n", func(c *Config) bool { return sameConfig(c, Default()) }},
		{"null block keeps its defaults", "engine:\n", func(c *Config) bool { return sameConfig(c, Default()) }},
		{"null value keeps the default", "ledger:\n  path:\n  batch_size: ~\n", func(c *Config) bool {
			return c.Ledger.Path == "fraudpipe-ledger.db" && c.Ledger.BatchSize == 4096
		}},
		{"empty string overrides the default", "ledger:\n  driver: none\n  path: \"\"\n", func(c *Config) bool {
			return c.Ledger.Path == "" && c.Ledger.Driver == "none"
		}},
		{"single-quoted empty string too", "ledger: {driver: none, path: ''}\n", func(c *Config) bool {
			return c.Ledger.Path == ""
		}},
		{"absent fields keep defaults beside set ones", "engine:\n  partitions: 3\n", func(c *Config) bool {
			want := Default()
			want.Engine.Partitions = 3
			return sameConfig(c, want)
		}},
		{"integers: leading zero is decimal", "scoring: {velocity: {night_start_hour: 010}}\n", func(c *Config) bool {
			return c.Scoring.Velocity.NightStart == 10
		}},
		{"integers: hex and underscores", "engine: {partitions: 0x10, batch_size: 1_000}\n", func(c *Config) bool {
			return c.Engine.Partitions == 16 && c.Engine.BatchSize == 1000
		}},
		{"quoted integer", "engine: {partitions: \"4\"}\n", func(c *Config) bool { return c.Engine.Partitions == 4 }},
		{"booleans", "output: {features: True}\nscoring: {velocity: {enabled: false}}\n", func(c *Config) bool {
			return c.Output.Features && !c.Scoring.Velocity.Enabled
		}},
		{"durations with days and weeks", "windows: {durations: [30m, 1d, 1w, 4w], ttl: 28d}\nengine: {dedup_ttl: 1d12h}\n",
			func(c *Config) bool {
				d := c.Windows.Durations
				return len(d) == 4 && d[0] == Duration(30*time.Minute) && d[1] == Duration(day) &&
					d[2] == Duration(week) && d[3] == Duration(4*week) && c.Windows.TTL == Duration(28*day) &&
					c.Engine.DedupTTL == Duration(36*time.Hour)
			}},
		{"decimal number literal is kept as text", "ledger:\n  default_limit: 10000.00\n", func(c *Config) bool {
			m, err := c.Ledger.DefaultLimit.Minor(2)
			return c.Ledger.DefaultLimit.String() == "10000.00" && m == 1000000 && err == nil
		}},
		{"decimal beyond float64 precision", "ledger:\n  default_limit: 90071992547409.93\n", func(c *Config) bool {
			m, err := c.Ledger.DefaultLimit.Minor(2)
			return m == 9007199254740993 && err == nil
		}},
		{"decimal as a string", "ledger:\n  default_limit: \"0.10\"\n", func(c *Config) bool {
			m, err := c.Ledger.DefaultLimit.Minor(2)
			return m == 10 && err == nil
		}},
		{"flow style", "engine: {partitions: 2, batch_size: 64}\n", func(c *Config) bool {
			return c.Engine.Partitions == 2 && c.Engine.BatchSize == 64
		}},
		{"anchors and aliases", "windows:\n  ttl: &long 60d\nengine:\n  dedup_ttl: *long\n", func(c *Config) bool {
			return c.Engine.DedupTTL == Duration(60*day)
		}},
		{"merge keys: own keys win", "output:\n  decisions: &f {path: a}\n  dead_letters:\n    <<: *f\n    path: b\n",
			func(c *Config) bool { return c.Output.Decisions.Path == "a" && c.Output.DeadLetters.Path == "b" }},
		{"merge keys: a list, earlier wins", "source: &s {path: s}\noutput:\n  decisions: &d {path: d}\n  dead_letters: {<<: [*d, *s]}\n",
			func(c *Config) bool { return c.Output.DeadLetters.Path == "d" && c.Source.Path == "s" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := parseOK(t, tt.yaml, nil); !tt.check(c) {
				t.Errorf("unexpected config: %+v", *c)
			}
		})
	}
}

func TestExpansionBombs(t *testing.T) {
	list := func(ref string, n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(ref+", ", n), ", ") + "]"
	}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d: 1", i)
	}
	tests := map[string]string{
		"aliases": "a: &a " + list("x", 1000) + "\nb: &b " + list("*a", 1000) + "\nwindows:\n  durations: " + list("*b", 1000) + "\n",
		"merge keys": "a: &a {" + strings.Join(keys, ", ") + "}\n" +
			"b: &b {<<: " + list("*a", 1000) + "}\n" +
			"engine: {<<: " + list("*b", 1000) + "}\n",
	}
	for name, yaml := range tests {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse("bomb.yaml", []byte(yaml), noEnv)
			if err == nil {
				t.Fatal("Parse: no error")
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Parse took %v", d)
			}
		})
	}
}
