// Package file writes decisions and dead letters as NDJSON files.
package file

import (
	"bufio"
	"context"
	"encoding/binary"
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
	fresh    bool  // the file still holds an earlier run's output, to drop on first write
	flushed  int64 // bytes of the file made durable by Flush
	pending  int64 // bytes written since the last Flush
}

// Options configure a file sink.
type Options struct {
	Kind     Kind
	Features []string // feature names to write with each decision; nil for none
	Sync     bool     // fsync after every batch
}

// Create creates path, or replaces what it holds ("-" writes to standard output). An
// existing file is emptied on the first write, unless Restore resumes it from a checkpoint
// first.
func Create(path string, o Options) (*Sink, error) {
	s := &Sink{kind: o.Kind, features: o.Features, sync: o.Sync, path: path}
	if path == "-" {
		s.w = os.Stdout
	} else {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("create output: %w", err)
		}
		s.f, s.w, s.fresh = f, f, true
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
	if s.fresh {
		if err := s.truncate(0); err != nil {
			return err
		}
	}
	for _, ev := range events {
		s.buf = s.buf[:0]
		if s.kind == DeadLetters {
			s.buf = pipeline.AppendDeadLetterJSON(s.buf, ev)
		} else {
			s.buf = pipeline.AppendDecisionJSON(s.buf, ev, s.features)
		}
		s.buf = append(s.buf, '\n')
		s.pending += int64(len(s.buf))
		if _, err := s.bw.Write(s.buf); err != nil {
			return fmt.Errorf("write %s: %w", s.path, err)
		}
	}
	return nil
}

// Flush writes the buffer to the file and, with Sync, fsyncs it.
func (s *Sink) Flush(context.Context) error {
	if s.fresh {
		if err := s.truncate(0); err != nil {
			return err
		}
	}
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	s.flushed += s.pending
	s.pending = 0
	if s.sync && s.f != nil {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", s.path, err)
		}
	}
	return nil
}

func (s *Sink) truncate(size int64) error {
	s.fresh = false
	if err := s.f.Truncate(size); err != nil {
		return fmt.Errorf("truncate %s: %w", s.path, err)
	}
	if _, err := s.f.Seek(size, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s: %w", s.path, err)
	}
	s.flushed, s.pending = size, 0
	return nil
}

// Snapshot records how much of the file is flushed: the output a checkpoint covers.
func (s *Sink) Snapshot() ([]byte, error) {
	return binary.AppendVarint(nil, s.flushed), nil
}

// Restore cuts the file back to what the checkpoint covered, so output written after it
// and written again by the resumed run is not duplicated.
func (s *Sink) Restore(data []byte) error {
	size, n := binary.Varint(data)
	if n <= 0 || size < 0 {
		return fmt.Errorf("file sink %s: corrupt snapshot", s.path)
	}
	if s.f == nil {
		return nil // standard output cannot be cut back
	}
	fi, err := s.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < size {
		return fmt.Errorf("%s holds %d bytes, less than the %d the checkpoint covered: was it replaced?", s.path, fi.Size(), size)
	}
	return s.truncate(size)
}

// Close flushes and closes the file.
func (s *Sink) Close(context.Context) error {
	if s.fresh {
		if err := s.truncate(0); err != nil {
			return err
		}
	}
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

// Name labels the sink in metrics: decisions or dead_letters.
func (s *Sink) Name() string {
	if s.kind == DeadLetters {
		return "dead_letters"
	}
	return "decisions"
}
