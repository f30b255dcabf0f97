// Package deploy checks the operations files beside it: the Prometheus scrape config, the
// alert rules and their unit tests (with promtool), the Grafana dashboard, and that every
// metric they read is one fraudpipe exports and every alert's runbook link leads to a
// section of docs/runbook.md.
//
// promtool must be on PATH: scripts/install-promtool installs it.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Paths relative to this package's folder, where go test runs.
const (
	promConfig  = "prometheus/prometheus.yml"
	alertsFile  = "prometheus/alerts.yml"
	alertsTests = "prometheus/alerts_test.yml"
	dashboard   = "grafana/fraudpipe.json"
	runbook     = "../docs/runbook.md"
	metricsDoc  = "../docs/metrics.md"
)

// metricKind is how a metric is exported, which decides the series names it has.
type metricKind int

const (
	counter metricKind = iota
	gauge
	histogram
)

// knownMetrics are the metrics fraudpipe exports (docs/metrics.md), plus Prometheus' own up.
var knownMetrics = map[string]metricKind{
	"fraudpipe_engine_events_total":                       counter,
	"fraudpipe_engine_decisions_total":                    counter,
	"fraudpipe_ledger_results_total":                      counter,
	"fraudpipe_engine_dead_letters_total":                 counter,
	"fraudpipe_engine_late_events_total":                  counter,
	"fraudpipe_engine_watermark_seconds":                  gauge,
	"fraudpipe_checkpoint_total":                          counter,
	"fraudpipe_checkpoint_duration_seconds":               histogram,
	"fraudpipe_checkpoint_size_bytes":                     gauge,
	"fraudpipe_ledger_commit_duration_seconds":            histogram,
	"fraudpipe_sink_flush_duration_seconds":               histogram,
	"fraudpipe_sink_duration_seconds":                     histogram,
	"fraudpipe_state_cards":                               gauge,
	"fraudpipe_state_cards_expired_total":                 counter,
	"fraudpipe_state_cards_evicted_total":                 counter,
	"fraudpipe_stage_duration_seconds":                    histogram,
	"fraudpipe_engine_latency_seconds":                    histogram,
	"fraudpipe_queue_depth":                               gauge,
	"fraudpipe_engine_watermark_lag_seconds":              gauge,
	"fraudpipe_engine_reasons_total":                      counter,
	"fraudpipe_model_score":                               histogram,
	"fraudpipe_checkpoint_last_success_timestamp_seconds": gauge,
	"fraudpipe_source_lag_messages":                       gauge,
	"fraudpipe_source_behind_seconds":                     gauge,
	"fraudpipe_sink_items_total":                          counter,
	"fraudpipe_build_info":                                gauge,
	"fraudpipe_engine_feedback_total":                     counter,
	"fraudpipe_ledger_chargebacks_total":                  counter,
	"fraudpipe_api_requests_total":                        counter,
	"fraudpipe_api_request_duration_seconds":              histogram,
	"fraudpipe_enrich_file_entries":                       gauge,
	"fraudpipe_enrich_file_reloads_total":                 counter,
	"fraudpipe_enrich_file_reload_failures_total":         counter,
	"fraudpipe_enrich_file_failing":                       gauge,
	"fraudpipe_enrich_cards":                              gauge,
	"fraudpipe_enrich_cards_expired_total":                counter,
	"fraudpipe_enrich_cards_evicted_total":                counter,
	"fraudpipe_remote_calls_total":                        counter,
	"fraudpipe_remote_call_duration_seconds":              histogram,
	"fraudpipe_remote_breaker_state":                      gauge,
	"fraudpipe_remote_breaker_transitions_total":          counter,
}

// wantAlerts are the alerts docs/runbook.md describes; alerts.yml must define each.
var wantAlerts = []string{
	"FraudpipeDown",
	"FraudpipeFallingBehind",
	"FraudpipeNoThroughput",
	"FraudpipeDeadLettersRising",
	"FraudpipeSinkFailing",
	"FraudpipeCheckpointStale",
	"FraudpipeCheckpointFailing",
	"FraudpipeLedgerRejectsSpike",
	"FraudpipeDeclineRateAnomaly",
	"FraudpipeLedgerSlow",
	"FraudpipeEnrichmentFileFailing",
	"FraudpipeRemoteScorerBreakerOpen",
}

// wantRows are the dashboard's rows, in order.
var wantRows = []string{
	"Throughput", "Latency", "Lag", "Decisions", "Ledger", "Sinks", "Checkpoints", "State", "Dead letters",
	"HTTP API", "Enrichment", "Remote scorer",
}

// promtool runs promtool with args and fails the test with its output when it fails.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not on PATH: run scripts/install-promtool (as root, or with sudo; it installs Debian's prometheus package, which ships promtool), then run the tests again")
	}
	cmd := exec.Command(path, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestPrometheusConfig(t *testing.T) {
	promtool(t, "check", "config", promConfig)
}

func TestAlertRulesCheck(t *testing.T) {
	promtool(t, "check", "rules", alertsFile)
}

func TestAlertRulesUnitTests(t *testing.T) {
	promtool(t, "test", "rules", alertsTests)
}

// ruleFile is the shape of a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	return rf
}

func TestAlertsShape(t *testing.T) {
	rf := readRules(t)
	anchors := runbookAnchors(t)
	var got []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			got = append(got, r.Alert)
			if r.For == "" {
				t.Errorf("alert %s has no for: a single bad scrape would page", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity label %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
			u, err := url.Parse(r.Annotations["runbook_url"])
			if err != nil {
				t.Errorf("alert %s: runbook_url: %v", r.Alert, err)
				continue
			}
			if !strings.HasSuffix(u.Path, "/docs/runbook.md") {
				t.Errorf("alert %s: runbook_url %s does not point at docs/runbook.md", r.Alert, u)
			}
			if !anchors[u.Fragment] {
				t.Errorf("alert %s: runbook_url anchor #%s is no heading of docs/runbook.md (headings give %v)", r.Alert, u.Fragment, sortedKeys(anchors))
			}
			if want := strings.ToLower(r.Alert); u.Fragment != want {
				t.Errorf("alert %s: runbook_url anchor #%s, want #%s, its own section", r.Alert, u.Fragment, want)
			}
		}
	}
	for _, a := range wantAlerts {
		if !slices.Contains(got, a) {
			t.Errorf("alerts.yml has no alert %s", a)
		}
	}
}

// TestAlertMetrics checks that every expression of alerts.yml reads metrics that exist:
// fraudpipe's, up, or series recorded by the file itself.
func TestAlertMetrics(t *testing.T) {
	rf := readRules(t)
	recorded := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			names, err := metricNames(r.Expr)
			if err != nil {
				t.Errorf("rule %s: %v", name, err)
				continue
			}
			if len(names) == 0 {
				t.Errorf("rule %s: no metric found in %q", name, r.Expr)
			}
			for _, n := range names {
				if !recorded[n] && !isKnownSeries(n) {
					t.Errorf("rule %s reads %s, which fraudpipe does not export", name, n)
				}
			}
		}
	}
}

// panel is the part of a Grafana panel the tests read.
type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string          `json:"expr"`
		RefID      string          `json:"refId"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type grafanaDashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource json.RawMessage `json:"datasource"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s does not parse: %v", dashboard, err)
	}
	return d
}

// allPanels returns the dashboard's panels, those inside collapsed rows included.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q, title %q: both must be set", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or later", d.SchemaVersion)
	}
	vars := map[string]int{}
	for i, v := range d.Templating.List {
		vars[v.Name] = i
	}
	if i, ok := vars["datasource"]; !ok {
		t.Errorf("no datasource template variable")
	} else if v := d.Templating.List[i]; v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("variable datasource: type %q, query %s; want a datasource variable of plugin prometheus", v.Type, v.Query)
	}
	if i, ok := vars["instance"]; !ok {
		t.Errorf("no instance template variable")
	} else if v := d.Templating.List[i]; v.Type != "query" || !strings.Contains(string(v.Datasource), "${datasource}") {
		t.Errorf("variable instance: type %q, datasource %s; want a query on ${datasource}", v.Type, v.Datasource)
	}

	var rows []string
	ids := map[int]string{}
	for _, p := range allPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if !strings.Contains(string(p.Datasource), "${datasource}") {
			t.Errorf("panel %q: datasource %s, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, "$instance") {
				t.Errorf("panel %q: query %q ignores the instance variable", p.Title, tg.Expr)
			}
		}
	}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("rows %q, want %q", rows, wantRows)
	}
}

// TestDashboardMetrics checks that every panel query and variable reads metrics that exist.
func TestDashboardMetrics(t *testing.T) {
	d := readDashboard(t)
	seen := map[string]bool{}
	check := func(where, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		if len(names) == 0 {
			t.Errorf("%s: no metric found in %q", where, expr)
		}
		for _, n := range names {
			seen[n] = true
			if !isKnownSeries(n) {
				t.Errorf("%s reads %s, which fraudpipe does not export", where, n)
			}
		}
	}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			check(fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := v.Definition
		var s string
		if json.Unmarshal(v.Query, &s) == nil && s != "" {
			q = s
		}
		check("variable "+v.Name, labelValuesMetric(q))
	}
	// Every metric fraudpipe exports has a place on the dashboard.
	for m := range knownMetrics {
		if m == "fraudpipe_engine_watermark_seconds" {
			continue // shown as its lag, fraudpipe_engine_watermark_lag_seconds
		}
		found := seen[m]
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			found = found || seen[m+s]
		}
		if !found {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// TestDashboardPromQL has promtool parse every panel query, with Grafana's variables
// replaced by values, as a recording rule.
func TestDashboardPromQL(t *testing.T) {
	d := readDashboard(t)
	r := strings.NewReplacer("$__rate_interval", "1m", "$__range", "3h", "$__interval", "15s", "$instance", ".*")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:panel_%d_%s", p.ID, tg.RefID), Expr: r.Replace(tg.Expr)})
		}
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", path)
}

// TestMetricsDocumented checks that docs/metrics.md and docs/runbook.md name every metric.
func TestMetricsDocumented(t *testing.T) {
	for _, doc := range []string{metricsDoc, runbook} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for m := range knownMetrics {
			if !bytes.Contains(b, []byte("`"+m+"`")) {
				t.Errorf("%s does not describe `%s`", doc, m)
			}
		}
	}
}

// isKnownSeries reports whether name is a series fraudpipe exports: a metric's own name,
// a histogram's _bucket, _sum or _count, or Prometheus' up.
func isKnownSeries(name string) bool {
	if name == "up" {
		return true
	}
	if _, ok := knownMetrics[name]; ok {
		return true
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok {
			if kind, known := knownMetrics[base]; known && kind == histogram {
				return true
			}
		}
	}
	return false
}

var labelValuesRe = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// labelValuesMetric returns the selector of a Grafana label_values(selector, label) query.
func labelValuesMetric(def string) string {
	if m := labelValuesRe.FindStringSubmatch(def); m != nil {
		return m[1]
	}
	return def
}

// promqlKeywords are words of PromQL that are not metric names, even when no parenthesis
// follows them: operators, modifiers, and the aggregations (sum by (x) (...)).
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true,
	"without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true, "atan2": true, "start": true, "end": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
}

// labelListWords are followed by a parenthesised list of label names.
var labelListWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames returns the metric names a PromQL expression (which may hold Grafana
// variables) selects, sorted and without repeats. It reads identifiers that are not
// functions, aggregations or keywords, skipping strings, label matchers, ranges, label
// lists and variables: a lexer, not a parser, which is enough to catch a misspelt name.
func metricNames(expr string) ([]string, error) {
	set := map[string]bool{}
	s := []rune(expr)
	skipSpace := func(i int) int {
		for i < len(s) && unicode.IsSpace(s[i]) {
			i++
		}
		return i
	}
	// skipString returns the index after the string that starts at i.
	skipString := func(i int) (int, error) {
		q := s[i]
		for k := i + 1; k < len(s); k++ {
			switch {
			case s[k] == q:
				return k + 1, nil
			case s[k] == '\\' && q != '`':
				k++
			}
		}
		return 0, fmt.Errorf("unterminated string in %q", expr)
	}
	// skipTo returns the index after the bracket closing the one at i, minding strings.
	skipTo := func(i int, open, close rune) (int, error) {
		depth := 0
		for j := i; j < len(s); j++ {
			switch c := s[j]; {
			case c == '"' || c == '\'' || c == '`':
				end, err := skipString(j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("unbalanced %c in %q", open, expr)
	}
	isIdentStart := func(c rune) bool { return c == '_' || c == ':' || unicode.IsLetter(c) }
	isIdent := func(c rune) bool { return isIdentStart(c) || unicode.IsDigit(c) }
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '#': // a comment runs to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			j, err := skipTo(i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '$': // a Grafana variable: $name, ${name}, $__rate_interval
			i++
			if i < len(s) && s[i] == '{' {
				j, err := skipTo(i, '{', '}')
				if err != nil {
					return nil, err
				}
				i = j
				continue
			}
			for i < len(s) && isIdent(s[i]) {
				i++
			}
		case unicode.IsDigit(c) || c == '.': // numbers and durations: 0.99, 1e3, 5m, 0x1f
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := string(s[i:j])
			k := skipSpace(j)
			switch {
			case labelListWords[strings.ToLower(word)]:
				if k < len(s) && s[k] == '(' {
					end, err := skipTo(k, '(', ')')
					if err != nil {
						return nil, err
					}
					j = end
				}
			case promqlKeywords[strings.ToLower(word)]:
			case k < len(s) && s[k] == '(':
				// a function or an aggregation: sum, rate, histogram_quantile, ...
			default:
				set[word] = true
			}
			i = j
		default:
			i++
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up == 0`, []string{"up"}},
		{`sum by (outcome) (rate(fraudpipe_engine_decisions_total{instance=~"$instance", outcome!="x{y}"}[$__rate_interval]))`, []string{"fraudpipe_engine_decisions_total"}},
		{`histogram_quantile(0.99, sum by (stage, le) (rate(fraudpipe_stage_duration_seconds_bucket[5m])))`, []string{"fraudpipe_stage_duration_seconds_bucket"}},
		{`a / ignoring (outcome) group_left () sum(b offset 5m) and on (job, instance) c > bool 1e3`, []string{"a", "b", "c"}},
		{`sum(rate(x[1m])) without (instance) or vector(0)`, []string{"x"}},
		{`time() - fraudpipe:decline_share:rate15m > 3 * 10 # a comment naming nothing_real`, []string{"fraudpipe:decline_share:rate15m"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`m{a="x\"} n"} + on (b) group_right n{c='}'}`, []string{"m", "n"}},
		{`topk(10, sum by (reason) (increase(r_total{instance=~"${instance}"}[$__range])))`, []string{"r_total"}},
	} {
		got, err := metricNames(tc.expr)
		if err != nil {
			t.Errorf("metricNames(%q): %v", tc.expr, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`sum(x{a="b)`, `rate(x[5m)`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q): no error for a broken expression", bad)
		}
	}
}

// runbookAnchors returns the anchors GitHub gives the headings of docs/runbook.md.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(runbook)
	if err != nil {
		t.Fatalf("read the runbook: %v", err)
	}
	return headingAnchors(string(b))
}

// headingAnchors returns the anchors of a Markdown document's headings, the way GitHub
// makes them: lower case, spaces to hyphens, punctuation other than - and _ dropped, and
// -1, -2, ... after a repeated one. Lines inside fenced code blocks are not headings.
func headingAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	counts := map[string]int{}
	fenced := false
	for line := range strings.SplitSeq(md, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimLeft(line, "#")
		if len(line)-len(text) > 6 || (text != "" && text[0] != ' ') {
			continue
		}
		text = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(text), "#"))
		var slug strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				slug.WriteRune(r)
			case r == ' ':
				slug.WriteByte('-')
			}
		}
		a := slug.String()
		if n := counts[a]; n > 0 {
			counts[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			counts[a] = 1
		}
		anchors[a] = true
	}
	return anchors
}

// TestRunbookLinks checks that the runbook's links within itself lead to its headings.
func TestRunbookLinks(t *testing.T) {
	b, err := os.ReadFile(runbook)
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(string(b))
	links := regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(string(b), -1)
	if len(links) == 0 {
		t.Fatal("no link within the runbook found")
	}
	for _, m := range links {
		if !anchors[m[1]] {
			t.Errorf("docs/runbook.md links to #%s, which is no heading of it", m[1])
		}
	}
}

func TestHeadingAnchors(t *testing.T) {
	md := "# Runbook\n\n## Alerts\n\n### FraudpipeDown\n\n```sh\n# not a heading\n```\n\n## Restore from a checkpoint (`run --from-checkpoint`)\n\n## Alerts\n"
	got := sortedKeys(headingAnchors(md))
	want := []string{"alerts", "alerts-1", "fraudpipedown", "restore-from-a-checkpoint-run---from-checkpoint", "runbook"}
	if !slices.Equal(got, want) {
		t.Errorf("headingAnchors = %q, want %q", got, want)
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
