package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// pos is a position in the config file.
type pos struct{ line, col int }

const (
	maxDepth = 64        // nesting deeper than any config type, from aliases or merge keys
	maxSteps = 1_000_000 // decoded nodes per file, bounding alias expansion ("billion laughs")
)

// decoder decodes a yaml.Node tree into Go values by reflection, strictly: every problem
// becomes an Issue with the file, line and column of the node that caused it, and decoding
// goes on with the next field so that one pass reports them all. A field whose value is bad
// keeps its default.
type decoder struct {
	file   string
	issues []Issue
	lines  map[string]pos      // field path -> position of its key (or list item)
	skip   map[*yaml.Node]bool // values already reported bad by interpolation
	steps  int
}

func newDecoder(file string, skip map[*yaml.Node]bool) *decoder {
	return &decoder{file: file, lines: map[string]pos{}, skip: skip}
}

// fail records an issue at node n for the field at path; the message is prefixed with the
// path so that it reads on its own.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	where := path
	if where == "" {
		where = "top level"
	}
	d.issues = append(d.issues, Issue{
		File: d.file, Line: n.Line, Column: n.Column, Path: path,
		Msg: where + ": " + fmt.Sprintf(format, args...),
	})
}

// step counts one unit of decoding work and reports whether the budget allows it, so
// that aliases and merge keys cannot make a small file take unbounded time.
func (d *decoder) step(n *yaml.Node, path string) bool {
	d.steps++
	if d.steps == maxSteps+1 {
		d.fail(n, path, "too much to decode after expanding aliases and merge keys (more than %d steps)", maxSteps)
	}
	return d.steps <= maxSteps
}

// parseYAML parses data into a node tree. It returns nil for an empty document, and an issue
// for a syntax error or for more than one document.
func parseYAML(file string, data []byte) (root *yaml.Node, issues []Issue) {
	defer func() {
		// The YAML parser reports errors by panicking inside and recovering its own; any
		// other panic is a parser bug, and one bad file must not take the process down.
		if r := recover(); r != nil {
			root, issues = nil, []Issue{{File: file, Msg: fmt.Sprintf("invalid YAML: %v", r)}}
		}
	}()
	if issues := checkText(file, data); issues != nil {
		return nil, issues
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, []Issue{yamlIssue(file, err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, []Issue{yamlIssue(file, err)}
	default:
		return nil, []Issue{{File: file, Line: next.Line, Column: next.Column,
			Msg: "a second YAML document: a config file holds one (remove the --- line)"}}
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

var yamlErrLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// parserProblems are the messages of yaml.v3's parser (as opposed to its scanner). yaml.v3
// prints their line 0-based (the scanner's are 1-based), and leaves the line out when it is
// the first one; yamlIssue corrects both.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// yamlIssue turns a yaml.v3 syntax error ("yaml: line 3: did not find expected key") into
// an issue carrying the line.
func yamlIssue(file string, err error) Issue {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	is := Issue{File: file, Msg: "invalid YAML: " + msg}
	if m := yamlErrLine.FindStringSubmatch(msg); m != nil {
		is.Line, _ = strconv.Atoi(m[1])
		is.Msg = "invalid YAML: " + m[2]
		msg = m[2]
	}
	switch {
	case parserProblems[msg]:
		is.Line++
	case is.Line == 0 && !strings.HasPrefix(msg, "unknown anchor"):
		// yaml.v3 leaves out "line 1"; encoding problems, which have no line, were
		// caught before parsing (checkText).
		is.Line = 1
	}
	return is
}

// checkText finds what the YAML reader would refuse without saying where: bytes that are
// not UTF-8, and characters YAML does not allow in a file (most control characters).
func checkText(file string, data []byte) []Issue {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return []Issue{{File: file, Line: line, Column: col,
				Msg: "invalid YAML: the file is not UTF-8 text (a config file must be UTF-8)"}}
		case !yamlPrintable(r):
			return []Issue{{File: file, Line: line, Column: col,
				Msg: fmt.Sprintf("invalid YAML: control character %U is not allowed", r)}}
		case r == '\n':
			line, col = line+1, 0
		}
		i += size
		col++
	}
	return nil
}

// yamlPrintable reports whether YAML 1.2 allows r in a stream (its c-printable set).
func yamlPrintable(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7E || r == 0x85 ||
		r >= 0xA0 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > maxDepth {
			return nil
		}
		n = n.Alias
	}
	return n
}

// isNull reports whether n is YAML's null: "~", "null" or nothing at all, unquoted.
// A null value keeps the field's default, as if the field were absent.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// knownTags are the tags a config may use; others (!!binary, !!set, custom ones) are refused
// rather than silently read as text.
var knownTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!timestamp": true, "!!map": true, "!!seq": true,
}

// decode decodes n into v, which must be settable; path names v in messages.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	if !d.step(n, path) {
		return
	}
	at := n
	if n = deref(n); n == nil {
		d.fail(at, path, "alias nested too deeply")
		return
	}
	if depth > maxDepth {
		d.fail(at, path, "nested too deeply")
		return
	}
	if d.skip[n] {
		return
	}
	if tag := n.ShortTag(); !knownTags[tag] {
		d.fail(at, path, "unsupported YAML tag %s", tag)
		return
	}
	if isNull(n) {
		return
	}
	t := v.Type()
	switch t {
	case durationType:
		if s, ok := d.text(n, at, path, "a duration such as 500ms, 1h30m, 7d or 2w"); ok {
			dur, err := ParseDuration(s)
			if err != nil {
				d.fail(at, path, "expected a duration such as 500ms, 1h30m, 7d or 2w, got %s", describe(n))
				return
			}
			v.SetInt(int64(dur))
		}
		return
	case decimalType:
		if s, ok := d.text(n, at, path, "a decimal number such as 10000.00"); ok {
			if reason := decimalSyntax(s); reason != "" {
				d.fail(at, path, "expected a decimal number such as 10000.00, got %s (%s)", describe(n), reason)
				return
			}
			v.Set(reflect.ValueOf(Decimal{text: s}))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			ptr := reflect.New(t.Elem())
			if isBlock(t.Elem()) {
				if err := setDefaults(ptr.Elem(), path); err != nil {
					d.fail(at, path, "%v", err)
					return
				}
			}
			v.Set(ptr)
		}
		d.decode(n, v.Elem(), path, depth+1)
	case reflect.Struct:
		d.decodeStruct(n, at, v, path, depth)
	case reflect.Slice:
		d.decodeSlice(n, at, v, path, depth)
	case reflect.Map:
		d.decodeMap(n, at, v, path, depth)
	case reflect.String:
		if s, ok := d.text(n, at, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.text(n, at, path, "true or false"); ok {
			switch s {
			case "true", "True", "TRUE":
				v.SetBool(true)
			case "false", "False", "FALSE":
				v.SetBool(false)
			default:
				d.fail(at, path, "expected true or false, got %s", describe(n))
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if s, ok := d.text(n, at, path, "an integer"); ok {
			i, err := parseInt(s)
			switch {
			case err != nil:
				d.fail(at, path, "expected an integer, got %s", describe(n))
			case v.OverflowInt(i):
				bits := t.Bits()
				d.fail(at, path, "expected an integer from %d to %d, got %s",
					int64(-1)<<(bits-1), int64(1)<<(bits-1)-1, describe(n))
			default:
				v.SetInt(i)
			}
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if s, ok := d.text(n, at, path, "a whole number"); ok {
			u, err := parseUint(s)
			switch {
			case err != nil:
				d.fail(at, path, "expected a whole number (0 or more), got %s", describe(n))
			case v.OverflowUint(u):
				d.fail(at, path, "expected a whole number from 0 to %d, got %s", uint64(1)<<t.Bits()-1, describe(n))
			default:
				v.SetUint(u)
			}
		}
	case reflect.Float32, reflect.Float64:
		if s, ok := d.text(n, at, path, "a number"); ok {
			f, err := parseFloat(s)
			if err != nil || v.OverflowFloat(f) {
				d.fail(at, path, "expected a number, got %s", describe(n))
				return
			}
			v.SetFloat(f)
		}
	default:
		d.fail(at, path, "cannot decode into Go type %s (a bug in the config declaration)", t)
	}
}

// text returns the text of a scalar node, or records that something else was expected.
// at is where the value is written: n itself, or an alias to it.
func (d *decoder) text(n, at *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(at, path, "expected %s, got %s", want, describe(n))
		return "", false
	}
	return n.Value, true
}

// parseInt reads a YAML integer: decimal (leading zeros stay decimal, unlike YAML 1.1's
// octal), 0x, 0o or 0b, with optional underscores between digits.
func parseInt(s string) (int64, error) {
	clean, base, err := intText(s)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(clean, base, 64)
}

// parseUint is parseInt for unsigned fields; a sign is refused.
func parseUint(s string) (uint64, error) {
	clean, base, err := intText(s)
	if err != nil || strings.HasPrefix(s, "-") {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(strings.TrimPrefix(clean, "+"), base, 64)
}

// intText prepares an integer literal for strconv: the base to use (0 when it has a
// 0x, 0o or 0b prefix, 10 otherwise) and the text without underscores for base 10.
func intText(s string) (string, int, error) {
	body := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if len(body) > 1 && body[0] == '0' && strings.ContainsRune("xXoObB", rune(body[1])) {
		return s, 0, nil
	}
	if strings.HasPrefix(body, "_") || strings.HasSuffix(body, "_") || strings.Contains(body, "__") {
		return "", 0, strconv.ErrSyntax
	}
	return strings.ReplaceAll(s, "_", ""), 10, nil
}

// parseFloat reads a YAML float, including .inf, -.inf and .nan.
func parseFloat(s string) (float64, error) {
	switch strings.ToLower(s) {
	case ".inf", "+.inf":
		return math.Inf(1), nil
	case "-.inf":
		return math.Inf(-1), nil
	case ".nan":
		return math.NaN(), nil
	}
	if strings.ContainsAny(s, "xXpP") || strings.EqualFold(s, "inf") || strings.EqualFold(s, "nan") ||
		strings.EqualFold(s, "+inf") || strings.EqualFold(s, "-inf") || strings.EqualFold(s, "infinity") ||
		strings.EqualFold(s, "+infinity") || strings.EqualFold(s, "-infinity") {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		s := n.Value
		if utf8.RuneCountInString(s) > 60 {
			s = string([]rune(s)[:57]) + "..."
		}
		return strconv.Quote(s)
	}
	return "nothing"
}

// entry is one key and value of a mapping, after merge keys are applied.
type entry struct {
	key  *yaml.Node // where the key is written, for positions
	name string
	val  *yaml.Node
}

// entries returns the keys and values of mapping n. A key written twice is an error; keys
// merged in with "<<: *anchor" give way to keys written in the mapping itself.
func (d *decoder) entries(n *yaml.Node, path string, depth int) []entry {
	var out []entry
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.step(n, path) {
			return nil
		}
		k, val := n.Content[i], n.Content[i+1]
		kn := deref(k)
		if kn == nil || kn.Kind != yaml.ScalarNode {
			d.fail(k, path, "a key must be a plain name, got %s", describe(k))
			continue
		}
		if kn.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		if first, dup := seen[kn.Value]; dup {
			d.fail(k, joinPath(path, kn.Value), "duplicate key (first set on line %d)", first.Line)
			continue
		}
		seen[kn.Value] = k
		out = append(out, entry{key: k, name: kn.Value, val: val})
	}
	for _, m := range merges {
		for _, e := range d.merged(m, path, depth+1) {
			if _, ok := seen[e.name]; !ok {
				seen[e.name] = e.key
				out = append(out, e)
			}
		}
	}
	return out
}

// merged returns the entries a merge key's value brings in: a mapping, or a list of
// mappings of which earlier ones win.
func (d *decoder) merged(m *yaml.Node, path string, depth int) []entry {
	if depth > maxDepth {
		d.fail(m, path, "merge keys nested too deeply")
		return nil
	}
	n := deref(m)
	switch {
	case n != nil && n.Kind == yaml.MappingNode:
		return d.entries(n, path, depth)
	case n != nil && n.Kind == yaml.SequenceNode:
		var out []entry
		seen := map[string]bool{}
		for _, item := range n.Content {
			in := deref(item)
			if in == nil || in.Kind != yaml.MappingNode {
				d.fail(item, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(item))
				continue
			}
			for _, e := range d.entries(in, path, depth+1) {
				if !seen[e.name] {
					seen[e.name] = true
					out = append(out, e)
				}
			}
		}
		return out
	}
	d.fail(m, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(m))
	return nil
}

// decodeStruct decodes a mapping into the struct v, field by field.
func (d *decoder) decodeStruct(n, at *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.fail(at, path, "expected a mapping of fields, got %s", describe(n))
		return
	}
	fs := fieldsOf(v.Type())
	for _, e := range d.entries(n, path, depth) {
		f, ok := lookupField(fs, e.name)
		if !ok {
			d.unknown(e, path, fs)
			continue
		}
		child := joinPath(path, f.name)
		d.lines[child] = pos{e.key.Line, e.key.Column}
		fv := v.Field(f.index)
		if len(f.enum) == 0 {
			d.decode(e.val, fv, child, depth+1)
			continue
		}
		old := reflect.New(fv.Type()).Elem()
		old.Set(fv)
		d.decode(e.val, fv, child, depth+1)
		if bad, ok := badEnum(fv, f.enum); ok {
			d.fail(e.val, child, "%q is not one of %s", bad, strings.Join(f.enum, ", "))
			fv.Set(old)
		}
	}
}

func lookupField(fs []field, name string) (field, bool) {
	for _, f := range fs {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// unknown reports a key that names no field, with the closest field name when one is close
// enough to be a likely typo, or the valid names otherwise.
func (d *decoder) unknown(e entry, path string, fs []field) {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	msg := "field " + e.name + " not recognized"
	if path != "" {
		msg += " in " + path
	}
	switch s := suggest(e.name, names); {
	case s != "":
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	case len(names) == 1:
		msg += fmt.Sprintf(" (did you mean %q?)", names[0])
	case len(names) > 1:
		msg += " (valid fields: " + strings.Join(names, ", ") + ")"
	}
	d.issues = append(d.issues, Issue{File: d.file, Line: e.key.Line, Column: e.key.Column,
		Path: joinPath(path, e.name), Msg: msg})
}

// suggest returns the candidate closest to name by edit distance, if it is close: within
// 2 edits, or a third of the name's length for longer names, or one is a prefix of the other.
func suggest(name string, candidates []string) string {
	best, bestDist := "", math.MaxInt
	lower := strings.ToLower(name)
	for _, c := range candidates {
		dist := levenshtein(lower, c)
		if dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if best == "" {
		return ""
	}
	if bestDist <= max(2, len(name)/3) {
		return best
	}
	for _, c := range candidates {
		if len(lower) >= 4 && (strings.HasPrefix(c, lower) || strings.HasPrefix(lower, c)) {
			return c
		}
	}
	return ""
}

// levenshtein returns the edit distance between a and b, counted in bytes.
func levenshtein(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// decodeSlice decodes a list into v, replacing its default entirely.
func (d *decoder) decodeSlice(n, at *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.SequenceNode {
		d.fail(at, path, "expected a list, got %s", describe(n))
		return
	}
	before := len(d.issues)
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		child := fmt.Sprintf("%s[%d]", path, i)
		d.lines[child] = pos{item.Line, item.Column}
		ev, err := newValue(v.Type().Elem(), child)
		if err != nil {
			d.fail(item, child, "%v", err)
			continue
		}
		d.decode(item, ev, child, depth+1)
		out = reflect.Append(out, ev)
	}
	if len(d.issues) == before {
		v.Set(out)
	}
}

// decodeMap decodes a mapping with string keys into v, replacing its default entirely.
func (d *decoder) decodeMap(n, at *yaml.Node, v reflect.Value, path string, depth int) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(at, path, "cannot decode into Go type %s: map keys must be strings", t)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(at, path, "expected a mapping, got %s", describe(n))
		return
	}
	before := len(d.issues)
	out := reflect.MakeMap(t)
	for _, e := range d.entries(n, path, depth) {
		child := joinPath(path, e.name)
		d.lines[child] = pos{e.key.Line, e.key.Column}
		ev, err := newValue(t.Elem(), child)
		if err != nil {
			d.fail(e.val, child, "%v", err)
			continue
		}
		d.decode(e.val, ev, child, depth+1)
		out.SetMapIndex(reflect.ValueOf(e.name).Convert(t.Key()), ev)
	}
	if len(d.issues) == before {
		v.Set(out)
	}
}
