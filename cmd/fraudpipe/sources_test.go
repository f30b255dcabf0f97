package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
