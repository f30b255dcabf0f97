// Package audit writes the audit log: an append-only, hash-chained NDJSON file with one
// record per decision, and verifies it.
//
// Each line is a record {"n":N,"prev":"HEX","decision":{...}}: n counts records from 1,
// prev is the hex SHA-256 of the previous record's line without its newline (64 zeros for
// the first), and decision is the decision exactly as pipeline.AppendDecisionJSON writes it.
// Changing, inserting, removing or reordering any record breaks the chain at that point;
// cutting records from the end is detected against a chain head recorded elsewhere.
// docs/audit.md describes the format and how to anchor the head.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// MaxRecordBytes is the longest record line, newline excluded, that the writer makes and
// the verifier reads.
const MaxRecordBytes = 1 << 20

// ErrExists is wrapped by the error a Sink returns when it would write to an audit log
// that already holds records, without Options.Append and without a checkpoint to resume.
var ErrExists = errors.New("audit log exists")

// Options configure an audit log Sink.
type Options struct {
	// Append continues the chain of an existing log, after checking its last two records,
	// in a run that does not resume from a checkpoint. Without it, such a run refuses to
	// write to a log that holds records.
	Append bool
	// Features are the feature names written with each decision; nil for none.
	Features []string
	// Logger reports repairs made when opening (a torn last line cut); nil for
	// slog.Default().
	Logger *slog.Logger
}

// Sink writes decisions to an audit log. WriteBatch chains and encodes the records in
// memory; Flush writes them with one write and fsyncs the file. A Sink is used from one
// goroutine, as the engine does.
//
// It implements pipeline.Snapshotter: Snapshot records the flushed size, record count and
// head; Restore cuts the file back to them, so a run resumed from a checkpoint rewrites the
// records after it byte for byte.
type Sink struct {
	path     string
	f        *os.File
	features []string
	sync     func(*os.File) error

	// The durable state: what the file holds after the last Flush.
	size    int64
	records int64
	head    [sha256.Size]byte

	// The chain as written: flushed records plus those in buf.
	n    int64
	last [sha256.Size]byte
	buf  []byte

	existing int64 // bytes the file held at Open, to be resumed (Restore) or refused
	err      error // a failure that left the file in an unknown state
}

// Open opens the audit log at path, creating it if needed. When the file holds records,
// the run must either resume it from a checkpoint (Restore, before anything is written) or
// continue it with Options.Append; otherwise WriteBatch refuses with an error wrapping
// ErrExists, and the log is never overwritten.
func Open(path string, o Options) (*Sink, error) {
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	s := &Sink{path: path, f: f, features: o.Features, sync: (*os.File).Sync}
	if created {
		// The new name must survive a crash as well as the records.
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, fmt.Errorf("open audit log %s: %w", path, err)
		}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return s, nil
	}
	if !o.Append {
		s.existing = fi.Size()
		return s, nil
	}
	t, err := readTail(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	if t.size < fi.Size() {
		log := o.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Warn("audit log ended in an incomplete record, written by a run that died during a flush; cut it off before appending",
			"path", path, "record", t.records+1, "bytes", fi.Size()-t.size)
		if err := f.Truncate(t.size); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit log %s: cut the incomplete last record: %w", path, err)
		}
	}
	s.setDurable(t.size, t.records, t.head)
	return s, nil
}

func (s *Sink) setDurable(size, records int64, head [sha256.Size]byte) {
	s.size, s.records, s.head = size, records, head
	s.n, s.last = records, head
	s.buf = s.buf[:0]
}

// refuseExisting returns the error for writing over an existing log nobody resumed.
func (s *Sink) refuseExisting() error {
	if s.existing == 0 {
		return nil
	}
	return fmt.Errorf("audit log %s exists; it holds %d bytes that no checkpoint resumes, and an audit log is never overwritten: "+
		"move it away, or set append to continue its chain (%w)", s.path, s.existing, ErrExists)
}

// WriteBatch appends one chained record per decided event to the buffer that Flush writes.
func (s *Sink) WriteBatch(_ context.Context, events []*pipeline.Event) error {
	if s.err != nil {
		return s.err
	}
	if err := s.refuseExisting(); err != nil {
		return err
	}
	for _, ev := range events {
		start := len(s.buf)
		s.buf = append(s.buf, keyN...)
		s.buf = strconv.AppendInt(s.buf, s.n+1, 10)
		s.buf = append(s.buf, keyPrev...)
		s.buf = hex.AppendEncode(s.buf, s.last[:])
		s.buf = append(s.buf, keyDecision...)
		s.buf = pipeline.AppendDecisionJSON(s.buf, ev, s.features)
		s.buf = append(s.buf, '}')
		if len(s.buf)-start > MaxRecordBytes {
			s.buf = s.buf[:start]
			return fmt.Errorf("audit log %s: the record of transaction %q would be over %d bytes; write fewer features to the audit log",
				s.path, ev.Tx.ID, MaxRecordBytes)
		}
		s.last = sha256.Sum256(s.buf[start:])
		s.n++
		s.buf = append(s.buf, '\n')
	}
	return nil
}

// Flush writes the buffered records at the end of the file and fsyncs it. When the write
// fails, the file is cut back to its last flushed size, so a retried Flush writes the
// same records again and the chain stays whole.
func (s *Sink) Flush(context.Context) error {
	if s.err != nil {
		return s.err
	}
	if len(s.buf) == 0 {
		return nil // also when WriteBatch refused an existing log: nothing was written
	}
	if _, err := s.f.WriteAt(s.buf, s.size); err != nil {
		werr := fmt.Errorf("write audit log %s: %w", s.path, err)
		if terr := s.f.Truncate(s.size); terr != nil {
			s.err = fmt.Errorf("%w; cutting back the partial write failed too (%v): restart from the last checkpoint", werr, terr)
			return s.err
		}
		return werr
	}
	if err := s.sync(s.f); err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages: what the file
		// holds is unknown, so only a restart from a checkpoint can go on.
		s.err = fmt.Errorf("fsync audit log %s: %w; restart from the last checkpoint", s.path, err)
		return s.err
	}
	s.size += int64(len(s.buf))
	s.records, s.head = s.n, s.last
	s.buf = s.buf[:0]
	return nil
}

// Head returns the number of records made durable by Flush and the hash of the last one,
// in hex: the chain head to record outside the log.
func (s *Sink) Head() (records int64, head string) {
	return s.records, hex.EncodeToString(s.head[:])
}

// snapshotMagic starts every snapshot, so a checkpoint file of another sink is refused.
const snapshotMagic = "audit1"

// Snapshot records the flushed state: the file size, the record count and the last hash.
func (s *Sink) Snapshot() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	// A log nobody resumed is not this run's: a checkpoint claiming it empty would cut it.
	if err := s.refuseExisting(); err != nil {
		return nil, err
	}
	b := append([]byte(snapshotMagic), 0)
	b = binary.AppendUvarint(b, uint64(s.size))
	b = binary.AppendUvarint(b, uint64(s.records))
	return append(b, s.head[:]...), nil
}

// Restore cuts the file back to a snapshot, after checking that the record it ends with
// is the one the snapshot saw, and continues the chain from there: the resumed run
// rewrites the records after the checkpoint exactly as the first run wrote them.
func (s *Sink) Restore(data []byte) error {
	size, records, head, err := decodeSnapshot(data)
	if err != nil {
		return fmt.Errorf("audit log %s: %w", s.path, err)
	}
	fi, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("audit log %s: %w", s.path, err)
	}
	if fi.Size() < size {
		return fmt.Errorf("audit log %s holds %d bytes, less than the %d the checkpoint covered: it was cut or replaced; restore it from a copy or verify it with 'fraudpipe audit verify'",
			s.path, fi.Size(), size)
	}
	if size > 0 {
		t, err := readTail(s.f, size)
		if err != nil {
			return fmt.Errorf("audit log %s does not match the checkpoint: %w", s.path, err)
		}
		if t.size != size || t.records != records || t.head != head {
			return fmt.Errorf("audit log %s does not match the checkpoint: its record %d at byte %d has hash %x, the checkpoint expects record %d with hash %x: the file was altered or replaced",
				s.path, t.records, t.size, t.head[:], records, head[:])
		}
	}
	if err := s.f.Truncate(size); err != nil {
		return fmt.Errorf("audit log %s: cut back to the checkpoint: %w", s.path, err)
	}
	s.existing, s.err = 0, nil
	s.setDurable(size, records, head)
	return nil
}

func decodeSnapshot(data []byte) (size, records int64, head [sha256.Size]byte, err error) {
	corrupt := errors.New("corrupt snapshot: not an audit log's (did the config's sinks change order since the checkpoint?)")
	if !bytes.HasPrefix(data, []byte(snapshotMagic+"\x00")) {
		return 0, 0, head, corrupt
	}
	b := data[len(snapshotMagic)+1:]
	sz, k := binary.Uvarint(b)
	if k <= 0 || sz > 1<<62 {
		return 0, 0, head, corrupt
	}
	b = b[k:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 1<<62 {
		return 0, 0, head, corrupt
	}
	b = b[k:]
	if len(b) != sha256.Size || (n == 0) != (sz == 0) {
		return 0, 0, head, corrupt
	}
	copy(head[:], b)
	return int64(sz), int64(n), head, nil
}

// Close flushes and closes the file.
func (s *Sink) Close(ctx context.Context) error {
	err := s.Flush(ctx)
	if cerr := s.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close audit log %s: %w", s.path, cerr)
	}
	return err
}

// tail is the end of a log: its size up to the end of its last complete line, the number
// of records and the hash of the last.
type tail struct {
	size    int64
	records int64
	head    [sha256.Size]byte
}

// readTail reads the end of the first size bytes of f and checks the last two records: each
// well formed, consecutive, the last chained to the one before. An incomplete line at the
// end (a write cut by a crash) is left out of the returned size.
func readTail(f io.ReaderAt, size int64) (tail, error) {
	var t tail
	for chunk := int64(64 << 10); ; chunk *= 4 {
		off := max(0, size-chunk)
		b := make([]byte, size-off)
		if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return t, fmt.Errorf("read its end: %w", err)
		}
		// Lines wholly inside b: those after the first newline, or all when b starts the file.
		end := bytes.LastIndexByte(b, '\n') + 1 // end of the last complete line
		whole := b[:end]
		if off > 0 {
			i := bytes.IndexByte(whole, '\n')
			if i < 0 {
				whole = nil
			} else {
				whole = whole[i+1:]
			}
		}
		lines := bytes.Split(bytes.TrimSuffix(whole, []byte{'\n'}), []byte{'\n'})
		if len(whole) == 0 {
			lines = nil
		}
		if off > 0 && len(lines) < 2 && chunk < 2*(MaxRecordBytes+1)+1 {
			continue // read further back
		}
		t.size = off + int64(end)
		if off == 0 && end == 0 {
			return t, nil // nothing but an incomplete first line: no record yet
		}
		if len(lines) == 0 {
			return t, fmt.Errorf("its last line is longer than %d bytes: not an audit log", MaxRecordBytes)
		}
		lastLine := lines[len(lines)-1]
		last, ok := parseRecord(lastLine)
		if !ok {
			return t, fmt.Errorf("its last record is damaged (%s); check it with 'fraudpipe audit verify'", diagnose(lastLine))
		}
		t.records, t.head = int64(last.n), sha256.Sum256(lastLine)
		if len(lines) == 1 {
			if off == 0 && last.n == 1 && bytes.Equal(last.prev, []byte(zeroHex)) {
				return t, nil
			}
			if off == 0 {
				return t, fmt.Errorf("it holds one line, which is not a first record (n %d); check it with 'fraudpipe audit verify'", last.n)
			}
			return t, fmt.Errorf("the line before its last is longer than %d bytes: not an audit log", MaxRecordBytes)
		}
		prevLine := lines[len(lines)-2]
		prev, ok := parseRecord(prevLine)
		if !ok {
			return t, fmt.Errorf("the record before its last is damaged (%s); check it with 'fraudpipe audit verify'", diagnose(prevLine))
		}
		h := sha256.Sum256(prevLine)
		if prev.n+1 != last.n || !bytes.Equal(last.prev, []byte(hex.EncodeToString(h[:]))) {
			return t, fmt.Errorf("its last two records (n %d and %d) do not chain: the end of the log was altered; check it with 'fraudpipe audit verify'", prev.n, last.n)
		}
		return t, nil
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Name labels the sink in metrics.
func (s *Sink) Name() string { return "audit" }
