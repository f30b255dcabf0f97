// Package parquet archives decisions as Parquet files, partitioned Hive-style by event time
// (dt=2026-11-25/hour=10/) in a local directory or an S3 bucket.
//
// Parquet files cannot be appended to, so the sink keeps a local spool: each open file is an
// append-only row log, and Flush appends the rows written since the last Flush and fsyncs
// them. A file is rolled by size or age: its row log is sealed and a background uploader
// turns it into one Parquet file, writes it to the destination (temp file and rename, or an
// S3 multipart upload) and then deletes the log. A process that dies loses nothing Flush
// returned for: the next one finds the logs in the spool and uploads them. Object names
// derive from the first row of a file (its sequence number and transaction id), so uploading
// the same rows again replaces the object instead of adding a duplicate. docs/parquet.md
// describes the schema, the layout and the table definitions for DuckDB and Athena.
package parquet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks"
)

// Defaults of Options.
const (
	DefaultRollBytes     = 256 << 20
	DefaultRollAge       = 5 * time.Minute
	DefaultRowGroupBytes = 64 << 20
	DefaultMaxOpen       = 32
	DefaultMaxPending    = 4
	DefaultRetries       = 8
	DefaultRetryBackoff  = time.Second
)

// ErrClosed is returned by a Sink used after Close.
var ErrClosed = errors.New("parquet sink closed")

// Options configure a Sink. Zero values take the defaults above.
type Options struct {
	Dest     Destination // where finished files go
	SpoolDir string      // local directory of the row logs; must survive a restart
	Features []string    // feature names, in the engine's FeatureSchema order

	RollBytes     int64         // a file is rolled when its row log reaches this size
	RollAge       time.Duration // ... or when its first row was written this long ago
	RowGroupBytes int64         // target encoded (compressed) size of one row group
	Compression   Compression   // codec of the pages: zstd (the default), snappy or none
	MaxOpen       int           // most files open at once (one per event-time hour)
	MaxPending    int           // most rolled files waiting for upload before Flush waits
	Retries       int           // attempts to write one file before Flush reports failure
	RetryBackoff  time.Duration // first wait between attempts; doubles up to 30 times it

	Allocator memory.Allocator // Arrow memory; default a pool of page buffers (see bufferPool)
	Now       func() time.Time // the wall clock for RollAge; default time.Now

	// Metrics counts rows written to the destination, and failed and retried uploads
	// (the rows of the file each time); nil counts nothing.
	Metrics sinks.Metrics
	// Log receives a warning when an upload fails (its first failure, every tenth and
	// the last); nil discards.
	Log *slog.Logger
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.RollBytes <= 0 {
		c.RollBytes = DefaultRollBytes
	}
	if c.RollAge <= 0 {
		c.RollAge = DefaultRollAge
	}
	if c.RowGroupBytes <= 0 {
		c.RowGroupBytes = DefaultRowGroupBytes
	}
	if c.MaxOpen <= 0 {
		c.MaxOpen = DefaultMaxOpen
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.Metrics == nil {
		c.Metrics = sinks.NopMetrics{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Retries <= 0 {
		c.Retries = DefaultRetries
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.Allocator == nil {
		// Enough for the buffered pages of one row group and the column writers' page
		// buffers, which is what is in use at the end of each row group.
		c.Allocator = newBufferPool(int(min(c.RowGroupBytes, 1<<30)) + poolSlack)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Stats counts what a Sink has written.
type Stats struct {
	Files int64 // Parquet objects written to the destination
	Rows  int64 // rows in them
	Retry int64 // failed attempts to write an object (each retried or reported)
}

// Sink is the Parquet archive sink; it implements pipeline.Sink. WriteBatch and Flush are
// called from one goroutine (the engine's sink stage); a background goroutine writes rolled
// files to the destination.
type Sink struct {
	o Options

	mu      sync.Mutex
	open    map[int64]*spoolFile // the file each event-time hour writes to now
	sealing []*spoolFile         // full files, rolled at the next Flush
	spare   []byte               // row buffer of a rolled file, for the next new one
	closed  bool

	queue    chan string   // rolled row logs, in roll order
	inflight sync.Map      // row log path → chan struct{} closed when it is uploaded
	pending  atomic.Int64  // rolled files not yet written
	drained  chan struct{} // signalled whenever a rolled file is done
	err      atomic.Pointer[error]
	stats    struct{ files, rows, retry atomic.Int64 }

	conv converter // the uploader's

	ctx    context.Context // cancelled only when the sink is abandoned (tests' kill)
	cancel context.CancelFunc
	done   chan struct{} // closed when the uploader has stopped
	tick   chan struct{} // closed to stop the age ticker
}

// New opens the spool directory, queues the row logs an earlier process left there for
// upload (truncating a torn tail, which no Flush acknowledged), and starts the uploader.
func New(o Options) (*Sink, error) {
	if o.Dest == nil {
		return nil, fmt.Errorf("parquet: no destination")
	}
	if o.SpoolDir == "" {
		return nil, fmt.Errorf("parquet: no spool directory")
	}
	o = o.withDefaults()
	o.Features = slices.Clone(o.Features)
	if _, _, err := o.Compression.codec(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.SpoolDir, 0o755); err != nil {
		return nil, fmt.Errorf("parquet: spool: %w", err)
	}
	left, err := listSpool(o.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("parquet: spool: %w", err)
	}
	s := &Sink{
		o:       o,
		open:    make(map[int64]*spoolFile),
		queue:   make(chan string, 1<<16),
		drained: make(chan struct{}, 1),
		done:    make(chan struct{}),
		tick:    make(chan struct{}),
	}
	for _, p := range left {
		rows, err := recoverSpool(p)
		if err != nil {
			return nil, fmt.Errorf("parquet: recover spool %s: %w", p, err)
		}
		if rows > 0 {
			s.enqueue(p)
		}
	}
	s.conv = converter{rowGroupBytes: o.RowGroupBytes, mem: o.Allocator, compression: o.Compression}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.upload()
	go s.ageTicker()
	return s, nil
}

// Stats returns counts of what the sink has written so far.
func (s *Sink) Stats() Stats {
	return Stats{Files: s.stats.files.Load(), Rows: s.stats.rows.Load(), Retry: s.stats.retry.Load()}
}

const hourMillis = 3_600_000

func hourOf(ts int64) int64 {
	h := ts / hourMillis
	if ts%hourMillis < 0 {
		h--
	}
	return h
}

// ObjectKey is the key of the object whose first row is ev: the event-time partition, then
// the row's engine sequence number and a hash of its transaction id.
func ObjectKey(ev *pipeline.Event) string {
	t := time.UnixMilli(hourOf(ev.Tx.TS) * hourMillis).UTC()
	return fmt.Sprintf("dt=%s/hour=%02d/part-%020d-%016x.parquet", t.Format("2006-01-02"), t.Hour(), ev.Seq, idHash(ev.Tx.ID))
}

func idHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// WriteBatch appends the decided events to the row logs of their hours, in memory until
// the next Flush. Dead letters are skipped.
func (s *Sink) WriteBatch(ctx context.Context, events []*pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	nfeat := len(s.o.Features)
	for _, ev := range events {
		if ev.DeadLetter() {
			continue
		}
		h := hourOf(ev.Tx.TS)
		sf := s.open[h]
		if sf == nil {
			var err error
			if sf, err = s.newFile(ctx, h, ev); err != nil {
				return err
			}
		}
		n := len(sf.pending)
		sf.pending = appendRow(sf.pending, ev, nfeat)
		sf.rowBytes += int64(len(sf.pending) - n)
		sf.rows++
		sf.pendRows++
		sf.lastSeq = ev.Seq
		if sf.rowBytes >= s.o.RollBytes {
			s.retire(sf)
		}
	}
	return nil
}

// retire stops new rows going to sf; the next Flush makes its rows durable and rolls it.
func (s *Sink) retire(sf *spoolFile) {
	sf.full = true
	delete(s.open, sf.hour)
	s.sealing = append(s.sealing, sf)
}

func (s *Sink) newFile(ctx context.Context, h int64, ev *pipeline.Event) (*spoolFile, error) {
	if len(s.open) >= s.o.MaxOpen {
		// Roll the file written to least recently: by sequence, so the cut is the same
		// whenever the same events are written.
		var lru *spoolFile
		for _, f := range s.open {
			if lru == nil || f.lastSeq < lru.lastSeq {
				lru = f
			}
		}
		s.retire(lru)
	}
	key := ObjectKey(ev)
	path := filepath.Join(s.o.SpoolDir, fmt.Sprintf("%d-%020d-%016x%s", h, ev.Seq, idHash(ev.Tx.ID), spoolExt))
	// The same first row as a row log still waiting for upload (a replay after a crash):
	// let that one reach the destination first, or the two would share a spool path.
	if ch, ok := s.inflight.Load(path); ok {
		s.mu.Unlock()
		select {
		case <-ch.(chan struct{}):
		case <-ctx.Done():
		}
		s.mu.Lock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if _, err := os.Stat(path); err == nil {
			return nil, fmt.Errorf("parquet: spool %s was not uploaded: %w", path, s.lastErr())
		}
	}
	sf := &spoolFile{
		hour:    h,
		path:    path,
		header:  spoolHeader{Version: 1, Key: key, Features: s.o.Features},
		opened:  s.o.Now().UnixNano(),
		pending: s.spare,
	}
	s.spare = nil
	s.open[h] = sf
	return sf, nil
}

func (s *Sink) lastErr() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Flush makes every row written so far durable in the spool (write and fsync), rolls the
// files that are full or old enough, and waits while too many rolled files wait for the
// destination. It reports a file that could not be written after every retry; that file
// stays in the spool and is written by the next process.
func (s *Sink) Flush(ctx context.Context) error {
	if err := s.lastErr(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	err := s.flushLocked(false)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for s.pending.Load() >= int64(s.o.MaxPending) {
		select {
		case <-s.drained:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := s.lastErr(); err != nil {
			return err
		}
	}
	return nil
}

// flushLocked syncs every file and rolls the full ones, the old ones, or with all every one.
func (s *Sink) flushLocked(all bool) error {
	for _, sf := range s.sealing {
		if err := sf.flush(s.o.SpoolDir); err != nil {
			return err
		}
	}
	now := s.o.Now().UnixNano()
	for _, sf := range s.open {
		if err := sf.flush(s.o.SpoolDir); err != nil {
			return err
		}
		if all || now-sf.opened >= int64(s.o.RollAge) {
			s.retire(sf)
		}
	}
	for _, sf := range s.sealing {
		if err := sf.f.Close(); err != nil {
			return fmt.Errorf("parquet spool %s: %w", sf.path, err)
		}
		s.enqueue(sf.path)
		s.reuse(sf)
	}
	clear(s.sealing)
	s.sealing = s.sealing[:0]
	return nil
}

// reuse keeps the row buffer of a rolled file (whose rows are all flushed) for the next new
// file, sparing its growth again.
func (s *Sink) reuse(sf *spoolFile) {
	if cap(sf.pending) > cap(s.spare) {
		s.spare = sf.pending[:0]
	}
	sf.pending = nil
}

func (s *Sink) enqueue(path string) {
	s.inflight.Store(path, make(chan struct{}))
	s.pending.Add(1)
	s.queue <- path
}

// ageTicker rolls files that are old enough while the engine is idle and does not flush.
// It rolls only files without unflushed rows: those wait for the engine's next Flush.
func (s *Sink) ageTicker() {
	period := min(max(s.o.RollAge/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.tick:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if !s.closed {
			now := s.o.Now().UnixNano()
			for _, sf := range s.open {
				if sf.pendRows == 0 && sf.f != nil && now-sf.opened >= int64(s.o.RollAge) {
					delete(s.open, sf.hour)
					if err := sf.f.Close(); err == nil {
						s.enqueue(sf.path)
						s.reuse(sf)
					} else {
						s.setErr(fmt.Errorf("parquet spool %s: %w", sf.path, err))
					}
				}
			}
		}
		s.mu.Unlock()
	}
}

func (s *Sink) setErr(err error) { s.err.CompareAndSwap(nil, &err) }

// upload writes rolled row logs to the destination, one at a time, in roll order.
func (s *Sink) upload() {
	defer close(s.done)
	for path := range s.queue {
		err := s.uploadRetry(path)
		if err != nil {
			s.setErr(err)
		}
		if ch, ok := s.inflight.LoadAndDelete(path); ok {
			close(ch.(chan struct{}))
		}
		s.pending.Add(-1)
		select {
		case s.drained <- struct{}{}:
		default:
		}
	}
}

func (s *Sink) uploadRetry(path string) error {
	backoff := s.o.RetryBackoff
	var err error
	for attempt := 1; ; attempt++ {
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		var rows int64
		if rows, err = s.uploadOnce(path); err == nil {
			s.o.Metrics.Add(s.Name(), sinks.Written, int(rows))
			if attempt > 1 {
				s.o.Log.Info("parquet file written after failed attempts", "spool", path, "attempts", attempt)
			}
			return nil
		}
		s.stats.retry.Add(1)
		n := max(1, spoolRows(path))
		s.o.Metrics.Add(s.Name(), sinks.Failed, n)
		if attempt == 1 || attempt%10 == 0 || attempt >= s.o.Retries {
			s.o.Log.Warn("parquet file could not be written; it stays in the spool and is retried", "spool", path, "attempt", attempt, "of", s.o.Retries, "err", err)
		}
		if attempt >= s.o.Retries {
			return fmt.Errorf("parquet: %s after %d attempts: %w", path, attempt, err)
		}
		s.o.Metrics.Add(s.Name(), sinks.Retried, n)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return s.ctx.Err()
		}
		backoff = min(2*backoff, 30*s.o.RetryBackoff)
	}
}

// writerOnly hides Close from the Parquet writer, which would otherwise close the object
// before it is committed.
type writerOnly struct{ w ObjectWriter }

// Write passes p to the object.
func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

func (s *Sink) uploadOnce(path string) (int64, error) {
	sr, err := openSpool(path)
	if err != nil {
		return 0, err
	}
	defer sr.Close()
	w, err := s.o.Dest.Create(s.ctx, sr.header.Key)
	if err != nil {
		return 0, err
	}
	rows, err := s.conv.convert(sr, writerOnly{w})
	if err != nil {
		return 0, errors.Join(err, w.Abort())
	}
	if err := w.Commit(); err != nil {
		return 0, err
	}
	s.stats.files.Add(1)
	s.stats.rows.Add(rows)
	if err := os.Remove(path); err != nil {
		return rows, fmt.Errorf("parquet: remove uploaded spool: %w", err)
	}
	return rows, nil
}

// spoolRows counts the rows of a spool file from its block headers, for metrics; 0 when
// it cannot be read.
func spoolRows(path string) int {
	sr, err := openSpool(path)
	if err != nil {
		return 0
	}
	defer sr.Close()
	return sr.rows()
}

// Close makes every written row durable, rolls every open file and waits until all are in
// the destination (or ctx ends: the spool keeps what was not written, for the next process).
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	ferr := s.flushLocked(true)
	s.closed = true
	s.mu.Unlock()
	close(s.tick)
	close(s.queue)
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel()
		<-s.done
		return errors.Join(ferr, ctx.Err())
	}
	s.cancel()
	return errors.Join(ferr, s.lastErr())
}

// kill abandons the sink as a dying process would: unflushed rows are lost, open row logs
// stay in the spool. For tests.
func (s *Sink) kill() {
	s.mu.Lock()
	s.closed = true
	for _, sf := range s.open {
		if sf.f != nil {
			sf.f.Close()
		}
	}
	for _, sf := range s.sealing {
		if sf.f != nil {
			sf.f.Close()
		}
	}
	s.mu.Unlock()
	s.cancel()
	close(s.tick)
	close(s.queue)
	<-s.done
}

// Name labels the sink in metrics.
func (s *Sink) Name() string { return "parquet" }
