package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with the file testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the generated text (run go test -update and review the diff):\n%s", path, got)
	}
}

func TestExampleRoundTrip(t *testing.T) {
	c, err := Parse("example.yaml", []byte(Example()), noEnv)
	if err != nil {
		t.Fatalf("Example() does not load: %v\n%s", err, Example())
	}
	if !sameConfig(c, Default()) {
		t.Errorf("Example() loads as %+v\nwant Default() %+v", *c, *Default())
	}
	// Every field is written out, so the lines of all of them are known.
	var paths []string
	allPaths(reflect.TypeFor[Config](), "", &paths)
	for _, p := range paths {
		if _, ok := c.src.lines[p]; !ok {
			t.Errorf("Example() lacks %s", p)
		}
	}
}

func TestExampleGolden(t *testing.T) { golden(t, "example.yaml", Example()) }

func TestReferenceGolden(t *testing.T) { golden(t, "reference.md", Reference()) }

func TestReferenceCoversEveryField(t *testing.T) {
	ref := Reference()
	var paths []string
	allPaths(reflect.TypeFor[Config](), "", &paths)
	for _, p := range paths {
		parent, name := "", p
		if i := strings.LastIndex(p, "."); i >= 0 {
			parent, name = p[:i], p[i+1:]
		}
		if parent == "" {
			parent = "Top level"
		}
		section := "\n## " + parent + "\n"
		i := strings.Index(ref, section)
		if i < 0 {
			t.Errorf("no section %q for %s", strings.TrimSpace(section), p)
			continue
		}
		body := ref[i+len(section):]
		if j := strings.Index(body, "\n## "); j >= 0 {
			body = body[:j]
		}
		if !strings.Contains(body, "`"+name+"`") {
			t.Errorf("section %s does not list %s", parent, name)
		}
	}
	for _, want := range []string{"| `type` | string | `file` | `file`, `stdin`, `nats`, `kinesis`, `http`, `s3` |", "| `durations` | list of durations | `[1h, 1d, 7d, 30d]` |"} {
		if !strings.Contains(ref, want) {
			t.Errorf("Reference() lacks %q", want)
		}
	}
}

// allPaths lists the dotted paths of every field under type t.
func allPaths(t reflect.Type, path string, out *[]string) {
	for _, f := range fieldsOf(t) {
		p := joinPath(path, f.name)
		*out = append(*out, p)
		if ft := t.Field(f.index).Type; ft.Kind() == reflect.Struct && isBlock(ft) {
			allPaths(ft, p, out)
		}
	}
}

// TestRenderRoundTrip checks that any valid config, written as YAML, loads back to itself:
// the property behind Example, with values that need quoting and escaping.
func TestRenderRoundTrip(t *testing.T) {
	c := Default()
	c.Engine.Partitions = 8
	c.Engine.DedupTTL = Duration(36*time.Hour + 1500*time.Millisecond)
	c.Windows.Durations = []Duration{Duration(time.Minute), Duration(90 * time.Minute), Duration(week)}
	c.Windows.TTL = Duration(2 * week)
	c.Source.Type, c.Source.Path = "stdin", "- weird: [path], ${HOME} #x"
	c.Scoring.Rules.File = "null"
	c.Scoring.Velocity = Velocity{Enabled: false, NightStart: 23, NightEnd: 4}
	c.Ledger.Driver, c.Ledger.Path, c.Ledger.DefaultLimit, c.Ledger.BatchSize, c.Ledger.MaxDelay = "none", "", mustDecimal(t, "0.0001"), 1, 1
	c.Output.Decisions, c.Output.DeadLetters, c.Output.Features = FileOutput{Path: "-"}, FileOutput{Path: "true"}, true
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	text := render(c)
	back, err := Parse("r.yaml", []byte(text), noEnv)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !sameConfig(back, c) {
		t.Errorf("round trip:\n%s\ngot  %+v\nwant %+v", text, *back, *c)
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{"", `""`},
		{"plain", "plain"},
		{"true", `"true"`},
		{"123", `"123"`},
		{"-", `"-"`},
		{"a: b", `"a: b"`},
		{"${X}", "$${X}"},
		{"line\nbreak", `"line\nbreak"`},
		{[]string{"a,b", "c"}, `["a,b", c]`},
		{[]Duration{}, "[]"},
		{map[string]int{"b": 2, "a": 1}, "{a: 1, b: 2}"},
		{1.5, "1.5"},
		{uint8(7), "7"},
	}
	for _, tt := range tests {
		if got := formatValue(reflect.ValueOf(tt.v), false); got != tt.want {
			t.Errorf("formatValue(%#v) = %s, want %s", tt.v, got, tt.want)
		}
	}
}
