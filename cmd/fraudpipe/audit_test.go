package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditLog replays a stream with the audit log on, verifies it with fraudpipe audit
// verify, then alters one decision and sees verify name it.
func TestAuditLog(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("output:\n  audit: {path: audit.log}\nledger: {driver: none}\n"), 0o644)
	code, _, stderr := fraudpipe(t, "replay", "--config", cfg, "--input", "../../testdata/streams/small.ndjson", "--out", filepath.Join(dir, "d.ndjson"))
	if code != 0 {
		t.Fatalf("replay: %s", stderr)
	}
	log := filepath.Join(dir, "audit.log")
	n := len(lines(t, filepath.Join(dir, "d.ndjson")))
	code, stdout, stderr := fraudpipe(t, "audit", "verify", log)
	if code != 0 || !strings.HasPrefix(stdout, fmt.Sprintf("ok: %d records, head ", n)) {
		t.Fatalf("audit verify = %d %q %q", code, stdout, stderr)
	}
	data, _ := os.ReadFile(log)
	i := bytes.Index(data, []byte(`"decision":"approve"`))
	if i < 0 {
		t.Fatal("no approved decision in the log")
	}
	tampered := append([]byte(nil), data...)
	copy(tampered[i:], `"decision":"decline"`)
	os.WriteFile(log, tampered, 0o644)
	code, stdout, stderr = fraudpipe(t, "audit", "verify", log)
	if code == 0 || !strings.Contains(stdout+stderr, "record") {
		t.Errorf("audit verify of a tampered log = %d %q %q", code, stdout, stderr)
	}
}
