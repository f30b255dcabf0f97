package audit

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCommand(args ...string) (stdout string, err error) {
	var out, errOut bytes.Buffer
	err = Command(args, &out, &errOut)
	return out.String(), err
}

func TestCommandVerify(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "audit.ndjson")
	b := logBytes(t, 40)
	os.WriteFile(good, b, 0o640)
	lines := splitLines(b)
	head := headOf(lines[39])
	head30 := headOf(lines[29])

	cut := filepath.Join(dir, "cut.ndjson")
	os.WriteFile(cut, joinLines(lines[:35]), 0o640)
	altered := filepath.Join(dir, "altered.ndjson")
	lines[11] = bytes.Replace(bytes.Clone(lines[11]), []byte(`"ts":"2026`), []byte(`"ts":"2025`), 1)
	os.WriteFile(altered, joinLines(lines), 0o640)

	tests := []struct {
		name    string
		args    []string
		out     []string // substrings of stdout
		wantErr func(error) bool
	}{
		{"intact", []string{"verify", good}, []string{"ok: 40 records, head " + head + "\n"}, nil},
		{"intact with its head", []string{"verify", good, "--head", head}, []string{"ok: 40 records", "record 40's"}, nil},
		{"head before the file", []string{"verify", "--head=" + strings.ToUpper(head30), good}, []string{"ok: 40 records", "record 30's"}, nil},
		{"tail cut, head recorded before", []string{"verify", cut, "--head", head},
			[]string{"FAIL: " + cut + ": head " + head + " is not the hash of any of the 35 records", "its 35 records chain correctly"},
			func(err error) bool { return errors.Is(err, ErrNotIntact) }},
		{"record altered", []string{"verify", altered},
			[]string{"FAIL: " + altered + ": line 13 (record 13, transaction tx-000012): prev does not match the hash of record 12", "the 12 records before it are intact"},
			func(err error) bool {
				return errors.Is(err, ErrNotIntact) && strings.Contains(err.Error(), "fails at line 13 (record 13)")
			}},
		{"missing file", []string{"verify", filepath.Join(dir, "nope")}, nil,
			func(err error) bool { return errors.Is(err, os.ErrNotExist) && !errors.Is(err, ErrNotIntact) }},
		{"help", []string{"--help"}, []string{"Usage: fraudpipe audit COMMAND", "verify"},
			func(err error) bool { return errors.Is(err, flag.ErrHelp) }},
		{"verify help", []string{"verify", "--help"}, []string{"Usage: fraudpipe audit verify FILE [--head HEX]", "-head"},
			func(err error) bool { return errors.Is(err, flag.ErrHelp) }},
	}
	usage := func(msg string) func(error) bool {
		return func(err error) bool {
			var ue *UsageError
			return errors.As(err, &ue) && strings.Contains(ue.Msg, msg)
		}
	}
	tests = append(tests, []struct {
		name    string
		args    []string
		out     []string
		wantErr func(error) bool
	}{
		{"no command", nil, nil, usage("missing command")},
		{"unknown command", []string{"check"}, nil, usage(`unknown command "check"`)},
		{"no file", []string{"verify"}, nil, usage("missing FILE")},
		{"two files", []string{"verify", good, cut}, nil, usage("unexpected argument")},
		{"bad head", []string{"verify", good, "--head", "abc"}, nil, usage("--head")},
		{"unknown flag", []string{"verify", good, "--tail"}, nil, usage("tail")},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCommand(tt.args...)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !tt.wantErr(err) {
				t.Errorf("error %v", err)
			}
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
		})
	}
}
