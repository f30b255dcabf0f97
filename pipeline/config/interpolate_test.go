package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"HOST": "db.internal", "PORT": "5432", "EMPTY": "", "REF": "${HOST}"}
	tests := []struct {
		in, want string
		problems []string
	}{
		{"plain text", "plain text", nil},
		{"${HOST}", "db.internal", nil},
		{"${HOST}:${PORT}/x", "db.internal:5432/x", nil},
		{"${MISSING:fallback}", "fallback", nil},
		{"${HOST:fallback}", "db.internal", nil},
		{"${EMPTY:fallback}", "fallback", nil}, // set but empty: the default, as in sh's ${VAR:-default}
		{"${EMPTY}", "", nil},                  // set but empty, no default: empty, not an error
		{"${MISSING:}", "", nil},
		{"${MISSING:a:b}", "a:b", nil},
		{"${MISSING:${x}", "${x", nil}, // the default runs to the first }
		{"$${HOST}", "${HOST}", nil},
		{"$$${HOST}", "$${HOST}", nil},
		{"cost: $5 and $$ and $", "cost: $5 and $$ and $", nil},
		{"$HOST", "$HOST", nil},
		{"${REF}", "${HOST}", nil}, // substituted text is not expanded again
		{"${MISSING}", "", []string{
			"environment variable MISSING is not set and has no default (write ${MISSING:value} to give one)"}},
		{"${A}${B}", "", []string{
			"environment variable A is not set and has no default (write ${A:value} to give one)",
			"environment variable B is not set and has no default (write ${B:value} to give one)"}},
		{"${}", "", []string{
			`${}: "" is not an environment variable name (write ${NAME}, ${NAME:default} or ${file:PATH}; $${ for a literal ${)`}},
		{"${1X}", "", []string{
			`${1X}: "1X" is not an environment variable name (write ${NAME}, ${NAME:default} or ${file:PATH}; $${ for a literal ${)`}},
		{"${FOO-bar}", "", []string{
			`${FOO-bar}: "FOO-bar" is not an environment variable name (write ${NAME}, ${NAME:default} or ${file:PATH}; $${ for a literal ${)`}},
		{"abc ${HOST", "", []string{"unterminated ${ (write $${ for a literal ${)"}},
	}
	for _, tt := range tests {
		got, problems := expand(tt.in, lookups{env: env(vars)})
		if strings.Join(problems, "\n") != strings.Join(tt.problems, "\n") {
			t.Errorf("expand(%q) problems %q, want %q", tt.in, problems, tt.problems)
			continue
		}
		if len(tt.problems) == 0 && got != tt.want {
			t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestInterpolation(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		vars  map[string]string
		check func(c *Config) bool
	}{
		{"default used when unset", "engine:\n  partitions: ${PARTS:4}\n", nil,
			func(c *Config) bool { return c.Engine.Partitions == 4 }},
		{"variable wins over default", "engine:\n  partitions: ${PARTS:4}\n", map[string]string{"PARTS": "12"},
			func(c *Config) bool { return c.Engine.Partitions == 12 }},
		{"quoted value", "ledger:\n  path: \"${DATA:/var/lib}/ledger.db\"\n", map[string]string{"DATA": "/srv"},
			func(c *Config) bool { return c.Ledger.Path == "/srv/ledger.db" }},
		{"durations and decimals", "windows: {ttl: '${TTL:40d}'}\nledger:\n  default_limit: ${LIMIT}\n",
			map[string]string{"LIMIT": "250.75"},
			func(c *Config) bool {
				return c.Windows.TTL == Duration(40*day) && c.Ledger.DefaultLimit.String() == "250.75"
			}},
		{"inside a list", "windows:\n  durations: [1h, '${LONG:2w}']\n", nil,
			func(c *Config) bool { return c.Windows.Durations[1] == Duration(2*week) }},
		{"empty default is an empty string, not null", "ledger:\n  driver: none\n  path: ${DB:}\n", nil,
			func(c *Config) bool { return c.Ledger.Path == "" }},
		{"escaped", "source:\n  path: $${HOME}/x\n", map[string]string{"HOME": "/root"},
			func(c *Config) bool { return c.Source.Path == "${HOME}/x" }},
		{"value is not parsed as YAML", "source:\n  path: ${P}\n", map[string]string{"P": "a: [b, c]"},
			func(c *Config) bool { return c.Source.Path == "a: [b, c]" }},
		{"comments are left alone", "# ${NOT_SET}\nsource:\n  path: x # ${NOT_SET}\n", nil,
			func(c *Config) bool { return c.Source.Path == "x" }},
		{"explicit tag is kept", "engine:\n  partitions: !!int ${N:3}\n", nil,
			func(c *Config) bool { return c.Engine.Partitions == 3 }},
		{"anchored value expanded once for every alias", "windows:\n  ttl: &t ${T:40d}\nengine:\n  dedup_ttl: *t\n", nil,
			func(c *Config) bool {
				return c.Windows.TTL == Duration(40*day) && c.Engine.DedupTTL == Duration(40*day)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := parseOK(t, tt.yaml, tt.vars); !tt.check(c) {
				t.Errorf("unexpected config: %+v", *c)
			}
		})
	}
}

func TestInterpolationErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		vars map[string]string
		want []string
	}{
		{"unset without default names file, line and variable",
			"engine:\n  partitions: 2\n\nledger:\n  path: ${PG_PASSWORD}\n", nil,
			[]string{`t.yaml: line 5: environment variable PG_PASSWORD is not set and has no default (write ${PG_PASSWORD:value} to give one)`}},
		{"reported once, not again as a type error", "engine:\n  partitions: ${P}\n", nil,
			[]string{`t.yaml: line 2: environment variable P is not set and has no default (write ${P:value} to give one)`}},
		{"an aliased bad value is reported once", "windows:\n  ttl: &t ${T}\nengine:\n  dedup_ttl: *t\n", nil,
			[]string{`t.yaml: line 2: environment variable T is not set and has no default (write ${T:value} to give one)`}},
		{"the value is then checked by its type", "engine:\n  partitions: ${P}\n", map[string]string{"P": "many"},
			[]string{`t.yaml: line 2: engine.partitions: expected an integer, got "many"`}},
		{"keys are not interpolated", "${K}: 1\n", map[string]string{"K": "engine"},
			[]string{`t.yaml: line 1: field ${K} not recognized (valid fields: engine, windows, source, scoring, ledger, output, log, admin, checkpoint, scale)`}},
		{"unterminated", "source:\n  path: ${HOME\n", nil,
			[]string{`t.yaml: line 2: unterminated ${ (write $${ for a literal ${)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := issueStrings(t, tt.yaml, tt.vars)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("issues:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestFileInterpolation reads secrets from files, as Docker and Kubernetes mount them.
func TestFileInterpolation(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := write("os_password", "s3cr3t-from-file\n")
	write("token", "tok-relative\r\n")
	write("jwt", "0123456789abcdef0123456789abcdef-jwt\n\n")
	cfgPath := write("fraudpipe.yaml", `
source:
  type: http
  http:
    auth: {hs256_secret: "${file:`+filepath.Join(dir, "jwt")+`}"}
scoring:
  remote:
    http: {bearer_token: "${file:token}"}
ledger:
  url: "postgres://fraudpipe:${file:`+pw+`}@db:5432/ledger"
output:
  opensearch:
    - {username: fraud, password: "${file:`+pw+`}"}
`)
	c, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Output.OpenSearch[0].Password.Reveal(); got != "s3cr3t-from-file" {
		t.Errorf("password = %q, want the file's contents without the newline", got)
	}
	if got := c.Scoring.Remote.HTTP.BearerToken.Reveal(); got != "tok-relative" {
		t.Errorf("bearer token from a path relative to the config = %q", got)
	}
	if got := c.Source.HTTP.Auth.HS256Secret.Reveal(); got != "0123456789abcdef0123456789abcdef-jwt" {
		t.Errorf("hs256 secret = %q", got)
	}
	if got := c.Ledger.URL; got != "postgres://fraudpipe:s3cr3t-from-file@db:5432/ledger" {
		t.Errorf("ledger.url = %q", got)
	}
}

func TestFileInterpolationErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxSecretFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"missing file names file, line and path",
			"engine:\n  partitions: 2\noutput:\n  opensearch:\n    - password: ${file:" + missing + "}\n",
			[]string{"t.yaml: line 5: ${file:" + missing + "}: cannot read the file: no such file or directory (mount the secret there, or fix the path)"}},
		{"a folder is not a secret",
			"ledger:\n  url: postgres://u:${file:" + dir + "}@h/db\n",
			[]string{"t.yaml: line 2: ${file:" + dir + "}: cannot read the file: is a directory (mount the secret there, or fix the path)"}},
		{"empty path", "output:\n  opensearch:\n    - password: ${file:}\n",
			[]string{"t.yaml: line 3: ${file:}: name the file, as in ${file:/run/secrets/db_password}"}},
		{"too large", "output:\n  opensearch:\n    - password: ${file:" + big + "}\n",
			[]string{"t.yaml: line 3: ${file:" + big + "}: the file is larger than 1048576 bytes; it should hold one secret"}},
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
