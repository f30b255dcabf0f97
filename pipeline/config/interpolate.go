package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Interpolation replaces ${VAR} and ${VAR:default} in every scalar value (never in keys)
// before decoding:
//
//	${VAR}          the variable's value; an error when it is unset (set but empty is fine)
//	${VAR:default}  the variable's value, or default when it is unset or empty
//	${VAR:}         the variable's value, or empty: an explicit empty default
//	${file:PATH}    the contents of the file PATH, trailing newlines trimmed: secrets mounted
//	                as files (Docker and Kubernetes secrets, /run/secrets/x); a relative PATH
//	                is relative to the config file; an unreadable file is an error
//	$${             a literal ${
//
// The default runs to the first "}". Substituted text is not scanned again, and it is
// always a string value that the field's type then parses ("${N:4}" fills an integer
// field with 4), so an environment variable can never inject YAML structure.

// maxSecretFileBytes bounds a ${file:...} file: it holds a password or a key, and a path
// such as /dev/zero must not exhaust memory.
const maxSecretFileBytes = 1 << 20

// lookups is where interpolation finds values: environment variables, and files relative
// to dir ("" for the working directory).
type lookups struct {
	env func(string) (string, bool)
	dir string
}

// file returns the contents of the file at p, trailing newlines trimmed. Its error says
// what is wrong without the contents.
func (l lookups) file(p string) (string, error) {
	if p == "" {
		return "", errors.New("${file:}: name the file, as in ${file:/run/secrets/db_password}")
	}
	full := p
	if !filepath.IsAbs(full) && l.dir != "" {
		full = filepath.Join(l.dir, full)
	}
	f, err := os.Open(full)
	if err != nil {
		return "", fileError(p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", fileError(p, err)
	}
	if len(b) > maxSecretFileBytes {
		return "", fmt.Errorf("${file:%s}: the file is larger than %d bytes; it should hold one secret", p, maxSecretFileBytes)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// fileError words a failure to read a ${file:...} file.
func fileError(p string, err error) error {
	msg := err.Error()
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		msg = pe.Err.Error()
	}
	return fmt.Errorf("${file:%s}: cannot read the file: %s (mount the secret there, or fix the path)", p, msg)
}

// interpolate expands the variables in every scalar value of the tree, in place. It returns
// an issue per unset variable or malformed reference, and the set of nodes left bad so that
// the decoder does not report them again.
func interpolate(file string, root *yaml.Node, look lookups) ([]Issue, map[*yaml.Node]bool) {
	var issues []Issue
	bad := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node, path string, depth int)
	walk = func(n *yaml.Node, path string, depth int) {
		if n == nil || depth > maxDepth {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, depth+1)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				name := ""
				if k := deref(n.Content[i]); k != nil {
					name = k.Value
				}
				walk(n.Content[i+1], joinPath(path, name), depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i), depth+1)
			}
		case yaml.ScalarNode:
			if !strings.Contains(n.Value, "${") {
				return
			}
			out, problems := expand(n.Value, look)
			for _, p := range problems {
				issues = append(issues, Issue{File: file, Line: n.Line, Column: n.Column, Path: path, Msg: p})
			}
			if len(problems) > 0 {
				bad[n] = true
				return
			}
			n.Value = out
			if n.Style&yaml.TaggedStyle == 0 {
				// The result is text for the field's type to parse; in particular an empty
				// result is an empty string, not YAML's null (which would keep the default).
				n.Tag = "!!str"
			}
		}
		// Aliases are skipped: the node they point to is expanded where it is defined.
	}
	walk(root, "", 0)
	return issues, bad
}

// expand replaces the variable and file references in s. It returns the result and a
// message for each reference it could not replace.
func expand(s string, look lookups) (string, []string) {
	var b strings.Builder
	var problems []string
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			problems = append(problems, "unterminated ${ (write $${ for a literal ${)")
			break
		}
		ref := s[i+2 : i+2+end]
		i += 2 + end + 1
		if p, ok := strings.CutPrefix(ref, "file:"); ok {
			val, err := look.file(p)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			b.WriteString(val)
			continue
		}
		name, def, hasDef := strings.Cut(ref, ":")
		if !validEnvName(name) {
			problems = append(problems, fmt.Sprintf(
				"${%s}: %q is not an environment variable name (write ${NAME}, ${NAME:default} or ${file:PATH}; $${ for a literal ${)", ref, name))
			continue
		}
		val, ok := look.env(name)
		switch {
		case ok && (val != "" || !hasDef):
			b.WriteString(val)
		case hasDef:
			b.WriteString(def)
		default:
			problems = append(problems, fmt.Sprintf(
				"environment variable %s is not set and has no default (write ${%s:value} to give one)", name, name))
		}
	}
	return b.String(), problems
}

// validEnvName reports whether s is a portable environment variable name: a letter or
// underscore, then letters, digits and underscores.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && isDigit(c)) {
			return false
		}
	}
	return true
}
