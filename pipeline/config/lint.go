package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Lint checks the config file at path without using it and returns every problem found:
// YAML syntax, unknown fields, values of the wrong type or outside their enum, environment
// variables that are unset without a default, and failed validation; each with the file
// and line. env looks up environment variables (nil means os.LookupEnv). It returns nil for
// a good file. It backs `fraudpipe lint --config FILE`.
func Lint(path string, env func(string) (string, bool)) []Issue {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			msg = "cannot read the file: " + pe.Err.Error()
		}
		return []Issue{{File: path, Msg: msg}}
	}
	_, issues := parse(path, filepath.Dir(path), data, env)
	return issues
}
