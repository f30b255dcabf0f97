package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a rule file or a rule test file, at a line. Parse and RunTests
// return an *Error, or several joined with errors.Join; errors.As finds the first.
type Error struct {
	File string
	Line int // 1-based; 0 when the problem has no line
	Msg  string
}

// Error formats the problem as "file: line N: message".
func (e *Error) Error() string {
	if e.Line > 0 {
		return e.File + ": line " + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.File + ": " + e.Msg
}

// maxErrors bounds how many problems one file reports.
const maxErrors = 20

// yamlFile walks a YAML document strictly and collects problems with their lines.
type yamlFile struct {
	name  string
	errs  []error
	count int // problems found, reported or not
}

func (f *yamlFile) errorf(line int, format string, args ...any) {
	f.count++
	if len(f.errs) < maxErrors {
		f.errs = append(f.errs, &Error{File: f.name, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
}

func (f *yamlFile) err() error { return errors.Join(f.errs...) }

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse reads exactly one YAML document and returns its root node. yaml.v3 has no known
// panics left, but a rule file comes from outside: a panic becomes an error, not a crash.
func (f *yamlFile) parse(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &Error{File: f.name, Msg: fmt.Sprintf("invalid YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, &Error{File: f.name, Msg: "empty file"}
		}
		return nil, f.yamlError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		return nil, f.yamlError(err)
	default:
		return nil, &Error{File: f.name, Line: extra.Line, Msg: "a second YAML document; a file holds one"}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: f.name, Msg: "empty file"}
	}
	return doc.Content[0], nil
}

func (f *yamlFile) yamlError(err error) error {
	msg := strings.TrimSpace(err.Error())
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: f.name, Line: line, Msg: m[2]}
	}
	return &Error{File: f.name, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

// mapping returns the values of a mapping node by key, reporting keys outside known (with
// what, e.g. `rule card_testing: `, as the message prefix), repeated keys, non-scalar keys
// and a node that is not a mapping. It returns nil when n is not a mapping.
func (f *yamlFile) mapping(n *yaml.Node, what string, known ...string) map[string]*yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		line := 0
		if n != nil {
			line = n.Line
		}
		f.errorf(line, "%sexpected a mapping of %s", what, strings.Join(known, ", "))
		return nil
	}
	m := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			f.errorf(n.Content[i].Line, "%sexpected a field name", what)
			continue
		}
		if !slices.Contains(known, k.Value) {
			f.errorf(k.Line, "%sfield %s not recognized (known: %s)", what, k.Value, strings.Join(known, ", "))
			continue
		}
		if _, dup := m[k.Value]; dup {
			f.errorf(k.Line, "%sfield %s repeated", what, k.Value)
			continue
		}
		m[k.Value] = v
	}
	return m
}

// isNull reports whether a field is absent or written without a value.
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// scalar returns a scalar's text, reporting any other node.
func (f *yamlFile) scalar(n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		line := 0
		if n != nil {
			line = n.Line
		}
		f.errorf(line, "%sexpected a single value", what)
		return "", false
	}
	return n.Value, true
}

// boolean returns a true or false scalar, reporting anything else.
func (f *yamlFile) boolean(n *yaml.Node, what string) (bool, bool) {
	s, ok := f.scalar(n, what)
	if !ok {
		return false, false
	}
	switch s {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	f.errorf(deref(n).Line, "%s%q is not true or false", what, s)
	return false, false
}

// strings returns a sequence of scalars; an empty flow sequence [] gives an empty slice.
func (f *yamlFile) stringList(n *yaml.Node, what string) ([]string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		line := 0
		if n != nil {
			line = n.Line
		}
		f.errorf(line, "%sexpected a list, [] for none", what)
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, ok := f.scalar(c, what)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}
