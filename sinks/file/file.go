// Package file writes decisions and dead letters as NDJSON files.
package file

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Kind selects what a Sink writes.
type Kind int

// What a Sink writes: decisions of decided events, or dead letters of refused ones.
const (
	Decisions Kind = iota
	DeadLetters
)

// Sink appends one JSON line per event to a file. WriteBatch encodes into a buffer; Flush
// hands the buffer to the operating system (which survives the process dying) and, with
// Sync set, fsyncs (which survives the machine dying).
type Sink struct {
	kind     Kind
	f        *os.File
	w        io.Writer
	bw       *bufio.Writer
	buf      []byte
	features []string
	sync     bool
	path     string
}

// Options configure a file sink.
type Options struct {
	Kind     Kind
	Features []string // feature names to write with each decision; nil for none
	Sync     bool     // fsync after every batch
}

// Create truncates or creates path ("-" writes to standard output).
func Create(path string, o Options) (*Sink, error) {
	s := &Sink{kind: o.Kind, features: o.Features, sync: o.Sync, path: path}
	if path == "-" {
		s.w = os.Stdout
	} else {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("create output: %w", err)
		}
		s.f, s.w = f, f
	}
	s.bw = bufio.NewWriterSize(s.w, 1<<20)
	return s, nil
}

// NewWriter writes to w; Close does not close it.
func NewWriter(w io.Writer, o Options) *Sink {
	return &Sink{kind: o.Kind, features: o.Features, w: w, bw: bufio.NewWriterSize(w, 1<<20), path: "writer"}
}

// WriteBatch encodes the events into the file's buffer.
func (s *Sink) WriteBatch(_ context.Context, events []*pipeline.Event) error {
	for _, ev := range events {
		s.buf = s.buf[:0]
		if s.kind == DeadLetters {
			s.buf = pipeline.AppendDeadLetterJSON(s.buf, ev)
		} else {
			s.buf = pipeline.AppendDecisionJSON(s.buf, ev, s.features)
		}
		s.buf = append(s.buf, '\n')
		if _, err := s.bw.Write(s.buf); err != nil {
			return fmt.Errorf("write %s: %w", s.path, err)
		}
	}
	return nil
}

// Flush writes the buffer to the file and, with Sync, fsyncs it.
func (s *Sink) Flush(context.Context) error {
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if s.sync && s.f != nil {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", s.path, err)
		}
	}
	return nil
}

// Close flushes and closes the file.
func (s *Sink) Close(context.Context) error {
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if s.f != nil {
		if err := s.f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", s.path, err)
		}
	}
	return nil
}
