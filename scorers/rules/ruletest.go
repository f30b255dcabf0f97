package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// TestResult is the outcome of one test of a rule test file (see RunTests).
type TestResult struct {
	Name      string
	Line      int      // where the test starts in the file
	Got       []string // reasons of the hits, in order
	GotShadow []string // reasons of the shadow rules that were true, in order
	Errors    []string // ids of the rules that failed at run time
	Failure   string   // why the test failed; "" when it passed
}

// Passed reports whether the test got what it expected.
func (r TestResult) Passed() bool { return r.Failure == "" }

// String formats the result as one line: "PASS name" or "FAIL name (line N): why".
func (r TestResult) String() string {
	if r.Passed() {
		return "PASS " + r.Name
	}
	return fmt.Sprintf("FAIL %s (line %d): %s", r.Name, r.Line, r.Failure)
}

var testFields = []string{"name", "tx", "features", "expect", "expect_shadow", "expect_errors"}

// txFields are the transaction fields of CONTRACT.md a test may set.
var txFields = []string{"id", "ts", "card_id", "account_id", "merchant_id", "amount", "currency",
	"customer_id", "terminal_id", "channel", "mcc", "country", "lat", "lon", "device_id", "ip", "label"}

// txDefaults fill the required fields a test leaves out.
var txDefaults = []struct{ key, json string }{
	{"ts", `"2026-11-25T12:00:00Z"`},
	{"card_id", `"card-test"`},
	{"account_id", `"acct-test"`},
	{"merchant_id", `"m-test"`},
	{"amount", `"10.00"`},
	{"currency", `"EUR"`},
}

// RunTests runs a rule test file against rs, without the engine:
//
//	tests:
//	  - name: small payments burst
//	    tx: {amount: "1.00", currency: EUR, channel: ecom}
//	    features: {card_count_1h: 7}
//	    expect: [rule:card_testing]
//
// tx holds transaction fields as in CONTRACT.md, decoded by the pipeline's own decoder;
// required fields left out get defaults (id "test-<n>", ts 2026-11-25T12:00:00Z, card_id
// card-test, account_id acct-test, merchant_id m-test, amount "10.00", currency EUR).
// features sets features by name; the others are 0. expect lists the reasons of the hits in
// order ([] for none). Optional: expect_shadow lists the reasons of the shadow rules that
// are true, in order; expect_errors lists the ids of rules expected to fail at run time (by
// default a run-time error fails the test). The tests do not count in rs.Stats.
//
// A malformed file (unknown field, a transaction the decoder refuses, an unknown feature) is
// an error naming the file and line; a test that gets something else than it expects is a
// TestResult whose Failure says what.
func RunTests(rs *RuleSet, data []byte) ([]TestResult, error) {
	return runTests(rs, "rule tests", data)
}

// RunTestFile is RunTests on a file's contents, with the file's name in errors.
func RunTestFile(rs *RuleSet, name string, data []byte) ([]TestResult, error) {
	return runTests(rs, name, data)
}

type ruleTest struct {
	name                 string
	line                 int
	ev                   pipeline.Eval
	tx                   pipeline.Transaction
	expect, expectShadow []string
	checkShadow          bool
	expectErrors         []string
	checkErrors          bool
}

func runTests(rs *RuleSet, name string, data []byte) ([]TestResult, error) {
	f := &yamlFile{name: name}
	root, err := f.parse(data)
	if err != nil {
		return nil, err
	}
	top := f.mapping(root, "", "tests")
	if top == nil {
		return nil, f.err()
	}
	list := deref(top["tests"])
	if list == nil || list.Kind != yaml.SequenceNode {
		f.errorf(root.Line, "tests: expected a list of tests")
		return nil, f.err()
	}
	tests := make([]*ruleTest, 0, len(list.Content))
	for i, n := range list.Content {
		if t := f.ruleTest(rs, n, i); t != nil {
			tests = append(tests, t)
		}
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	s := rs.newScorer() // not registered: tests do not count in Stats
	results := make([]TestResult, 0, len(tests))
	for _, t := range tests {
		results = append(results, s.runTest(t))
	}
	return results, nil
}

func (s *scorer) runTest(t *ruleTest) TestResult {
	res := TestResult{Name: t.name, Line: t.line, Got: []string{}, GotShadow: []string{}}
	shadowBefore := make([]uint64, len(s.rules))
	errorsBefore := make([]uint64, len(s.rules))
	for i := range s.rules {
		shadowBefore[i] = s.counts.rules[i].shadowFired.Load()
		errorsBefore[i] = s.counts.rules[i].errors.Load()
	}
	t.ev.Tx = &t.tx
	t.ev.Hits = t.ev.Hits[:0]
	s.Score(&t.ev)
	for _, h := range t.ev.Hits {
		res.Got = append(res.Got, h.Reason)
	}
	for i := range s.rules {
		if s.counts.rules[i].shadowFired.Load() != shadowBefore[i] {
			res.GotShadow = append(res.GotShadow, s.rules[i].Reason)
		}
		if s.counts.rules[i].errors.Load() != errorsBefore[i] {
			res.Errors = append(res.Errors, s.rules[i].ID)
		}
	}
	var why []string
	if !slices.Equal(res.Got, t.expect) {
		why = append(why, fmt.Sprintf("got hits %s, want %s", list(res.Got), list(t.expect)))
	}
	if t.checkShadow && !slices.Equal(res.GotShadow, t.expectShadow) {
		why = append(why, fmt.Sprintf("got shadow hits %s, want %s", list(res.GotShadow), list(t.expectShadow)))
	}
	wantErrs := t.expectErrors
	if !t.checkErrors {
		wantErrs = nil
	}
	if !slices.Equal(res.Errors, wantErrs) && (len(res.Errors) > 0 || len(wantErrs) > 0) {
		why = append(why, fmt.Sprintf("got run-time errors in %s, want %s", list(res.Errors), list(wantErrs)))
	}
	res.Failure = strings.Join(why, "; ")
	return res
}

func list(s []string) string { return "[" + strings.Join(s, ", ") + "]" }

// ruleTest reads the i-th test, reporting its problems; nil when it has any.
func (f *yamlFile) ruleTest(rs *RuleSet, n *yaml.Node, i int) *ruleTest {
	n = deref(n)
	if n == nil {
		return nil
	}
	before := f.count
	t := &ruleTest{line: n.Line, name: "test " + strconv.Itoa(i+1)}
	what := t.name + ": "
	// Name the test in messages when it has a usable name.
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, v := deref(n.Content[j]), deref(n.Content[j+1])
			if k != nil && v != nil && k.Value == "name" && v.Kind == yaml.ScalarNode && v.Value != "" {
				t.name = v.Value
				what = "test " + strconv.Quote(v.Value) + ": "
			}
		}
	}
	m := f.mapping(n, what, testFields...)
	if m == nil {
		return nil
	}
	if v := m["name"]; !isNull(v) {
		f.scalar(v, what+"name: ")
	}
	f.testTx(t, m["tx"], i, what)
	t.ev.Features = make([]float64, rs.compiler.schema.Len())
	if v := m["features"]; !isNull(v) {
		f.testFeatures(rs, t, v, what)
	}
	if isNull(m["expect"]) {
		f.errorf(n.Line, "%sexpect is required: the reasons of the hits, [] for none", what)
	} else {
		t.expect, _ = f.stringList(m["expect"], what+"expect: ")
	}
	if v := m["expect_shadow"]; !isNull(v) {
		t.expectShadow, t.checkShadow = f.stringList(v, what+"expect_shadow: ")
	}
	if v := m["expect_errors"]; !isNull(v) {
		t.expectErrors, t.checkErrors = f.stringList(v, what+"expect_errors: ")
	}
	if f.count != before {
		return nil
	}
	return t
}

// testTx builds the test's transaction as JSON and decodes it as the engine would.
func (f *yamlFile) testTx(t *ruleTest, n *yaml.Node, i int, what string) {
	var b strings.Builder
	b.WriteByte('{')
	set := map[string]bool{}
	line := t.line
	if !isNull(n) {
		m := f.mapping(n, what+"tx: ", txFields...)
		if m == nil {
			return
		}
		line = deref(n).Line
		for _, key := range txFields { // a fixed order keeps errors stable
			v, ok := m[key]
			if !ok || isNull(v) {
				continue
			}
			js, err := jsonValue(key, deref(v), 0)
			if err != nil {
				f.errorf(v.Line, "%stx: %s: %v", what, key, err)
				continue
			}
			writeField(&b, key, js)
			set[key] = true
		}
	}
	if !set["id"] {
		writeField(&b, "id", strconv.Quote("test-"+strconv.Itoa(i+1)))
	}
	for _, d := range txDefaults {
		if !set[d.key] {
			writeField(&b, d.key, d.json)
		}
	}
	b.WriteByte('}')
	if err := pipeline.DecodeTransaction([]byte(b.String()), &t.tx); err != nil {
		f.errorf(line, "%stx: %v", what, err)
	}
}

func writeField(b *strings.Builder, key, js string) {
	if b.Len() > 1 {
		b.WriteByte(',')
	}
	b.WriteString(strconv.Quote(key))
	b.WriteByte(':')
	b.WriteString(js)
}

// jsonValue renders a YAML value as the JSON the contract expects: strings for the string
// fields whatever YAML made of them (mcc: 5411, country: NO), numbers as written for
// amount, lat and lon, and objects for label.
func jsonValue(key string, n *yaml.Node, depth int) (string, error) {
	if n == nil || depth > 8 {
		return "", errors.New("too deeply nested")
	}
	switch n.Kind {
	case yaml.ScalarNode:
		switch {
		case key == "amount" && n.Tag != "!!str", key == "lat", key == "lon":
			if json.Valid([]byte(n.Value)) && n.Tag != "!!str" && n.Tag != "!!bool" {
				return n.Value, nil
			}
			if key == "amount" {
				return strconv.Quote(n.Value), nil
			}
			return "", fmt.Errorf("%q is not a number", n.Value)
		case key == "label" && depth == 0:
			return "", errors.New("expected a mapping such as {fraud: true}")
		case depth > 0 && (n.Tag == "!!bool" || n.Tag == "!!int" || n.Tag == "!!float" || n.Tag == "!!null"):
			if json.Valid([]byte(n.Value)) {
				return n.Value, nil
			}
		}
		return strconv.Quote(n.Value), nil
	case yaml.MappingNode:
		if key != "label" || depth > 0 {
			return "", errors.New("expected a single value")
		}
		var b strings.Builder
		b.WriteByte('{')
		for j := 0; j+1 < len(n.Content); j += 2 {
			k := deref(n.Content[j])
			v, err := jsonValue(key, deref(n.Content[j+1]), depth+1)
			if err != nil {
				return "", err
			}
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Quote(k.Value))
			b.WriteByte(':')
			b.WriteString(v)
		}
		b.WriteByte('}')
		return b.String(), nil
	}
	return "", errors.New("expected a single value")
}

// testFeatures sets the features a test names.
func (f *yamlFile) testFeatures(rs *RuleSet, t *ruleTest, n *yaml.Node, what string) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		f.errorf(n.Line, "%sfeatures: expected a mapping of feature names to numbers", what)
		return
	}
	seen := map[string]bool{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := deref(n.Content[j]), deref(n.Content[j+1])
		if k == nil || v == nil {
			continue
		}
		idx, ok := rs.compiler.featureIndex(k.Value)
		if !ok {
			f.errorf(k.Line, "%sfeatures: %s is not a feature of the schema", what, k.Value)
			continue
		}
		if seen[k.Value] {
			f.errorf(k.Line, "%sfeatures: %s repeated", what, k.Value)
			continue
		}
		seen[k.Value] = true
		x, err := parseNumber(v)
		if err != nil {
			f.errorf(v.Line, "%sfeatures: %s: %v", what, k.Value, err)
			continue
		}
		t.ev.Features[idx] = x
	}
}

// parseNumber reads a YAML number, including .inf and .nan.
func parseNumber(n *yaml.Node) (float64, error) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		switch strings.ToLower(strings.TrimLeft(n.Value, "+")) {
		case ".inf":
			return math.Inf(1), nil
		case "-.inf":
			return math.Inf(-1), nil
		case ".nan":
			return math.NaN(), nil
		}
		var x float64
		if err := n.Decode(&x); err == nil {
			return x, nil
		}
	}
	return 0, fmt.Errorf("%q is not a number", n.Value)
}
