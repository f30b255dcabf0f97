package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplesLint checks that every config in examples/ passes fraudpipe lint, with the
// secrets they name set in the environment as an operator would.
func TestExamplesLint(t *testing.T) {
	for k, v := range map[string]string{
		"PGPASSWORD": "x", "OPENSEARCH_PASSWORD": "x", "ALERT_WEBHOOK_SECRET": "x", "NATS_TOKEN": "x",
		"FRAUDPIPE_JWT_SECRET": "0123456789abcdef0123456789abcdef",
	} {
		t.Setenv(k, v)
	}
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		code, stdout, stderr := fraudpipe(t, "lint", "--config", f)
		if code != 0 || !strings.HasSuffix(strings.TrimSpace(stdout), ": ok") {
			t.Errorf("lint %s: exit %d\n%s%s", f, code, stdout, stderr)
		}
	}
}
