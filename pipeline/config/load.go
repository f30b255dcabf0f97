package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
)

// origin records where a Config came from.
type origin struct {
	file  string         // the name given to Load or Parse
	dir   string         // the folder relative paths are resolved against; "" for the working directory
	lines map[string]pos // field path -> where it was set in the file
}

// Default returns a new Config with every field at its default.
func Default() *Config {
	c := &Config{}
	if err := setDefaults(reflect.ValueOf(c).Elem(), ""); err != nil {
		panic(err) // a bad default tag in config.go; TestDefaultTags catches it
	}
	return c
}

// Load reads, decodes and validates the config file at path, taking ${VAR} values from the
// process environment. A problem in the file gives a *Error listing every issue found, each
// with the file and line; an unreadable file gives the read error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, issues := parse(path, filepath.Dir(path), data, os.LookupEnv)
	if len(issues) > 0 {
		return nil, &Error{Issues: issues}
	}
	c.src.dir = filepath.Dir(path)
	return c, nil
}

// Parse decodes and validates a config from data; name is the file name that issues report.
// env looks up environment variables for ${VAR} (nil means os.LookupEnv). Relative paths in
// a parsed config stay relative to the working directory (see Resolve).
func Parse(name string, data []byte, env func(string) (string, bool)) (*Config, error) {
	c, issues := parse(name, "", data, env)
	if len(issues) > 0 {
		return nil, &Error{Issues: issues}
	}
	return c, nil
}

// parse does the work of Load, Parse and Lint: it returns the config, with defaults where the
// file was silent or wrong, and every issue found, sorted by line. dir is the folder that
// relative ${file:...} paths are read from ("" for the working directory).
func parse(name, dir string, data []byte, env func(string) (string, bool)) (*Config, []Issue) {
	if env == nil {
		env = os.LookupEnv
	}
	c := Default()
	c.src = &origin{file: name, dir: dir, lines: map[string]pos{}}
	root, issues := parseYAML(name, data)
	if len(issues) > 0 {
		return c, issues
	}
	if root != nil {
		envIssues, bad := interpolate(name, root, lookups{env: env, dir: dir})
		issues = append(issues, envIssues...)
		d := newDecoder(name, bad)
		d.lines = c.src.lines
		d.decode(root, reflect.ValueOf(c).Elem(), "", 0)
		issues = append(issues, d.issues...)
	}
	issues = append(issues, c.validate()...)
	sortIssues(issues)
	// A bad value under an anchor merged in twice is reported once.
	issues = slices.Compact(issues)
	return c, issues
}

// File returns the name of the file the config was loaded or parsed from, or "" for
// Default.
func (c *Config) File() string {
	if c.src == nil {
		return ""
	}
	return c.src.file
}

// Resolve returns the path p, from a field such as scoring.rules.file, as it is meant: an
// absolute or empty p, or "-" (standard input or output), as it is; a relative p joined to
// the folder of the config file that Load read. For Default and Parse configs, relative
// paths stay relative to the working directory.
func (c *Config) Resolve(p string) string {
	if p == "" || p == "-" || filepath.IsAbs(p) || c.src == nil || c.src.dir == "" {
		return p
	}
	return filepath.Join(c.src.dir, p)
}
