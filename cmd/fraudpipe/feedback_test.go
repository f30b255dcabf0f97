package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReplayWithFeedback replays a generated stream with feedback made from its labels a
// week later, then the same feedback from a file: both give the terminal features values,
// the same decisions, and reverse the confirmed frauds that were posted.
func TestReplayWithFeedback(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.ndjson")
	if code, _, stderr := fraudpipe(t, "gen", "--seed", "3", "--customers", "300", "--terminals", "600", "--days", "20", "--out", input); code != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("output:\n  features: true\nledger:\n  chargebacks: true\n"), 0o644)
	a := filepath.Join(dir, "a.ndjson")
	code, _, stderr := fraudpipe(t, "replay", "--config", cfg, "--input", input, "--feedback-from-labels", "168h", "--out", a)
	if code != 0 {
		t.Fatalf("replay --feedback-from-labels: %s", stderr)
	}
	if !strings.Contains(stderr, "feedback:") || !strings.Contains(stderr, "reversed ") {
		t.Errorf("the summary does not count feedback and chargebacks:\n%s", stderr)
	}
	risky := 0
	for _, l := range lines(t, a) {
		if strings.Contains(l, `"terminal_risk_7d":`) && !strings.Contains(l, `"terminal_risk_7d":0,`) {
			risky++
		}
	}
	if risky == 0 {
		t.Error("no decision saw a terminal risk above 0")
	}
	// The same feedback from a file, merged in event time, gives the same decisions.
	fb := filepath.Join(dir, "fb.ndjson")
	var fbLines []string
	for _, l := range lines(t, input) {
		if strings.Contains(l, `"fraud":true`) {
			var id, ts string
			id = l[strings.Index(l, `"id":"`)+6:]
			id = id[:strings.Index(id, `"`)]
			ts = l[strings.Index(l, `"ts":"`)+6:]
			ts = ts[:strings.Index(ts, `"`)]
			fbLines = append(fbLines, `{"kind":"feedback","id":"`+id+`","ts":"`+weekLater(t, ts)+`","fraud":true}`)
		}
	}
	os.WriteFile(fb, []byte(strings.Join(fbLines, "\n")+"\n"), 0o644)
	b := filepath.Join(dir, "b.ndjson")
	if code, _, stderr := fraudpipe(t, "replay", "--config", cfg, "--input", input, "--feedback", fb, "--out", b); code != 0 {
		t.Fatalf("replay --feedback: %s", stderr)
	}
	if string(readFile(t, a)) != string(readFile(t, b)) {
		t.Error("feedback from a file and from the labels gave different decisions")
	}
	if code, _, stderr := fraudpipe(t, "replay", "--input", input, "--feedback", fb, "--feedback-from-labels", "1h", "--out", b); code == 0 || !strings.Contains(stderr, "exclude each other") {
		t.Errorf("both feedback flags: %d %s", code, stderr)
	}
}

func weekLater(t *testing.T, ts string) string {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Fatal(err)
	}
	return tm.Add(7 * 24 * time.Hour).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
