package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, that every refusal is a *Error whose
// issues name the file, and that every accepted config is valid and writes out (as Example
// does) to YAML that loads back to the same values. Seeds: the YAML files in testdata/ and
// testdata/fuzz/FuzzParse/.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	vars := env(map[string]string{"SET": "5", "EMPTY": "", "TEXT": "a: [b]"})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data, vars)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Issues) == 0 {
				t.Fatalf("Parse error %T %v: want a *Error with issues", err, err)
			}
			for _, is := range e.Issues {
				if is.File != "f.yaml" || is.Msg == "" || is.Line < 0 || is.Column < 0 {
					t.Fatalf("malformed issue %+v", is)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate refuses: %v", err)
		}
		text := render(c)
		back, err := Parse("r.yaml", []byte(text), noEnv)
		if err != nil {
			t.Fatalf("written config does not load: %v\n%s", err, text)
		}
		if !sameConfig(back, c) {
			t.Fatalf("written config loads differently:\n%s\ngot  %+v\nwant %+v", text, *back, *c)
		}
	})
}
