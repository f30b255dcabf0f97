package main

import (
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	got := progressLine("replay", 50<<20, 200<<20, 10*time.Second)
	for _, want := range []string{"replay [#######", " 25% 50/200 MiB", "5.0 MiB/s", "30s left"} {
		if !strings.Contains(got, want) {
			t.Errorf("progressLine = %q, lacks %q", got, want)
		}
	}
	if got := progressLine("replay", 3<<20, 0, time.Second); got != "replay: 3 MiB read, 3.0 MiB/s" {
		t.Errorf("unknown size: %q", got)
	}
	if got := dayProgress(15, 60); !strings.HasPrefix(got, "gen [#######  ") || !strings.HasSuffix(got, " 25% day 15 of 60") {
		t.Errorf("dayProgress = %q", got)
	}
	if isTerminal(&strings.Builder{}) {
		t.Error("a buffer is not a terminal")
	}
}
