package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/scorers/model"
)

func cmdFeatures(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("features", "[--config FILE] --input FILE --out FILE",
		`Computes point-in-time feature vectors for training: replays a labelled stream through
the same engine and scorers as 'replay' and 'run' (the features of each transaction are
those the engine had when it decided it, never later ones) and writes one CSV row per
valid transaction, in input order: id, ts, card_id, every feature of the engine's schema
except the model's own output (model_score), then label_fraud (1, 0, or empty when the line
has no label) and label_scenario. Nothing is posted to a ledger. Without --config the
built-in default config is used; to compute features for a model with other features than
the configured one, set scoring.model.enabled: false in the config. The terminal risk
features need feedback: pass --feedback, or --feedback-from-labels 168h to simulate
chargebacks known a week later.`, stdout)
	cfgPath := fs.String("config", "", "config file (default: the built-in config)")
	input := fs.String("input", "", "labelled stream (NDJSON, plain or gzip; - for standard input; required)")
	out := fs.String("out", "", "CSV file to write (required; - for standard output)")
	feedbackPath := fs.String("feedback", "", "feedback events (NDJSON, in event time) merged into the stream by ts, for the delayed-label features")
	fromLabels := fs.Duration("feedback-from-labels", 0, "simulate feedback: each transaction labelled fraud is confirmed this long after it (the handbook's protocol: 168h)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *input == "" {
		return &usageError{"--input is required"}
	}
	if *out == "" {
		return &usageError{"--out is required"}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	cfg.Output.Features = true // the engine copies the feature values onto each event
	cfg.Ledger.Driver = "none"
	if *feedbackPath != "" && *fromLabels != 0 {
		return &usageError{"--feedback and --feedback-from-labels exclude each other"}
	}
	src, err := openReplayInput(*input, *feedbackPath, *fromLabels, cfg.Engine.BatchSize)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := build(cfg, outputs{extra: func(schema *pipeline.FeatureSchema) ([]pipeline.Sink, error) {
		s, err := createFeatureCSV(*out, schema)
		if err != nil {
			return nil, err
		}
		return []pipeline.Sink{s}, nil
	}})
	if err != nil {
		return err
	}
	stopProgress := startProgress(stderr, "features", progressOf(src))
	err = st.runUntilSignal(src)
	stopProgress()
	if err != nil {
		return err
	}
	s := st.engine.Stats()
	fmt.Fprintf(stderr, "features: %d rows to %s in %.2fs; %d dead letters\n", s.Decided, *out, s.Elapsed.Seconds(), s.DeadLetterTotal())
	return nil
}

// featureCSV is a sink that writes each decided event's features and label as a CSV row.
type featureCSV struct {
	f    *os.File // nil for standard output
	bw   *bufio.Writer
	path string
	cols []int // schema indices of the written features
	buf  []byte
}

// createFeatureCSV creates path ("-" for standard output) and writes the header.
func createFeatureCSV(path string, schema *pipeline.FeatureSchema) (*featureCSV, error) {
	s := &featureCSV{path: path}
	var w io.Writer = os.Stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("create output: %w", err)
		}
		s.f, w = f, f
	}
	s.bw = bufio.NewWriterSize(w, 1<<20)
	header := []string{"id", "ts", "card_id"}
	for i, name := range schema.Names() {
		if name == model.ScoreFeature {
			continue // the model's output, not an input: training on it would leak
		}
		s.cols = append(s.cols, i)
		header = append(header, name)
	}
	header = append(header, "label_fraud", "label_scenario")
	for i, h := range header {
		header[i] = csvField(h)
	}
	s.bw.WriteString(strings.Join(header, ",") + "\n")
	return s, nil
}

// WriteBatch writes one row per event.
func (s *featureCSV) WriteBatch(_ context.Context, events []*pipeline.Event) error {
	for _, ev := range events {
		b := s.buf[:0]
		b = append(b, csvField(ev.Tx.ID)...)
		b = append(b, ',')
		b = append(b, csvField(ev.Tx.TSText)...)
		b = append(b, ',')
		b = append(b, csvField(ev.Tx.CardID)...)
		for _, i := range s.cols {
			b = append(b, ',')
			b = strconv.AppendFloat(b, ev.Features[i], 'g', -1, 64)
		}
		b = append(b, ',')
		if l := ev.Tx.Label; l.Present {
			if l.Fraud {
				b = append(b, '1')
			} else {
				b = append(b, '0')
			}
			b = append(b, ',')
			b = append(b, csvField(l.Scenario)...)
		} else {
			b = append(b, ',')
		}
		b = append(b, '\n')
		s.buf = b
		if _, err := s.bw.Write(b); err != nil {
			return fmt.Errorf("write %s: %w", s.path, err)
		}
	}
	return nil
}

// Flush writes the buffered rows out.
func (s *featureCSV) Flush(context.Context) error {
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	return nil
}

// Close flushes and closes the file.
func (s *featureCSV) Close(ctx context.Context) error {
	err := s.Flush(ctx)
	if s.f != nil {
		if cerr := s.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", s.path, cerr)
		}
	}
	return err
}

// csvField quotes a field when RFC 4180 requires it.
func csvField(s string) string {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
