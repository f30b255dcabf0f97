package main

import (
	"bytes"
	"fmt"
	"io"
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
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRunHTTPSource runs the decision API end to end: run with source type http, a
// transaction posted gets its decision synchronously, the same id again gets the same
// answer, SIGTERM drains, and the decisions file holds the transaction once.
func TestRunHTTPSource(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "api.yaml")
	os.WriteFile(cfg, []byte("source:\n  type: http\n  http: {listen: \""+addr+"\"}\nledger: {path: ledger.db, max_delay: 1ms}\noutput:\n  decisions: {path: decisions.ndjson}\ncheckpoint: {dir: ckpt, interval: 1s}\n"), 0o644)
	cmd := exec.Command(bin, "run", "--config", cfg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	tx := `{"id":"api-1","ts":"2026-11-25T10:00:00Z","card_id":"c1","account_id":"a1","merchant_id":"m1","amount":"12.50","currency":"EUR"}`
	post := func(body string) (int, string) {
		resp, err := http.Post("http://"+addr+"/v1/transactions", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(bytes.TrimSpace(b))
	}
	var code int
	var first string
	for deadline := time.Now().Add(time.Minute); ; {
		if code, first = post(tx); code != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling interval while the server starts
	}
	if code != 200 || !strings.Contains(first, `"id":"api-1"`) || !strings.Contains(first, `"decision":"approve"`) || !strings.Contains(first, `"ledger":"posted"`) {
		t.Fatalf("POST = %d %s\n%s", code, first, stderr.String())
	}
	if code, again := post(tx); code != 200 || again != first {
		t.Errorf("the same id again = %d %s, want %s", code, again, first)
	}
	if code, body := post(`{"id":"api-2"}`); code != 400 || !strings.Contains(body, "missing_field") {
		t.Errorf("invalid transaction = %d %s", code, body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	got := lines(t, filepath.Join(dir, "decisions.ndjson"))
	if len(got) != 1 || got[0] != first {
		t.Errorf("decisions file = %q, want the one decision %s", got, first)
	}
	if _, err := os.Stat(filepath.Join(dir, "ckpt")); err != nil {
		t.Errorf("no checkpoint folder after SIGTERM: %v", err)
	}
}

// syncBuffer is a buffer a process writes to while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls until the process has written want.
func waitFor(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(out.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("no %q after a minute:\n%s", want, out.String())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// TestRunNATSPublishKillRestart is the live path end to end: run with the embedded NATS
// server, publish a generated stream into it, SIGKILL the pipeline mid-stream, restart it
// on the same store, and every transaction ends decided exactly once, the ledger intact.
func TestRunNATSPublishKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	input := filepath.Join(dir, "in.ndjson")
	if code, _, stderr := fraudpipe(t, "gen", "--seed", "5", "--customers", "1000", "--terminals", "2000", "--days", "30", "--out", input); code != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	inputIDs := ids(t, input)
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "nats.yaml")
	os.WriteFile(cfg, []byte("source:\n  type: nats\n  nats: {embedded: true, listen: \""+addr+"\", store_dir: nats, ack_wait: 30s}\n"+
		"ledger: {path: ledger.db}\noutput:\n  decisions: {path: decisions.ndjson}\ncheckpoint: {dir: ckpt, interval: 200ms}\n"), 0o644)
	decisions := filepath.Join(dir, "decisions.ndjson")
	start := func() (*exec.Cmd, chan error, *syncBuffer) {
		cmd := exec.Command(bin, "run", "--config", cfg)
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		waitFor(t, stderr, "embedded NATS server listening")
		return cmd, done, stderr
	}
	cmd, done, stderr := start()
	if code, _, errOut := fraudpipe(t, "publish", "--nats", "nats://"+addr, "--input", input); code != 0 {
		cmd.Process.Kill()
		t.Fatalf("publish: %s\n%s", errOut, stderr.String())
	}
	// Kill once the decisions take a tenth of the input's size: early in the stream.
	if err := waitOrKill(t, cmd, done, decisions, fileSize(t, input)/10); err != errKilled {
		t.Fatalf("first run: %v\n%s", err, stderr.String())
	}
	cmd, done, stderr = start()
	defer cmd.Process.Kill()
	for deadline := time.Now().Add(3 * time.Minute); ; {
		if n := len(lines(t, decisions)); n >= len(inputIDs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart, %d of %d decided within 3 minutes\n%s", len(lines(t, decisions)), len(inputIDs), stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Fatalf("second run: %v\n%s", err, stderr.String())
	}
	got := readDecisions(t, decisions)
	if len(got) != len(inputIDs) {
		t.Fatalf("%d decisions for %d transactions", len(got), len(inputIDs))
	}
	seen := map[string]bool{}
	for _, d := range got {
		if seen[d.ID] {
			t.Fatalf("%s decided twice", d.ID)
		}
		seen[d.ID] = true
	}
	for _, id := range inputIDs {
		if !seen[id] {
			t.Fatalf("%s never decided", id)
		}
	}
	if code, out, errOut := fraudpipe(t, "ledger", "verify", "--ledger", filepath.Join(dir, "ledger.db")); code != 0 {
		t.Fatalf("ledger verify: %s %s", out, errOut)
	}
}

// TestDemo runs fraudpipe demo for a few seconds with the live view as lines: payments flow
// through every stage (published, decided, posted to the ledger, archived), and the demo
// stops cleanly and says where everything went.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "demo", "--dir", dir, "--duration", "6s", "--lines", "--rate", "3000", "--customers", "500")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	text := string(out)
	var last string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "t=") {
			last = l
		}
	}
	field := func(name string) float64 {
		for _, f := range strings.Fields(last) {
			if v, ok := strings.CutPrefix(f, name+"="); ok {
				var x float64
				fmt.Sscan(strings.TrimSuffix(v, "/s"), &x)
				return x
			}
		}
		t.Fatalf("no %s in the live view line %q", name, last)
		return 0
	}
	if field("published") < 1000 || field("events") < 1000 || field("approve") < 1000 || field("posted") < 1000 {
		t.Errorf("too little flowed through the demo: %s\n%s", last, text)
	}
	for _, want := range []string{"decisions:", "ledger:", "archive:", "alerts:", "checkpoints:"} {
		if !strings.Contains(text, want) {
			t.Errorf("the summary lacks %q:\n%s", want, text)
		}
	}
	runs, _ := filepath.Glob(filepath.Join(dir, "*", "decisions.ndjson"))
	if len(runs) != 1 || len(lines(t, runs[0])) < 1000 {
		t.Fatalf("decisions files %v", runs)
	}
	runDir := filepath.Dir(runs[0])
	if code, out, errOut := fraudpipe(t, "ledger", "verify", "--ledger", filepath.Join(runDir, "ledger.db")); code != 0 {
		t.Errorf("ledger verify: %s %s", out, errOut)
	}
	if code, _, errOut := fraudpipe(t, "lint", "--config", filepath.Join(runDir, "demo.yaml")); code != 0 {
		t.Errorf("the demo's config does not lint: %s", errOut)
	}
}

// TestRunReloadsRules changes the rule file of a running pipeline (the decision API, so
// each answer shows the rules in force): SIGHUP puts the new rules in force at once, and a
// broken file keeps them and is logged with its line.
func TestRunReloadsRules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	rulesPath := filepath.Join(dir, "rules.yaml")
	review := "rules:\n  - id: big\n    description: a big payment\n    expr: tx.amount > 100.0\n    action: review\n"
	os.WriteFile(rulesPath, []byte(review), 0o644)
	cfg := filepath.Join(dir, "api.yaml")
	os.WriteFile(cfg, []byte("source:\n  type: http\n  http: {listen: \""+addr+"\"}\nscoring:\n  model: {enabled: false}\n  rules: {file: rules.yaml, reload_every: 0s}\nledger: {driver: none}\ncheckpoint: {enabled: false}\n"), 0o644)
	cmd := exec.Command(bin, "run", "--config", cfg)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	n := 0
	decide := func() string {
		n++
		tx := fmt.Sprintf(`{"id":"r-%d","ts":"2026-11-25T10:00:00Z","card_id":"c%d","account_id":"a1","merchant_id":"m1","amount":"500.00","currency":"EUR"}`, n, n)
		for deadline := time.Now().Add(time.Minute); ; {
			resp, err := http.Post("http://"+addr+"/v1/transactions", "application/json", strings.NewReader(tx))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST: %v\n%s", err, stderr.String())
			}
			time.Sleep(10 * time.Millisecond) // polling interval while the server starts
		}
	}
	if d := decide(); !strings.Contains(d, `"decision":"review"`) {
		t.Fatalf("before the change: %s", d)
	}
	os.WriteFile(rulesPath, []byte(strings.Replace(review, "action: review", "action: decline", 1)), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, stderr, "rules reloaded")
	if d := decide(); !strings.Contains(d, `"decision":"decline"`) {
		t.Fatalf("after SIGHUP: %s", d)
	}
	os.WriteFile(rulesPath, []byte("rules:\n  - id: big\n    expr: tx.amount >\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, stderr, "rule file not reloaded")
	if d := decide(); !strings.Contains(d, `"decision":"decline"`) {
		t.Fatalf("after a broken file: %s", d)
	}
	if !strings.Contains(stderr.String(), "rules.yaml: line 2: rule big: action is required") {
		t.Errorf("the log does not say where the file is broken:\n%s", stderr.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}
