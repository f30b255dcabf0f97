package enrich

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func fileStats(r *rig, name string) FileStats {
	for _, fs := range r.f.Stats().Files {
		if fs.Name == name {
			return fs
		}
	}
	return FileStats{}
}

func TestReloadSwapsDataAndKeepsItOnErrors(t *testing.T) {
	dir := t.TempDir()
	countries := writeFile(t, dir, "countries.csv", "country,risk\nFR,0.1\n")
	ips := writeFile(t, dir, "deny-ips.txt", "198.51.100.0/24\n")
	r := newRig(t, Config{Countries: countries, Deny: ListFiles{IPs: ips}, ReloadEvery: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.f.Start(ctx)

	// Scoring runs on this goroutine while the loop reloads: the race detector watches.
	risk := func() float64 {
		return r.score(txn(t, "c", "2026-11-25T10:00:00Z", country("FR")), false)["country_risk"]
	}
	denied := func(addr string) bool {
		return r.score(txn(t, "c", "2026-11-25T10:00:00Z", ip(addr)), false)["deny_listed"] == 1
	}
	if risk() != 0.1 || !denied("198.51.100.1") || denied("2001:db8::1") {
		t.Fatal("the first load is not in use")
	}

	// A new file renamed over the old one.
	replaceFile(t, countries, "country,risk\nFR,0.7\n")
	waitFor(t, "the new country risk", func() bool { return risk() == 0.7 })
	if fs := fileStats(r, "countries"); fs.Reloads != 1 || fs.Entries != 1 || fs.LastError != "" {
		t.Errorf("after a reload: %+v", fs)
	}

	// The same file rewritten in place with a bad row: the old data stays, the error is kept.
	if err := os.WriteFile(countries, []byte("country,risk\nFR,0.5\nGB,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// (Written in place, the file may be seen empty for a moment: that too fails, and the
	// next poll sees the finished file.)
	waitFor(t, "the failed reload naming the line", func() bool {
		return strings.Contains(fileStats(r, "countries").LastError, "countries.csv:3: risk \"2\" is not a number in [0, 1]")
	})
	failures := fileStats(r, "countries").Failures
	if got := risk(); got != 0.7 {
		t.Errorf("country risk %v after a broken reload, want the old 0.7", got)
	}

	// Fixed: reloaded, and the error cleared.
	replaceFile(t, countries, "country,risk\nFR,0.4\nGB,0.2\n")
	waitFor(t, "the fixed file", func() bool { return risk() == 0.4 })
	if fs := fileStats(r, "countries"); fs.Reloads != 2 || fs.Failures != failures || fs.LastError != "" || fs.Entries != 2 {
		t.Errorf("after the fix: %+v", fs)
	}

	// Removed: reported once, the data stays; back: the error clears.
	if err := os.Rename(countries, countries+".away"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missing file reported", func() bool { return fileStats(r, "countries").Failures == failures+1 })
	if fs := fileStats(r, "countries"); !strings.Contains(fs.LastError, "no such file") || risk() != 0.4 {
		t.Errorf("missing file: %+v, risk %v", fs, risk())
	}
	if err := os.Rename(countries+".away", countries); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file back", func() bool { return fileStats(r, "countries").LastError == "" })
	if fs := fileStats(r, "countries"); fs.Failures != failures+1 || fs.Reloads != 2 {
		t.Errorf("the same file back: %+v", fs)
	}

	// Lists reload the same way.
	replaceFile(t, ips, "198.51.100.0/24\n2001:db8::/32\n")
	waitFor(t, "the new IP list", func() bool { return denied("2001:db8::1") })

	r.f.Close()
	r.f.Close() // twice is harmless
}

func TestReloadNowWithoutTheLoop(t *testing.T) {
	dir := t.TempDir()
	cards := writeFile(t, dir, "deny-cards.txt", "c-1\n")
	r := newRig(t, Config{Deny: ListFiles{Cards: cards}})
	replaceFile(t, cards, "c-1\nc-2\n")
	r.f.Reload()
	if got := r.score(txn(t, "c-2", "2026-11-25T10:00:00Z"), false)["deny_listed"]; got != 1 {
		t.Errorf("deny_listed %v after Reload, want 1", got)
	}
	r.f.Reload() // unchanged: nothing to do
	if fs := fileStats(r, "deny.cards"); fs.Reloads != 1 || fs.Entries != 2 {
		t.Errorf("stats %+v", fs)
	}
}
