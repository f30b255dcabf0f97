package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// testFeatures is the feature schema of the tests, as the velocity scorer declares it.
var testFeatures = []string{
	"card_count_1h", "card_count_1d", "card_count_7d", "card_count_30d",
	"card_mean_amount_1d", "card_mean_amount_7d", "card_mean_amount_30d",
	"card_distinct_merchants_1h", "card_distinct_merchants_1d",
	"secs_since_last", "is_weekend", "is_night", "amount",
	// as the enrichment scorer declares them
	"dist_home_km", "dist_prev_km", "speed_kmh", "country_changed", "foreign", "new_device",
	"deny_listed", "allow_listed", "country_risk", "merchant_risk",
}

func testSchema(t testing.TB) *pipeline.FeatureSchema {
	t.Helper()
	s := pipeline.NewFeatureSchema()
	for _, n := range testFeatures {
		if _, err := s.Declare(n); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func mustParse(t testing.TB, src string) *RuleSet {
	t.Helper()
	rs, err := Parse("rules.yaml", []byte(src), testSchema(t))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return rs
}

func decodeTx(t testing.TB, js string) *pipeline.Transaction {
	t.Helper()
	var tx pipeline.Transaction
	if err := pipeline.DecodeTransaction([]byte(js), &tx); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	return &tx
}

const baseTx = `{"id":"tx-1","ts":"2026-11-25T10:15:30.123Z","card_id":"card-42","account_id":"acct-42","merchant_id":"m-991","amount":"123.45","currency":"EUR","channel":"ecom","country":"DE"}`

// newEval returns an Eval of baseTx with features set by name.
func newEval(t testing.TB, feats map[string]float64) *pipeline.Eval {
	t.Helper()
	ev := &pipeline.Eval{Tx: decodeTx(t, baseTx), Features: make([]float64, len(testFeatures))}
	for name, v := range feats {
		i := slices.Index(testFeatures, name)
		if i < 0 {
			t.Fatalf("no feature %s", name)
		}
		ev.Features[i] = v
	}
	return ev
}

func score(t testing.TB, rs *RuleSet, ev *pipeline.Eval) []pipeline.Hit {
	t.Helper()
	s, err := rs.NewScorer(0)
	if err != nil {
		t.Fatal(err)
	}
	s.Score(ev)
	return ev.Hits
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"unknown top-level field", "rules: []\nrulez: []\n", 2, "field rulez not recognized"},
		{"unknown rule field", `rules:
  - id: a
    expr: tx.amount > 1
    action: review
    actoin: review
`, 5, "rule a: field actoin not recognized"},
		{"bad action", `rules:
  - id: a
    expr: tx.amount > 1
    action: block
`, 4, `rule a: action "block" is not one of decline, review, tag`},
		{"duplicate id", `rules:
  - id: a
    expr: tx.amount > 1
    action: review
  - id: a
    expr: tx.amount > 2
    action: review
`, 5, "rule a: id repeats the rule at line 2"},
		{"CEL syntax error", `rules:
  - id: a
    description: broken
    expr: tx.amount > (1
    action: review
`, 4, "rule a: expr: 1:15: Syntax error: missing ')'"},
		{"not a bool", `rules:
  - id: a
    expr: tx.amount * 2.0
    action: review
`, 3, "rule a: expr: has type double, want bool"},
		{"unknown feature", `rules:
  - id: a
    expr: features.card_count_2h > 1
    action: review
`, 3, "rule a: expr: 1:9: unknown feature card_count_2h (not declared on the engine's feature schema) (did you mean 'features.card_count_1h'?)"},
		{"unknown tx field", `rules:
  - id: a
    expr: tx.amount > 1 && tx.colour == "red"
    action: review
`, 3, "rule a: expr: 1:20: tx has no field colour (did you mean 'tx.hour'?)"},
		{"int arithmetic on a double", `rules:
  - id: a
    expr: tx.amount > 5 * features.card_mean_amount_30d
    action: review
`, 3, "found no matching overload for '_*_'"},
		{"missing expr", `rules:
  - id: a
    action: review
`, 2, "rule a: expr is required"},
		{"missing id", `rules:
  - expr: tx.amount > 1
    action: review
`, 2, "rule 1: id is required"},
		{"bad id", `rules:
  - id: "card testing"
    expr: tx.amount > 1
    action: review
`, 2, `id "card testing"`},
		{"bad shadow", `rules:
  - id: a
    expr: tx.amount > 1
    action: review
    shadow: maybe
`, 5, `rule a: shadow: "maybe" is not true or false`},
		{"bad reason", `rules:
  - id: a
    expr: tx.amount > 1
    action: review
    reason: two words
`, 5, `reason "two words"`},
		{"rule not a mapping", "rules:\n  - just text\n", 2, "rule 1: expected a mapping"},
		{"rules not a list", "rules: {a: 1}\n", 1, "rules: expected a list of rules"},
		{"YAML syntax", "rules:\n  - id: a\n    expr: \"tx.amount > 1\n", 3, "found unexpected end of stream"},
		{"repeated field", `rules:
  - id: a
    expr: tx.amount > 1
    expr: tx.amount > 2
    action: review
`, 4, "rule a: field expr repeated"},
		{"two documents", "rules: []\n---\nrules: []\n", 2, "a second YAML document"},
		{"cost", `rules:
  - id: a
    expr: tx.ip.split("").all(x, tx.ip.split("").all(y, tx.ip.split("").exists(z, x + y == z)))
    action: review
`, 3, "rule a: expr: estimated cost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("rules.yaml", []byte(tc.src), testSchema(t))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if pe.File != "rules.yaml" || pe.Line != tc.line || !strings.Contains(pe.Msg, tc.want) {
				t.Errorf("got %q (line %d), want line %d containing %q", err, pe.Line, tc.line, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "rules.yaml: line ") {
				t.Errorf("error %q does not start with file and line", err)
			}
		})
	}
}

func TestParseErrorsAllReported(t *testing.T) {
	_, err := Parse("rules.yaml", []byte(`rules:
  - id: a
    expr: tx.amount > (
    action: review
  - id: b
    expr: tx.amount > 1
    action: nope
`), testSchema(t))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "rules.yaml: line 3: rule a: expr:") || !strings.Contains(msg, "rules.yaml: line 7: rule b: action") {
		t.Errorf("want both rules' errors, got:\n%s", msg)
	}
}

func TestEmptyFiles(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "---\n"} {
		if _, err := Parse("rules.yaml", []byte(src), testSchema(t)); err == nil {
			t.Errorf("Parse(%q) succeeded", src)
		}
	}
	rs := mustParse(t, "rules: []\n")
	if len(rs.Rules()) != 0 {
		t.Errorf("rules: %v", rs.Rules())
	}
	if hits := score(t, rs, newEval(t, nil)); len(hits) != 0 {
		t.Errorf("hits: %v", hits)
	}
}

func TestLabelUnreachable(t *testing.T) {
	for _, expr := range []string{"tx.label", "tx.label.fraud", `tx.label.scenario == "1"`, "has(tx.label)", "label.fraud", "tx.Label.Fraud"} {
		src := "rules:\n  - id: a\n    expr: '" + expr + "'\n    action: review\n"
		if _, err := Parse("rules.yaml", []byte(src), testSchema(t)); err == nil {
			t.Errorf("%s compiled", expr)
		}
	}
	_, err := Parse("rules.yaml", []byte("rules:\n  - id: a\n    expr: tx.label.fraud\n    action: review\n"), testSchema(t))
	if err == nil || !strings.Contains(err.Error(), "tx.label is not available") {
		t.Errorf("got %v", err)
	}
}

func TestVersion(t *testing.T) {
	a := []byte("rules: []\n")
	b := []byte("rules: [] \n")
	va, vb := Version(a), Version(b)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{12}$`).MatchString(va) {
		t.Errorf("version %q", va)
	}
	if va == vb {
		t.Errorf("versions equal: %s", va)
	}
	rs, err := Parse("x.yaml", a, testSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	if kind, v := rs.Version(); kind != "rules" || v != va {
		t.Errorf("Version() = %q, %q; want rules, %q", kind, v, va)
	}
	// sha256("rules: []\n") begins with these 12 hex digits.
	if va != "sha256:"+sha256Hex12(a) {
		t.Errorf("version %s", va)
	}
}

func TestOutcomesOrderAndShadow(t *testing.T) {
	rs := mustParse(t, `rules:
  - id: tagged
    expr: tx.amount > 100
    action: tag
  - id: shadowed
    expr: tx.amount > 100
    action: decline
    shadow: true
  - id: declined
    expr: features.card_count_1h >= 5
    action: decline
    reason: rule:custom_reason
  - id: reviewed
    expr: tx.channel == "ecom"
    action: review
  - id: quiet
    expr: tx.amount > 1000
    action: decline
`)
	s, _ := rs.NewScorer(0)
	ev := newEval(t, map[string]float64{"card_count_1h": 5})
	s.Score(ev)
	want := []pipeline.Hit{
		{Outcome: pipeline.Approve, Reason: "rule:tagged"},
		{Outcome: pipeline.Decline, Reason: "rule:custom_reason"},
		{Outcome: pipeline.Review, Reason: "rule:reviewed"},
	}
	if !slices.Equal(ev.Hits, want) {
		t.Errorf("hits %v, want %v", ev.Hits, want)
	}
	// Hits are appended to what earlier scorers added.
	ev = newEval(t, nil)
	ev.Hits = []pipeline.Hit{{Outcome: pipeline.Review, Reason: "other"}}
	s.Score(ev)
	if len(ev.Hits) != 3 || ev.Hits[0].Reason != "other" {
		t.Errorf("hits %v", ev.Hits)
	}
	st := rs.Stats()
	wantStats := []RuleStats{
		{ID: "tagged", Evaluated: 2, Fired: 2},
		{ID: "shadowed", Shadow: true, Evaluated: 2, ShadowFired: 2},
		{ID: "declined", Evaluated: 2, Fired: 1},
		{ID: "reviewed", Evaluated: 2, Fired: 2},
		{ID: "quiet", Evaluated: 2},
	}
	if !slices.Equal(st, wantStats) {
		t.Errorf("stats %+v\nwant %+v", st, wantStats)
	}
	r := rs.Rules()[1]
	if r.ID != "shadowed" || !r.Shadow || r.Action != ActionDecline || r.Reason != "rule:shadowed" || r.Line != 5 {
		t.Errorf("rule %+v", r)
	}
}

func TestRuntimeErrors(t *testing.T) {
	rs := mustParse(t, `rules:
  - id: div_zero
    expr: tx.amount_minor / (tx.amount_minor - tx.amount_minor) > 0
    action: decline
  - id: overflow
    expr: tx.amount_minor * 9223372036854775807 > 0
    action: decline
  - id: index
    expr: tx.country.split("")[5] == "X"
    action: decline
  - id: nan_to_int
    expr: int(features.secs_since_last) > 0
    action: decline
  - id: fine
    expr: tx.amount > 100
    action: review
`)
	nan := 0.0
	nan = nan / nan
	ev := newEval(t, map[string]float64{"secs_since_last": nan})
	hits := score(t, rs, ev)
	if len(hits) != 1 || hits[0].Reason != "rule:fine" {
		t.Errorf("hits %v", hits)
	}
	for _, st := range rs.Stats() {
		want := uint64(1)
		if st.ID == "fine" {
			want = 0
		}
		if st.Errors != want || st.Evaluated != 1 {
			t.Errorf("%s: %+v", st.ID, st)
		}
	}
}

func TestFeatureNotComputed(t *testing.T) {
	rs := mustParse(t, `rules:
  - id: fast
    expr: features.amount > 1.0
    action: review
  - id: slow
    expr: features.amount == 1.0
    action: review
`)
	ev := newEval(t, nil)
	ev.Features = ev.Features[:3] // the engine's schema grew after the Eval was made
	if hits := score(t, rs, ev); len(hits) != 0 {
		t.Errorf("hits %v", hits)
	}
	for _, st := range rs.Stats() {
		if st.Errors != 1 {
			t.Errorf("%+v", st)
		}
	}
}

func TestTransactionVariables(t *testing.T) {
	rs := mustParse(t, `rules:
  - {id: id, action: tag, expr: 'tx.id == "tx-7"'}
  - {id: card, action: tag, expr: 'tx.card_id == "card-1" && tx.account_id == "acct-1" && tx.merchant_id == "m-1"'}
  - {id: optional, action: tag, expr: 'tx.customer_id == "cust-1" && tx.terminal_id == "term-1" && tx.device_id == "dev-1" && tx.ip == "10.0.0.1"'}
  - {id: where, action: tag, expr: 'tx.country == "JP" && tx.mcc == "5411" && tx.channel == "atm"'}
  - {id: amount, action: tag, expr: 'tx.currency == "JPY" && tx.amount == 1500.0 && tx.amount_minor == 1500'}
  - {id: time, action: tag, expr: 'tx.hour == 23 && tx.weekday == 0'}
  - {id: geo, action: tag, expr: 'tx.has_geo && tx.lat > 35.6 && tx.lon < 139.7'}
  - {id: strings_ext, action: tag, expr: 'tx.ip.split(".").size() == 4 && tx.card_id.upperAscii() == "CARD-1"'}
  - {id: empty, action: tag, expr: 'tx.customer_id != ""'}
`)
	// 2026-11-29 is a Sunday; 23:59 at +01:00 is 22:59 UTC... so use an explicit UTC time.
	tx := decodeTx(t, `{"id":"tx-7","ts":"2026-11-29T23:59:59Z","card_id":"card-1","account_id":"acct-1","merchant_id":"m-1","amount":1500,"currency":"JPY",
		"customer_id":"cust-1","terminal_id":"term-1","device_id":"dev-1","ip":"10.0.0.1","country":"JP","mcc":"5411","channel":"atm","lat":35.68,"lon":139.69,
		"label":{"fraud":true,"scenario":"1"}}`)
	ev := &pipeline.Eval{Tx: tx, Features: make([]float64, len(testFeatures))}
	hits := score(t, rs, ev)
	var got []string
	for _, h := range hits {
		got = append(got, h.Reason)
	}
	want := []string{"rule:id", "rule:card", "rule:optional", "rule:where", "rule:amount", "rule:time", "rule:geo", "rule:strings_ext", "rule:empty"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	for _, st := range rs.Stats() {
		if st.Errors != 0 {
			t.Errorf("%+v", st)
		}
	}
	// Absent optional fields are empty strings; no geo means has_geo false.
	ev = &pipeline.Eval{Tx: decodeTx(t, baseTx), Features: make([]float64, len(testFeatures))}
	if hits := score(t, rs, ev); len(hits) != 0 {
		t.Errorf("hits %v", hits)
	}
}

func TestHourWeekday(t *testing.T) {
	for _, tc := range []struct {
		ts            string
		hour, weekday int64
	}{
		{"1970-01-01T00:00:00Z", 0, 4},
		{"2026-11-25T10:15:30.123Z", 10, 3},
		{"2026-11-29T23:59:59.999Z", 23, 0},
		{"2026-11-30T00:30:00+02:00", 22, 0},
		{"1969-12-31T23:00:00Z", 23, 3},
		{"1900-01-01T05:00:00Z", 5, 1},
	} {
		ms, err := pipeline.ParseTime(tc.ts)
		if err != nil {
			t.Fatal(err)
		}
		if h, d := hourWeekday(ms); h != tc.hour || d != tc.weekday {
			t.Errorf("%s: hour %d weekday %d, want %d %d", tc.ts, h, d, tc.hour, tc.weekday)
		}
	}
}

func TestDefaultRules(t *testing.T) {
	rs, err := Default(testSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	if rs.Name() != "default.yaml" {
		t.Errorf("name %q", rs.Name())
	}
	if _, v := rs.Version(); v != Version(DefaultYAML()) {
		t.Errorf("version %s", v)
	}
	data, err := os.ReadFile("testdata/default_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	results, err := RunTestFile(rs, "default_test.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	// Every rule is exercised both firing and not.
	fired := map[string]bool{}
	for _, r := range results {
		if !r.Passed() {
			t.Error(r)
		}
		for _, reason := range append(r.Got, r.GotShadow...) {
			fired[reason] = true
		}
	}
	for _, r := range rs.Rules() {
		if !fired[r.Reason] {
			t.Errorf("no test fires %s", r.ID)
		}
	}
	if len(results) < 10 {
		t.Errorf("only %d tests", len(results))
	}
	// Tests do not count in the rule set's statistics.
	for _, st := range rs.Stats() {
		if st.Evaluated != 0 {
			t.Errorf("%+v", st)
		}
	}
}

func TestDefaultNeedsFeatures(t *testing.T) {
	_, err := Default(pipeline.NewFeatureSchema())
	if err == nil || !strings.Contains(err.Error(), "unknown feature card_count_1h") {
		t.Errorf("got %v", err)
	}
}

func TestRunTests(t *testing.T) {
	rs := mustParse(t, `rules:
  - id: big
    expr: tx.amount > 100
    action: review
  - id: watch
    expr: tx.channel == "ecom"
    action: decline
    shadow: true
  - id: broken
    expr: 10 / tx.amount_minor > 0 || features.amount > 1000.0
    action: decline
`)
	results, err := RunTests(rs, []byte(`tests:
  - name: passes
    tx: {amount: "150.00", channel: ecom}
    expect: [rule:big]
    expect_shadow: [rule:watch]
  - name: wrong hits
    tx: {amount: 5}
    expect: [rule:big]
  - name: wrong shadow
    tx: {amount: "150.00"}
    expect: [rule:big]
    expect_shadow: [rule:watch]
  - name: feature fires
    features: {amount: 2000}
    expect: [rule:broken]
  - tx: {amount: "20.00", mcc: 5411, country: NO}
    expect: []
`))
	if err != nil {
		t.Fatal(err)
	}
	var status []string
	for _, r := range results {
		status = append(status, r.String())
	}
	want := []string{
		"PASS passes",
		"FAIL wrong hits (line 6): got hits [], want [rule:big]",
		"FAIL wrong shadow (line 9): got shadow hits [], want [rule:watch]",
		"PASS feature fires",
		"PASS test 5",
	}
	if !slices.Equal(status, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(status, "\n"), strings.Join(want, "\n"))
	}

	// A run-time error fails a test unless it is expected.
	rs = mustParse(t, "rules:\n  - {id: zero, action: tag, expr: 'tx.amount_minor / (tx.amount_minor - tx.amount_minor) > 0'}\n")
	results, err = RunTests(rs, []byte("tests:\n  - {name: a, expect: []}\n  - {name: b, expect: [], expect_errors: [zero]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Passed() || !strings.Contains(results[0].Failure, "run-time errors in [zero]") || !results[1].Passed() {
		t.Errorf("results %v", results)
	}
}

func TestRunTestsErrors(t *testing.T) {
	rs := mustParse(t, "rules: []\n")
	for _, tc := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"unknown field", "tests:\n  - name: a\n    expect: []\n    expected: []\n", 4, `test "a": field expected not recognized`},
		{"unknown tx field", "tests:\n  - name: a\n    tx: {amout: 1}\n    expect: []\n", 3, `test "a": tx: field amout not recognized`},
		{"bad amount", "tests:\n  - name: a\n    tx: {amount: \"-1\"}\n    expect: []\n", 3, "tx: bad_amount"},
		{"bad currency", "tests:\n  - name: a\n    tx: {currency: EURO}\n    expect: []\n", 3, "tx: unknown_currency"},
		{"unknown feature", "tests:\n  - name: a\n    features: {card_count_2h: 1}\n    expect: []\n", 3, "features: card_count_2h is not a feature"},
		{"feature not a number", "tests:\n  - name: a\n    features: {amount: lots}\n    expect: []\n", 3, `features: amount: "lots" is not a number`},
		{"missing expect", "tests:\n  - name: a\n    tx: {amount: 1}\n", 2, `test "a": expect is required`},
		{"label not a mapping", "tests:\n  - name: a\n    tx: {label: true}\n    expect: []\n", 3, "tx: label: expected a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RunTestFile(rs, "t.yaml", []byte(tc.src))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("got %v", err)
			}
			if pe.File != "t.yaml" || pe.Line != tc.line || !strings.Contains(pe.Msg, tc.want) {
				t.Errorf("got %q (line %d), want line %d containing %q", err, pe.Line, tc.line, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prod-rules.yaml")
	src := "rules:\n  - id: a\n    expr: tx.amount > 1\n    action: review\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := Load(path, testSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, v := rs.Version(); v != Version([]byte(src)) || rs.Name() != path {
		t.Errorf("version %s name %s", v, rs.Name())
	}
	if err := os.WriteFile(path, []byte(src+"    bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, testSchema(t)); err == nil || !strings.HasPrefix(err.Error(), path+": line 5: rule a: field bogus") {
		t.Errorf("got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), testSchema(t)); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

// TestStatsConcurrent runs a scorer per partition, as the engine does, and reads Stats while
// they run; go test -race checks the counters.
func TestStatsConcurrent(t *testing.T) {
	rs, err := Default(testSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	const partitions, perPartition = 4, 500
	var wg sync.WaitGroup
	for p := range partitions {
		s, err := rs.NewScorer(p)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := newEval(t, map[string]float64{"card_count_1h": 6, "card_count_30d": 10})
			ev.Tx.Amount = 100 // 1.00 EUR: card testing
			for range perPartition {
				ev.Hits = ev.Hits[:0]
				s.Score(ev)
			}
		}()
	}
	for range 10 {
		for _, st := range rs.Stats() {
			if st.Fired+st.Errors > st.Evaluated {
				t.Errorf("inconsistent snapshot %+v", st)
			}
		}
	}
	wg.Wait()
	st := rs.Stats()
	if st[0].ID != "card_testing" || st[0].Evaluated != partitions*perPartition || st[0].Fired != partitions*perPartition {
		t.Errorf("%+v", st[0])
	}
}

func sha256Hex12(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}
