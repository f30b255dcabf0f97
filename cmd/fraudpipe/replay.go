package main

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sources/feedback"
	filesource "github.com/fraudpipe/fraudpipe/sources/file"
)

func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", "[--config FILE] --input FILE --out FILE [--dead-letters FILE]",
		`Feeds a recorded NDJSON stream (plain or gzip, - for standard input) through the same
engine as 'run', in event time, as fast as it can, and writes one decision per valid
transaction to --out. The same input and config give byte-identical decisions. Invalid
lines go to the dead-letters file with their reason. Without --config the built-in default
config is used. Approved payments are posted to a fresh temporary ledger unless --ledger
names one. A summary is printed to standard error when done.`, stdout)
	cfgPath := fs.String("config", "", "config file (default: the built-in config)")
	input := fs.String("input", "", "recorded stream to replay (required; - for standard input)")
	out := fs.String("out", "", "decisions file to write (required; - for standard output)")
	dead := fs.String("dead-letters", "", "dead-letters file (default: --out with .dead.ndjson in place of its extension)")
	feedback := fs.String("feedback", "", "feedback events (NDJSON, in event time) merged into the stream by ts, for the delayed-label features and chargebacks")
	fromLabels := fs.Duration("feedback-from-labels", 0, "simulate feedback: each transaction labelled fraud is confirmed this long after it (e.g. 168h); for evaluation only")
	ledgerPath := fs.String("ledger", "", "SQLite ledger file to post to (default: a fresh temporary one)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (for go tool pprof)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *input == "" {
		return &usageError{"--input is required"}
	}
	if *out == "" {
		return &usageError{"--out is required"}
	}
	if *feedback != "" && *fromLabels != 0 {
		return &usageError{"--feedback and --feedback-from-labels exclude each other"}
	}
	if *fromLabels < 0 {
		return &usageError{"--feedback-from-labels must be a positive duration such as 168h"}
	}
	if *dead == "" {
		*dead = deadLettersPath(*out)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	src, err := openReplayInput(*input, *feedback, *fromLabels, cfg.Engine.BatchSize)
	if err != nil {
		return err
	}
	defer src.Close()
	if *ledgerPath == "" && cfg.Ledger.Driver != "none" {
		path, cleanup, err := tempLedger()
		if err != nil {
			return err
		}
		defer cleanup()
		*ledgerPath = path
	}
	st, err := build(cfg, outputs{decisions: *out, deadLetters: *dead, ledgerPath: *ledgerPath})
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	stopProgress := startProgress(stderr, "replay", progressOf(src))
	err = st.runUntilSignal(src)
	stopProgress()
	if err != nil {
		return err
	}
	writeSummary(stderr, "replay", st.engine.Stats(), *dead)
	return nil
}

// openReplayInput opens a recorded stream, with feedback merged from a file or made from
// its labels when asked.
func openReplayInput(input, feedbackPath string, fromLabels time.Duration, batch int) (pipeline.Source, error) {
	src, err := filesource.Open(input, batch)
	if err != nil {
		return nil, err
	}
	switch {
	case feedbackPath != "":
		fb, err := filesource.Open(feedbackPath, batch)
		if err != nil {
			src.Close()
			return nil, fmt.Errorf("--feedback: %w", err)
		}
		return feedback.Merge(src, fb, batch), nil
	case fromLabels > 0:
		return feedback.FromLabels(src, fromLabels, batch), nil
	}
	return src, nil
}

// progressOf finds the file source under the feedback wrappers, for the progress line.
func progressOf(src pipeline.Source) any {
	switch s := src.(type) {
	case *feedback.Labels:
		return s.Input()
	case *feedback.Merged:
		return s.Input()
	}
	return src
}

// peakMemory is the process's peak resident set size, as the kernel counts it.
func peakMemory() string {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MiB", float64(ru.Maxrss)/1024) // Linux reports KiB
}

// deadLettersPath puts .dead.ndjson in place of the extension of the decisions path.
func deadLettersPath(out string) string {
	if out == "-" {
		return "dead-letters.ndjson"
	}
	base := out
	for _, ext := range []string{".gz", filepath.Ext(strings.TrimSuffix(out, ".gz"))} {
		base = strings.TrimSuffix(base, ext)
	}
	return base + ".dead.ndjson"
}

func writeSummary(w io.Writer, what string, s pipeline.Stats, deadPath string) {
	secs := s.Elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(s.Events) / secs
	}
	fmt.Fprintf(w, "%s: %d events in %.2fs (%.0f tx/s, peak memory %s)\n", what, s.Events, secs, rate, peakMemory())
	fmt.Fprintf(w, "  decided:      %d (approve %d, review %d, decline %d)\n", s.Decided,
		s.ByOutcome[pipeline.Approve], s.ByOutcome[pipeline.Review], s.ByOutcome[pipeline.Decline])
	fmt.Fprintf(w, "  ledger:       posted %d, rejected %d, duplicate %d, skipped %d\n",
		s.ByLedger[pipeline.LedgerPosted], s.ByLedger[pipeline.LedgerRejected],
		s.ByLedger[pipeline.LedgerDuplicate], s.ByLedger[pipeline.LedgerSkipped])
	fmt.Fprintf(w, "  dead letters: %d", s.DeadLetterTotal())
	if n := s.DeadLetterTotal(); n > 0 {
		codes := make([]string, 0, len(s.DeadLetters))
		for c := range s.DeadLetters {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		parts := make([]string, len(codes))
		for i, c := range codes {
			parts[i] = fmt.Sprintf("%s %d", c, s.DeadLetters[c])
		}
		fmt.Fprintf(w, " (%s) in %s", strings.Join(parts, ", "), deadPath)
	}
	fmt.Fprintf(w, "\n  duplicates:   %d\n", s.Duplicates)
	if s.Feedback > 0 {
		fmt.Fprintf(w, "  feedback:     %d (fraud %d", s.Feedback, s.FeedbackFraud)
		if n := s.Chargebacks; n != [4]int64{} {
			fmt.Fprintf(w, "; reversed %d, not posted %d, reversed before %d, rejected %d",
				n[pipeline.LedgerPosted], n[pipeline.LedgerSkipped], n[pipeline.LedgerDuplicate], n[pipeline.LedgerRejected])
		}
		fmt.Fprintln(w, ")")
	}
	fmt.Fprintf(w, "  late:         %d", s.Late)
	if s.Watermark != math.MinInt64 {
		fmt.Fprintf(w, " (watermark %s)", time.UnixMilli(s.Watermark).UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if s.Checkpoints > 0 || s.CheckpointFailures > 0 {
		fmt.Fprintf(w, "  checkpoints:  %d written, %d failed, last took %s\n", s.Checkpoints, s.CheckpointFailures, s.LastCheckpoint.Round(time.Millisecond))
	}
}
