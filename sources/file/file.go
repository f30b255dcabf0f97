// Package file reads transactions from an NDJSON file (plain or gzip) or standard input.
package file

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// DefaultBatchSize is how many lines one ReadBatch returns at most.
const DefaultBatchSize = 512

// Source reads one NDJSON stream line by line. A line's position is its byte offset in the
// uncompressed stream. Blank lines are skipped; a line longer than pipeline.MaxLineBytes is
// passed on cut to MaxLineBytes+1 bytes so that the engine refuses it with a reason
// instead of holding it in memory.
type Source struct {
	name      string
	closer    io.Closer
	r         *bufio.Reader
	file      *os.File // nil when the input cannot rewind (standard input, a pipe)
	gzip      bool
	batchSize int
	pos       int64 // offset in the uncompressed stream of the next byte to read
	done      bool
	arenas    sync.Pool
	cr        *counting // the input's bytes read so far, for Progress
	size      int64     // the input's size when opened; 0: unknown (a pipe)
}

// counting counts the bytes read through it, for a progress display in another goroutine.
type counting struct {
	r io.Reader
	n atomic.Int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Progress returns the bytes of the input read so far (compressed bytes for gzip) and its
// size (0 when unknown, as for standard input). Safe to call while another goroutine reads.
func (s *Source) Progress() (read, size int64) { return s.cr.n.Load(), s.size }

// Open opens path ("-" for standard input); a gzip stream is recognised by its magic bytes,
// whatever the file is called.
func Open(path string, batchSize int) (*Source, error) {
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	var rc io.ReadCloser
	if path == "-" {
		rc = io.NopCloser(os.Stdin)
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open input: %w", err)
		}
		rc = f
	}
	s, err := New(path, rc, batchSize)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("open input %s: %w", path, err)
	}
	if f, ok := rc.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			s.file = f
			s.size = fi.Size()
		}
	}
	return s, nil
}

// New reads from r; name identifies it in dead letters. r is closed by Close.
func New(name string, r io.ReadCloser, batchSize int) (*Source, error) {
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	cr := &counting{r: r}
	br := bufio.NewReaderSize(cr, 256<<10)
	var closer io.Closer = r
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		br = bufio.NewReaderSize(zr, 256<<10)
		closer = multiCloser{zr, r}
		return &Source{name: name, closer: closer, r: br, batchSize: batchSize, gzip: true, cr: cr}, nil
	}
	return &Source{name: name, closer: closer, r: br, batchSize: batchSize, cr: cr}, nil
}

type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var first error
	for _, c := range m {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Name is the input's path.
func (s *Source) Name() string { return s.name }

type arena struct {
	data []byte
	msgs []pipeline.Message
	ends []int
}

// ReadBatch returns up to the batch size of lines. The lines live in a buffer of their own
// that is reused once the batch is acknowledged.
func (s *Source) ReadBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err // stopped: hand out nothing more
	}
	if s.done {
		return nil, nil, pipeline.ErrEndOfInput
	}
	a, _ := s.arenas.Get().(*arena)
	if a == nil {
		a = &arena{}
	}
	a.data, a.msgs, a.ends = a.data[:0], a.msgs[:0], a.ends[:0]
	for len(a.ends) < s.batchSize {
		start := s.pos
		line, err := s.r.ReadSlice('\n')
		s.pos += int64(len(line))
		n := len(a.data)
		// Keep at most MaxLineBytes+1 bytes of a line (and its end) and skip the rest: enough
		// for the engine to refuse it as too long, without holding it in memory.
		const keep = pipeline.MaxLineBytes + 2
		a.data = append(a.data, line[:min(keep, len(line))]...)
		for err == bufio.ErrBufferFull {
			line, err = s.r.ReadSlice('\n')
			s.pos += int64(len(line))
			if room := keep - (len(a.data) - n); room > 0 {
				a.data = append(a.data, line[:min(room, len(line))]...)
			}
		}
		if err != nil && err != io.EOF {
			s.arenas.Put(a)
			return nil, nil, fmt.Errorf("read at byte %d: %w", s.pos, err)
		}
		rec := bytes.TrimRight(a.data[n:], "\r\n")
		if len(rec) > pipeline.MaxLineBytes+1 {
			rec = rec[:pipeline.MaxLineBytes+1]
		}
		if len(bytes.TrimSpace(rec)) == 0 {
			a.data = a.data[:n]
		} else {
			a.data = a.data[:n+len(rec)]
			a.msgs = append(a.msgs, pipeline.Message{Pos: start})
			a.ends = append(a.ends, len(a.data))
		}
		if err == io.EOF {
			s.done = true
			break
		}
	}
	begin := 0
	for i, end := range a.ends {
		a.msgs[i].Data = a.data[begin:end:end]
		begin = end
	}
	if len(a.msgs) == 0 {
		s.arenas.Put(a)
		return nil, nil, pipeline.ErrEndOfInput
	}
	return a.msgs, func(context.Context, error) error { s.arenas.Put(a); return nil }, nil
}

// position is what Position encodes: the offset to resume at, and the input's size when the
// position was taken, to notice a file replaced by a shorter one.
type position struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
}

// Position is the offset just past the last line returned, in the uncompressed stream.
func (s *Source) Position() ([]byte, error) {
	if s.file == nil {
		return nil, fmt.Errorf("%s cannot rewind (not a regular file), so checkpoints cannot resume it", s.name)
	}
	return json.Marshal(position{Path: s.name, Offset: s.pos})
}

// Seek moves the source to a position that Position returned. A gzip stream is read again
// from its start up to the position.
func (s *Source) Seek(pos []byte) error {
	if s.file == nil {
		return fmt.Errorf("%s cannot rewind (not a regular file)", s.name)
	}
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		return fmt.Errorf("bad file position: %w", err)
	}
	if p.Path != s.name {
		return fmt.Errorf("the checkpoint read %s, this run reads %s", p.Path, s.name)
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if s.gzip {
		s.cr = &counting{r: s.file}
		zr, err := gzip.NewReader(bufio.NewReaderSize(s.cr, 256<<10))
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		s.closer = multiCloser{zr, s.file}
		s.r = bufio.NewReaderSize(zr, 256<<10)
		if n, err := io.CopyN(io.Discard, s.r, p.Offset); err != nil {
			return fmt.Errorf("%s is shorter (%d bytes) than the checkpoint's position %d", s.name, n, p.Offset)
		}
	} else {
		fi, err := s.file.Stat()
		if err != nil {
			return err
		}
		if fi.Size() < p.Offset {
			return fmt.Errorf("%s is shorter (%d bytes) than the checkpoint's position %d", s.name, fi.Size(), p.Offset)
		}
		if _, err := s.file.Seek(p.Offset, io.SeekStart); err != nil {
			return err
		}
		s.cr = &counting{r: s.file}
		s.cr.n.Store(p.Offset)
		s.r.Reset(s.cr)
	}
	s.pos, s.done = p.Offset, false
	return nil
}

// Close closes the input.
func (s *Source) Close() error { return s.closer.Close() }
