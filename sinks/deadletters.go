package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks/file"
)

// DeadLetterFile opens path for appending dead letters, one JSON object a line in the
// format of CONTRACT.md's dead letters (raw: the decision JSON; reason: sink_rejected: ...),
// and fsyncs at each Flush: a sink's dead letters are durable before the engine
// acknowledges the decisions they stand for. Unlike the engine's dead-letter output it
// never truncates, so a restart keeps earlier dead letters.
func DeadLetterFile(path string) (pipeline.Sink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open dead letters: %w", err)
	}
	return &appendFile{Sink: file.NewWriter(f, file.Options{Kind: file.DeadLetters}), f: f}, nil
}

type appendFile struct {
	*file.Sink
	f *os.File
}

// Flush writes the buffered dead letters and fsyncs the file.
func (a *appendFile) Flush(ctx context.Context) error {
	if err := a.Sink.Flush(ctx); err != nil {
		return err
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", a.f.Name(), err)
	}
	return nil
}

// Close flushes and closes the file.
func (a *appendFile) Close(ctx context.Context) error {
	return errors.Join(a.Flush(ctx), a.f.Close())
}
