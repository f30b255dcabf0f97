package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/ledger"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const repo = "../.."

// fraudpipe runs the command in-process and returns its exit code and output.
func fraudpipe(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = runMain(args, &o, &e)
	return code, o.String(), e.String()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayGolden replays recorded streams and compares the decisions with golden files
// (go test ./cmd/fraudpipe -update rewrites them): small is a generated stream with every
// feature in the output; late exercises the watermark and lateness (testdata/streams/late.md).
func TestReplayGolden(t *testing.T) {
	for _, tc := range []struct{ name, config, summary string }{
		{"small", "golden.yaml", "replay: 1112 events"},
		{"late", "late.yaml", "late:         3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "decisions.ndjson")
			input := filepath.Join(repo, "testdata/streams", tc.name+".ndjson")
			code, _, stderr := fraudpipe(t, "replay", "--config", filepath.Join(repo, "testdata/configs", tc.config), "--input", input, "--out", out)
			if code != 0 {
				t.Fatalf("replay exited %d: %s", code, stderr)
			}
			got := readFile(t, out)
			golden := filepath.Join(repo, "testdata/golden", tc.name+".decisions.ndjson")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := readFile(t, golden)
			if !bytes.Equal(got, want) {
				gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
				for i := range min(len(gl), len(wl)) {
					if gl[i] != wl[i] {
						t.Fatalf("decisions differ from %s at line %d (go test ./cmd/fraudpipe -update to accept):\ngot  %s\nwant %s", golden, i+1, gl[i], wl[i])
					}
				}
				t.Fatalf("decisions differ from %s: %d lines, want %d", golden, len(gl), len(wl))
			}
			if !strings.Contains(stderr, tc.summary) || !strings.Contains(stderr, "dead letters: 0") {
				t.Errorf("summary lacks %q: %s", tc.summary, stderr)
			}
		})
	}
}

// TestReplayDeterministic replays the same stream with different parallelism, from a
// gzip copy and from a plain file, and expects byte-identical decisions.
func TestReplayDeterministic(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(repo, "testdata/streams/small.ndjson")
	gz := filepath.Join(dir, "small.ndjson.gz")
	writeGzip(t, gz, readFile(t, input))
	var first []byte
	for i, run := range []struct{ partitions, input string }{{"1", input}, {"4", gz}, {"7", input}} {
		cfg := filepath.Join(dir, "c.yaml")
		os.WriteFile(cfg, []byte("engine:\n  partitions: "+run.partitions+"\n  batch_size: 50\n"), 0o644)
		out := filepath.Join(dir, "d.ndjson")
		if code, _, stderr := fraudpipe(t, "replay", "--config", cfg, "--input", run.input, "--out", out); code != 0 {
			t.Fatalf("replay exited %d: %s", code, stderr)
		}
		got := readFile(t, out)
		if i == 0 {
			first = got
		} else if !bytes.Equal(first, got) {
			t.Fatalf("partitions %s: decisions differ from partitions 1", run.partitions)
		}
	}
}

// TestReplayBadInput mixes valid lines with every kind of bad one: the valid ones are
// decided, each bad one is a dead letter with the right reason, and the totals add up.
func TestReplayBadInput(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "bad.ndjson")
	stream := readFile(t, filepath.Join(repo, "testdata/streams/bad.ndjson"))
	oversize := `{"id":"huge","note":"` + strings.Repeat("x", 100<<10) + `"}` + "\n"
	stream = append(stream, oversize...)
	stream = append(stream, `{"id":"ok-last","ts":"2026-11-25T10:00:20Z","card_id":"card-9","account_id":"acct-9","merchant_id":"m-9","amount":"3.00","currency":"EUR"}`+"\n"...)
	os.WriteFile(input, stream, 0o644)
	var expected []string
	for _, l := range strings.Split(string(readFile(t, filepath.Join(repo, "testdata/streams/bad.expected"))), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			expected = append(expected, l)
		}
	}
	expected = append(expected, "too_long", "ok")

	out := filepath.Join(dir, "decisions.ndjson")
	code, _, stderr := fraudpipe(t, "replay", "--input", input, "--out", out)
	if code != 0 {
		t.Fatalf("replay exited %d: %s", code, stderr)
	}
	decisions := lines(t, out)
	dead := lines(t, filepath.Join(dir, "decisions.dead.ndjson"))
	var wantIDs, wantReasons []string
	for _, e := range expected {
		if e == "ok" {
			wantIDs = append(wantIDs, "")
		} else {
			wantReasons = append(wantReasons, e)
		}
	}
	if len(decisions) != len(wantIDs) || len(dead) != len(wantReasons) {
		t.Fatalf("%d decisions and %d dead letters, want %d and %d\n%s", len(decisions), len(dead), len(wantIDs), len(wantReasons), stderr)
	}
	for i, d := range dead {
		var dl struct {
			Raw, Reason, Source string
			Offset              *int64
			Truncated           bool
		}
		if err := json.Unmarshal([]byte(d), &dl); err != nil {
			t.Fatalf("dead letter %d is not JSON: %v", i, err)
		}
		if !strings.HasPrefix(dl.Reason, wantReasons[i]+": ") {
			t.Errorf("dead letter %d: reason %q, want %s", i, dl.Reason, wantReasons[i])
		}
		if dl.Raw == "" || dl.Source != input || dl.Offset == nil {
			t.Errorf("dead letter %d lacks raw, source or offset: %s", i, d)
		}
		if !bytes.Contains(stream, []byte(dl.Raw)) || !bytes.Equal(stream[*dl.Offset:*dl.Offset+int64(len(dl.Raw))], []byte(dl.Raw)) {
			t.Errorf("dead letter %d: raw is not the input at offset %d", i, *dl.Offset)
		}
		if wantReasons[i] == "too_long" && !dl.Truncated {
			t.Errorf("oversize line not marked truncated")
		}
	}
	summary := []string{
		fmt.Sprintf("replay: %d events", len(expected)),
		fmt.Sprintf("decided:      %d", len(wantIDs)),
		fmt.Sprintf("dead letters: %d", len(wantReasons)),
		"duplicate_id 1", "duplicates:   1",
	}
	for _, want := range summary {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	badCfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badCfg, []byte("engine:\n  partitions: 2\noutput:\n  decisions:\n    pth: x.ndjson\n"), 0o644)
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{}, 2, "Usage"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"replay", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"replay", "--out", "x"}, 2, "--input is required"},
		{[]string{"replay", "--input", filepath.Join(dir, "missing.ndjson"), "--out", filepath.Join(dir, "o")}, 1, "no such file"},
		{[]string{"replay", "--config", badCfg, "--input", "-", "--out", "-"}, 1, "line 5: field pth not recognized"},
		{[]string{"lint", "--config", badCfg}, 1, "line 5"},
		{[]string{"gen", "--days", "0", "--out", "-"}, 2, "must be positive"},
		{[]string{"run"}, 2, "--config is required"},
	}
	for _, tt := range tests {
		code, stdout, stderr := fraudpipe(t, tt.args...)
		if code != tt.code || !strings.Contains(stdout+stderr, tt.contains) {
			t.Errorf("fraudpipe %v: exit %d, output %q; want exit %d containing %q", tt.args, code, stdout+stderr, tt.code, tt.contains)
		}
		if tt.code != 0 && len(tt.args) > 0 && tt.args[0] != "lint" && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("fraudpipe %v: error is more than one line: %q", tt.args, stderr)
		}
	}
	for _, c := range []string{"replay", "gen", "lint", "run"} {
		code, stdout, _ := fraudpipe(t, c, "--help")
		if code != 0 || !strings.Contains(stdout, "Usage: fraudpipe "+c) {
			t.Errorf("%s --help: exit %d, %q", c, code, stdout)
		}
	}
}

func TestLintGoodConfig(t *testing.T) {
	code, stdout, stderr := fraudpipe(t, "lint", "--config", filepath.Join(repo, "testdata/configs/golden.yaml"))
	if code != 0 || !strings.Contains(stdout, "ok") {
		t.Errorf("lint: exit %d, %s %s", code, stdout, stderr)
	}
}

func TestGenThenReplay(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "b.ndjson")
	for _, p := range []string{a, b} {
		if code, _, stderr := fraudpipe(t, "gen", "--seed", "5", "--customers", "30", "--terminals", "60", "--days", "5", "--out", p); code != 0 {
			t.Fatalf("gen: %s", stderr)
		}
	}
	if !bytes.Equal(readFile(t, a), readFile(t, b)) {
		t.Fatal("gen with the same seed wrote different streams")
	}
	out := filepath.Join(dir, "d.ndjson")
	code, _, stderr := fraudpipe(t, "replay", "--input", a, "--out", out)
	if code != 0 {
		t.Fatalf("replay: %s", stderr)
	}
	if n, m := len(lines(t, a)), len(lines(t, out)); n != m || n == 0 {
		t.Errorf("%d transactions, %d decisions", n, m)
	}
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestRunFromConfig runs the pipeline that a config describes, with paths relative to the
// config file's folder, and expects the same decisions as replay.
func TestRunFromConfig(t *testing.T) {
	dir := t.TempDir()
	input := readFile(t, filepath.Join(repo, "testdata/streams/small.ndjson"))
	os.WriteFile(filepath.Join(dir, "in.ndjson"), input, 0o644)
	cfg := filepath.Join(dir, "run.yaml")
	os.WriteFile(cfg, []byte(`source:
  type: file
  path: in.ndjson
ledger:
  path: ledger.db
output:
  decisions: {path: decisions.ndjson}
  dead_letters: {path: dead.ndjson}
`), 0o644)
	code, _, stderr := fraudpipe(t, "run", "--config", cfg)
	if code != 0 {
		t.Fatalf("run exited %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger.db")); err != nil {
		t.Errorf("ledger not where the config says: %v", err)
	}
	replayOut := filepath.Join(dir, "replay.ndjson")
	if code, _, stderr := fraudpipe(t, "replay", "--input", filepath.Join(dir, "in.ndjson"), "--out", replayOut); code != 0 {
		t.Fatalf("replay: %s", stderr)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, "decisions.ndjson")), readFile(t, replayOut)) {
		t.Error("run and replay decided differently")
	}
	// Running again over the same ledger: every payment is already posted.
	if code, _, stderr = fraudpipe(t, "run", "--config", cfg); code != 0 {
		t.Fatalf("second run: %s", stderr)
	}
	if !strings.Contains(stderr, "posted 0, rejected 0, duplicate ") {
		t.Errorf("second run over the same ledger posted again:\n%s", stderr)
	}
}

// TestReplayLedgerLimits replays with a small spending limit so that the ledger refuses
// payments, then checks every ledger invariant from the stored entries and that the
// decisions agree with what the ledger holds.
func TestReplayLedgerLimits(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("ledger:\n  default_limit: \"300.00\"\n  batch_size: 64\n"), 0o644)
	out, db := filepath.Join(dir, "d.ndjson"), filepath.Join(dir, "ledger.db")
	code, _, stderr := fraudpipe(t, "replay", "--config", cfg, "--input", filepath.Join(repo, "testdata/streams/small.ndjson"), "--out", out, "--ledger", db)
	if code != 0 {
		t.Fatalf("replay: %s", stderr)
	}
	var posted, rejected int64
	for _, l := range lines(t, out) {
		var d struct {
			Decision, Ledger string
			Reasons          []string
		}
		json.Unmarshal([]byte(l), &d)
		switch d.Ledger {
		case "posted":
			posted++
			if d.Decision != "approve" {
				t.Errorf("posted but %s: %s", d.Decision, l)
			}
		case "rejected":
			rejected++
			if d.Decision != "decline" || d.Reasons[0] != "ledger:insufficient_funds" {
				t.Errorf("rejected without the ledger's reason first: %s", l)
			}
		}
	}
	if rejected == 0 || posted == 0 {
		t.Fatalf("posted %d, rejected %d: the limit did not bite", posted, rejected)
	}
	l, err := ledger.OpenSQLite(db, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("ledger invariants: %v", err)
	}
	st, err := l.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != posted {
		t.Errorf("ledger holds %d entries, decisions say %d posted", st.Entries, posted)
	}
}

func TestRulesTest(t *testing.T) {
	code, stdout, stderr := fraudpipe(t, "rules", "test", filepath.Join(repo, "scorers/rules/testdata/default_test.yaml"))
	if code != 0 || !strings.Contains(stdout, " passed, 0 failed") {
		t.Fatalf("built-in rule tests: exit %d\n%s%s", code, stdout, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad_test.yaml")
	os.WriteFile(bad, []byte("tests:\n  - name: wrong expectation\n    tx: {amount: \"1.00\"}\n    features: {card_count_1h: 9}\n    expect: []\n"), 0o644)
	code, stdout, stderr = fraudpipe(t, "rules", "test", bad)
	if code != 1 || !strings.Contains(stdout, "FAIL wrong expectation (line 2)") || !strings.Contains(stderr, "1 of 1 rule tests failed") {
		t.Errorf("failing rule test: exit %d\n%s%s", code, stdout, stderr)
	}
}
