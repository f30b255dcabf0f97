package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/ledger"
)

// TestCrashRecovery runs the real binary over a generated stream of 200k transactions with
// checkpoints, kills it with SIGKILL at several random points, restarts it each time, and
// then checks what a bank would: every transaction has exactly one decision, every approved
// one is in the ledger exactly once, the ledger's invariants hold, and every decision's
// features equal those of a run that was never interrupted.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and replays 200k transactions several times")
	}
	dir := t.TempDir()
	bin := buildBinary(t)
	input := filepath.Join(dir, "in.ndjson")
	if code, _, stderr := fraudpipe(t, "gen", "--seed", "11", "--customers", "2000", "--terminals", "4000", "--days", "52", "--out", input); code != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	inputIDs := ids(t, input)
	if len(inputIDs) < 200_000 {
		t.Fatalf("stream of %d transactions, want at least 200k", len(inputIDs))
	}
	cfg := filepath.Join(dir, "run.yaml")
	os.WriteFile(cfg, []byte(`source: {type: file, path: in.ndjson}
ledger: {path: ledger.db}
output:
  decisions: {path: decisions.ndjson}
  dead_letters: {path: dead.ndjson}
  features: true
checkpoint: {interval: 150ms, keep: 2}
`), 0o644)
	// The uninterrupted run, in-process.
	clean := filepath.Join(dir, "clean.ndjson")
	if code, _, stderr := fraudpipe(t, "replay", "--config", cfg, "--input", input, "--out", clean); code != 0 {
		t.Fatalf("replay: %s", stderr)
	}
	fullSize := fileSize(t, clean)
	decisions := filepath.Join(dir, "decisions.ndjson")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var kills []string
	for attempt := 0; ; attempt++ {
		if attempt > 20 {
			t.Fatal("no complete run after 20 attempts")
		}
		cmd := exec.Command(bin, "run", "--config", cfg)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Kill at a random amount of output, a fresh point each time, four times.
		var target int64 = -1
		if len(kills) < 4 {
			target = int64(float64(fullSize) * (0.1 + 0.8*rng.Float64()))
		}
		err := waitOrKill(t, cmd, done, decisions, target)
		if err == errKilled {
			kills = append(kills, fmt.Sprintf("at ~%d bytes", target))
			continue
		}
		if err != nil {
			t.Fatalf("run %d: %v\n%s", attempt, err, stderr.String())
		}
		break
	}
	t.Logf("killed %d times (%s), then ran to the end", len(kills), strings.Join(kills, ", "))
	if len(kills) < 2 {
		t.Fatalf("only %d kills landed before the run finished", len(kills))
	}

	got := readDecisions(t, decisions)
	if len(got) != len(inputIDs) {
		t.Fatalf("%d decisions for %d transactions", len(got), len(inputIDs))
	}
	approved := 0
	for i, d := range got {
		if d.ID != inputIDs[i] {
			t.Fatalf("decision %d is for %s, want %s (each once, in input order)", i, d.ID, inputIDs[i])
		}
		if d.Decision == "approve" {
			approved++
			if d.Ledger != "posted" && d.Ledger != "duplicate" {
				t.Fatalf("approved but ledger %q: %+v", d.Ledger, d)
			}
		}
	}
	l, err := ledger.OpenSQLite(filepath.Join(dir, "ledger.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Verify(context.Background()); err != nil {
		t.Fatalf("ledger invariants after crashes: %v", err)
	}
	st, err := l.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != int64(approved) {
		t.Fatalf("ledger holds %d entries for %d approved transactions", st.Entries, approved)
	}

	want := readDecisions(t, clean)
	for i := range want {
		w, g := want[i], got[i]
		if w.Decision != g.Decision || string(w.Features) != string(g.Features) || strings.Join(w.Reasons, ",") != strings.Join(g.Reasons, ",") {
			t.Fatalf("decision %d (%s) differs from the uninterrupted run:\ngot  %+v\nwant %+v", i, w.ID, g, w)
		}
	}
}

var errKilled = fmt.Errorf("killed")

// waitOrKill waits for the process to exit, or SIGKILLs it once the decisions file holds
// target bytes (target < 0: never). It polls the file with a deadline.
func waitOrKill(t *testing.T, cmd *exec.Cmd, done <-chan error, decisions string, target int64) error {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return err
		default:
		}
		if target >= 0 {
			if fi, err := os.Stat(decisions); err == nil && fi.Size() >= target {
				cmd.Process.Signal(syscall.SIGKILL)
				<-done
				return errKilled
			}
		}
		time.Sleep(2 * time.Millisecond) // polling interval
	}
	cmd.Process.Kill()
	return fmt.Errorf("run did not finish within 3 minutes")
}

type decisionLine struct {
	ID       string
	Decision string
	Reasons  []string
	Ledger   string
	Features json.RawMessage
}

func readDecisions(t *testing.T, path string) []decisionLine {
	t.Helper()
	var out []decisionLine
	for i, l := range lines(t, path) {
		var d decisionLine
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("%s line %d: %v", path, i+1, err)
		}
		out = append(out, d)
	}
	return out
}

func ids(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, l := range lines(t, path) {
		var tx struct{ ID string }
		json.Unmarshal([]byte(l), &tx)
		out = append(out, tx.ID)
	}
	return out
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// buildBinary builds fraudpipe once per test run, for tests that run it as a process.
func buildBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fraudpipe-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "fraudpipe")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestSIGTERMDrainsAndCheckpoints stops a run with SIGTERM: it must exit 0 after a final
// checkpoint that covers exactly the decisions written, and a restart must finish the
// stream with no decision lost or repeated.
func TestSIGTERMDrainsAndCheckpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	input := filepath.Join(dir, "in.ndjson")
	if code, _, stderr := fraudpipe(t, "gen", "--seed", "3", "--customers", "2000", "--terminals", "4000", "--days", "30", "--out", input); code != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	inputIDs := ids(t, input)
	cfg := filepath.Join(dir, "run.yaml")
	os.WriteFile(cfg, []byte("source: {type: file, path: in.ndjson}\nledger: {path: ledger.db}\noutput:\n  decisions: {path: decisions.ndjson}\ncheckpoint: {interval: 1h}\n"), 0o644)
	decisions := filepath.Join(dir, "decisions.ndjson")

	cmd := exec.Command(bin, "run", "--config", cfg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		if fi, err := os.Stat(decisions); err == nil && fi.Size() > 1<<20 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run ended before it could be stopped: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no output within a minute")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Fatalf("run after SIGTERM: %v\n%s", err, stderr.String())
	}
	written := len(lines(t, decisions))
	if written == 0 || written == len(inputIDs) {
		t.Fatalf("%d of %d decided before the stop: the test did not stop it midway", written, len(inputIDs))
	}
	code, out, errOut := fraudpipe(t, "checkpoint", "inspect", filepath.Join(dir, "checkpoints"))
	if code != 0 || !strings.Contains(out, fmt.Sprintf(`"next_seq": %d,`, written+1)) { // decisions are numbered from 1
		t.Fatalf("final checkpoint does not cover the %d decisions written: %s%s", written, out, errOut)
	}
	// Resume and finish.
	if out, err := exec.Command(bin, "run", "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out)
	}
	got := readDecisions(t, decisions)
	if len(got) != len(inputIDs) {
		t.Fatalf("%d decisions for %d transactions after stop and resume", len(got), len(inputIDs))
	}
	for i := range got {
		if got[i].ID != inputIDs[i] {
			t.Fatalf("decision %d is for %s, want %s", i, got[i].ID, inputIDs[i])
		}
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// TestAdminEndpoints runs the binary with the admin endpoints on and reads them as
// Prometheus and a load balancer would.
func TestAdminEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	if code, _, stderr := fraudpipe(t, "gen", "--seed", "4", "--customers", "2000", "--terminals", "4000", "--days", "60", "--out", filepath.Join(dir, "in.ndjson")); code != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "run.yaml")
	os.WriteFile(cfg, []byte("source: {type: file, path: in.ndjson}\nledger: {path: ledger.db}\noutput:\n  decisions: {path: decisions.ndjson}\nadmin: {listen: \""+addr+"\"}\n"), 0o644)
	cmd := exec.Command(bin, "run", "--config", cfg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(time.Minute)
	var metrics string
	for {
		code, body := get("/metrics")
		if code == 200 && strings.Contains(body, "fraudpipe_engine_events_total ") && !strings.Contains(body, "fraudpipe_engine_events_total 0\n") {
			metrics = body
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no events counted on /metrics within a minute: %d %.300s\n%s", code, body, stderr.String())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	for _, want := range []string{`fraudpipe_engine_decisions_total{outcome="approve"}`, "fraudpipe_engine_watermark_seconds", "fraudpipe_ledger_commit_duration_seconds_bucket", "fraudpipe_state_cards ", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// promtool lints a real scrape: names, types, help texts, units.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: run scripts/install-promtool (make test does)")
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(metrics)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz while running: %d %s", code, body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
}
