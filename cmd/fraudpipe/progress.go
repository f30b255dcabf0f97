package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressSource is a source that tells how much of its input it has read.
type progressSource interface {
	Progress() (read, size int64)
}

// isTerminal reports whether w is a terminal (a character device), where a progress line
// that rewrites itself is welcome; in a pipe or a log file it would be noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// startProgress shows, on w when it is a terminal, a progress line for src refreshed
// twice a second, until stop is called (which clears the line).
func startProgress(w io.Writer, what string, src any) (stop func()) {
	ps, ok := src.(progressSource)
	if !ok || !isTerminal(w) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-tick.C:
				read, size := ps.Progress()
				fmt.Fprint(w, "\r\x1b[K"+progressLine(what, read, size, time.Since(start)))
			}
		}
	}()
	return func() { close(done); <-finished }
}

// progressLine renders one progress line: a bar when the size is known.
func progressLine(what string, read, size int64, elapsed time.Duration) string {
	mb := float64(read) / (1 << 20)
	rate := mb / max(elapsed.Seconds(), 0.001)
	if size <= 0 {
		return fmt.Sprintf("%s: %.0f MiB read, %.1f MiB/s", what, mb, rate)
	}
	frac := min(float64(read)/float64(size), 1)
	const width = 30
	filled := int(frac * width)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < filled {
			bar[i] = '#'
		}
	}
	eta := "?"
	if frac > 0 {
		eta = (time.Duration(float64(elapsed)/frac) - elapsed).Round(time.Second).String()
	}
	return fmt.Sprintf("%s [%s] %3.0f%% %.0f/%.0f MiB, %.1f MiB/s, %s left", what, bar, frac*100, mb, float64(size)/(1<<20), rate, eta)
}

// dayProgress renders gen's progress: simulated days done of all.
func dayProgress(day, days int) string {
	frac := 0.0
	if days > 0 {
		frac = float64(day) / float64(days)
	}
	const width = 30
	bar := []byte(strings.Repeat(" ", width))
	for i := 0; i < int(frac*width) && i < width; i++ {
		bar[i] = '#'
	}
	return fmt.Sprintf("gen [%s] %3.0f%% day %d of %d", bar, frac*100, day, days)
}
