package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// item is one event on its way to the target, with its retry state.
type item struct {
	ev    *pipeline.Event // a clone: the sink's own
	size  int
	enq   time.Time // when it was queued (best-effort batching period)
	start time.Time // first attempt (retry.max_elapsed_time)
	tries int       // failed attempts so far
}

// core is what both delivery modes share: the writer, the retry loop and dead letters.
type core struct {
	w Writer
	o Options

	dlMu    sync.Mutex // guards the dead-letter sink: best-effort sinks write it from their goroutine
	dlDirty bool       // dead letters written since its last Flush
}

// deliver writes items to the target, retrying retryable failures with backoff, and
// dead-letters what is refused for good (and, when giveUp, what exhausts its retries). It
// returns nil when every item is durable in the target or in dead letters; otherwise the
// items still undelivered, in order, and why (ctx ended, or dead letters failed).
func (c *core) deliver(ctx context.Context, items []*item, giveUp bool) ([]*item, error) {
	pending := slices.Clone(items) // reused as scratch below: never the caller's array
	batch := make([]*pipeline.Event, 0, len(items))
	var next []*item
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			c.o.Metrics.Add(c.o.Name, Retried, len(pending))
			if err := sleep(ctx, c.o.Retry.Backoff(attempt)); err != nil {
				return pending, err
			}
		}
		batch = batch[:0]
		now := time.Now()
		for _, it := range pending {
			if it.start.IsZero() {
				it.start = now
			}
			batch = append(batch, it.ev)
		}
		results, err := c.w.Write(ctx, batch)
		if err == nil && len(results) != len(batch) {
			err = fmt.Errorf("writer returned %d results for %d items", len(results), len(batch))
		}
		next = next[:0]
		var dead []*pipeline.Event
		why := "" // the first retryable failure, for the log
		if err != nil {
			why = err.Error()
			c.o.Metrics.Add(c.o.Name, Failed, len(pending))
			for _, it := range pending {
				it.tries++
				if giveUp && c.o.Retry.exhausted(it.tries, it.start) {
					dead = append(dead, c.deadLetter(it.ev, ReasonGaveUp, err.Error()))
					continue
				}
				next = append(next, it)
			}
		} else {
			// A retried item must not overtake, in the target, a later item of its key that
			// succeeded: those are sent again after it, so each key's last delivery stays in
			// input order (the targets are idempotent by transaction id).
			var failedKeys map[string]bool
			written, failed := 0, 0
			for i, it := range pending {
				r := results[i]
				if r == nil {
					if failedKeys != nil && failedKeys[c.o.Key(it.ev)] {
						next = append(next, it)
					} else {
						written++
					}
					continue
				}
				failed++
				ie, ok := errors.AsType[*ItemError](r)
				if !ok {
					ie = &ItemError{Retryable: true, Reason: r.Error()}
				}
				it.tries++
				switch {
				case !ie.Retryable:
					dead = append(dead, c.deadLetter(it.ev, ReasonRejected, ie.Reason))
				case giveUp && c.o.Retry.exhausted(it.tries, it.start):
					dead = append(dead, c.deadLetter(it.ev, ReasonGaveUp, ie.Reason))
				default:
					if why == "" {
						why = ie.Reason
					}
					if failedKeys == nil {
						failedKeys = map[string]bool{}
					}
					failedKeys[c.o.Key(it.ev)] = true
					next = append(next, it)
				}
			}
			c.o.Metrics.Add(c.o.Name, Written, written)
			if failed > 0 {
				c.o.Metrics.Add(c.o.Name, Failed, failed)
			}
		}
		if why != "" && (attempt == 0 || attempt%10 == 9) {
			slog.Warn("sink: delivery failed, retrying", "sink", c.o.Name, "items", len(next), "attempt", attempt+1, "err", why)
		}
		if len(dead) > 0 {
			slog.Warn("sink: dead-lettered", "sink", c.o.Name, "items", len(dead), "reason", dead[0].Err.Error())
			if err := c.writeDead(ctx, dead); err != nil {
				return append(next, itemsOf(dead)...), err
			}
		}
		pending, next = next, pending[:0]
		if ctx.Err() != nil && len(pending) > 0 {
			return pending, ctx.Err()
		}
	}
	return nil, nil
}

// itemsOf wraps dead letters back into items, for a caller that keeps undelivered items.
func itemsOf(evs []*pipeline.Event) []*item {
	out := make([]*item, len(evs))
	for i, ev := range evs {
		orig := *ev
		orig.Err, orig.Raw = nil, nil
		out[i] = &item{ev: &orig}
	}
	return out
}

// deadLetter returns the dead letter of ev: the event with its reason and, as raw, its
// encoding (the decision JSON unless Options.Encode says otherwise).
func (c *core) deadLetter(ev *pipeline.Event, code, reason string) *pipeline.Event {
	d := *ev
	d.Raw = c.o.Encode(nil, ev)
	d.Err = &pipeline.DecodeError{Code: code, Detail: c.o.Name + ": " + reason}
	return &d
}

// writeDead hands dead letters to the dead-letter sink; they are durable after flushDead.
func (c *core) writeDead(ctx context.Context, dead []*pipeline.Event) error {
	c.o.Metrics.Add(c.o.Name, DeadLettered, len(dead))
	if c.o.DeadLetters == nil {
		return nil
	}
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.dlDirty = true
	if err := c.o.DeadLetters.WriteBatch(ctx, dead); err != nil {
		return fmt.Errorf("%s: dead letters: %w", c.o.Name, err)
	}
	return nil
}

// flushDead makes the dead letters written so far durable.
func (c *core) flushDead(ctx context.Context) error {
	if c.o.DeadLetters == nil {
		return nil
	}
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if !c.dlDirty {
		return nil
	}
	if err := c.o.DeadLetters.Flush(ctx); err != nil {
		return fmt.Errorf("%s: dead letters: %w", c.o.Name, err)
	}
	c.dlDirty = false
	return nil
}

// closeAll closes the writer and the dead-letter sink.
func (c *core) closeAll(ctx context.Context) error {
	errs := []error{c.w.Close(ctx)}
	if c.o.DeadLetters != nil {
		c.dlMu.Lock()
		errs = append(errs, c.o.DeadLetters.Close(ctx))
		c.dlMu.Unlock()
	}
	return errors.Join(errs...)
}

// closeContext bounds Close by Options.CloseTimeout when ctx has no deadline.
func (c *core) closeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.o.CloseTimeout)
}

// chunk returns how many items from the front of items make one batch.
func (c *core) chunk(items []*item) int {
	size := 0
	for i, it := range items {
		size += it.size
		if c.o.Batching.full(i+1, size) {
			return i + 1
		}
	}
	return len(items)
}

// requiredSink delivers synchronously: full batches as they fill in WriteBatch, the rest
// in Flush, which returns nil only when everything is durable.
type requiredSink struct {
	*core
	buf      []*item
	bufBytes int
	closed   bool
}

// WriteBatch copies the events and sends every full batch, blocking while the target
// refuses them (this is how a required sink pushes back on the engine).
func (s *requiredSink) WriteBatch(ctx context.Context, events []*pipeline.Event) error {
	if s.closed {
		return ErrClosed
	}
	for _, it := range s.o.cloneItems(events, time.Time{}) {
		s.buf = append(s.buf, it)
		s.bufBytes += it.size
	}
	for len(s.buf) > 0 && s.o.Batching.full(len(s.buf), s.bufBytes) {
		if err := s.sendChunk(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Flush sends everything buffered and returns when it is durable in the target or in dead
// letters; on error (ctx ended, dead letters failing) the rest stays buffered for the next
// Flush.
func (s *requiredSink) Flush(ctx context.Context) error {
	if s.closed {
		return ErrClosed
	}
	for len(s.buf) > 0 {
		if err := s.sendChunk(ctx); err != nil {
			return err
		}
	}
	return s.flushDead(ctx)
}

func (s *requiredSink) sendChunk(ctx context.Context) error {
	n := s.chunk(s.buf)
	rest, err := s.deliver(ctx, s.buf[:n], false)
	tail := s.buf[n:]
	s.buf = append(rest[:len(rest):len(rest)], tail...)
	s.bufBytes = 0
	for _, it := range s.buf {
		s.bufBytes += it.size
	}
	if err != nil {
		return fmt.Errorf("%s: %d items not delivered: %w", s.o.Name, len(s.buf), err)
	}
	return nil
}

// Close flushes what it can within ctx, then closes the writer and dead letters. Items it
// could not deliver are reported in the error; they were never acknowledged.
func (s *requiredSink) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	ctx, cancel := s.closeContext(ctx)
	defer cancel()
	err := s.Flush(ctx)
	s.closed = true
	return errors.Join(err, s.closeAll(ctx))
}

// bestEffort queues copies of the events and delivers them from one goroutine.
type bestEffort struct {
	*core
	mu      sync.Mutex
	queue   []*item
	bytes   int
	closing bool
	closed  bool
	wake    chan struct{}
	done    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
}

func newBestEffort(c *core) *bestEffort {
	s := &bestEffort{core: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s
}

// WriteBatch queues copies of the events; what does not fit goes to dead letters. It never
// waits for the target.
func (s *bestEffort) WriteBatch(ctx context.Context, events []*pipeline.Event) error {
	items := s.o.cloneItems(events, time.Now())
	var over []*pipeline.Event
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	for _, it := range items {
		if len(s.queue) >= s.o.QueueSize {
			over = append(over, s.deadLetter(it.ev, ReasonOverflow, fmt.Sprintf("queue of %d items full", s.o.QueueSize)))
			continue
		}
		s.queue = append(s.queue, it)
		s.bytes += it.size
	}
	s.mu.Unlock()
	s.signal()
	if len(over) > 0 {
		return s.writeDead(ctx, over)
	}
	return nil
}

func (s *bestEffort) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Flush makes the dead letters written so far durable. It does not wait for the target:
// that is what best-effort means.
func (s *bestEffort) Flush(ctx context.Context) error {
	return s.flushDead(ctx)
}

// run delivers batches until the sink is closed and its queue drained.
func (s *bestEffort) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return
			}
			select {
			case <-s.wake:
			case <-s.ctx.Done():
			}
			continue
		}
		if !s.closing && !s.o.Batching.full(len(s.queue), s.bytes) && s.ctx.Err() == nil {
			if wait := s.o.Batching.Period - time.Since(s.queue[0].enq); wait > 0 {
				s.mu.Unlock()
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-s.wake:
				case <-s.ctx.Done():
				}
				continue
			}
		}
		n := s.chunk(s.queue)
		batch := make([]*item, n)
		copy(batch, s.queue[:n])
		clear(s.queue[:n])
		s.queue = s.queue[n:]
		for _, it := range batch {
			s.bytes -= it.size
		}
		s.mu.Unlock()

		var rest []*item
		var err error
		if s.ctx.Err() == nil {
			rest, err = s.deliver(s.ctx, batch, true)
		} else {
			rest, err = batch, s.ctx.Err()
		}
		if err == nil {
			err = s.flushDead(s.ctx)
		}
		if len(rest) > 0 {
			dead := make([]*pipeline.Event, len(rest))
			for i, it := range rest {
				dead[i] = s.deadLetter(it.ev, ReasonClosed, "closed before delivery: "+err.Error())
			}
			if derr := s.writeDead(context.Background(), dead); derr != nil {
				slog.Error("sink: dead letters lost", "sink", s.o.Name, "items", len(dead), "err", derr)
			}
		}
		if err != nil && len(rest) == 0 && s.ctx.Err() == nil {
			slog.Error("sink: dead letters", "sink", s.o.Name, "err", err)
		}
	}
}

// Close delivers what is queued, waiting until ctx ends; what is still queued then goes to
// dead letters (reason sink_closed). It then closes the writer and dead letters.
func (s *bestEffort) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closing, s.closed = true, true
	s.mu.Unlock()
	ctx, cancel := s.closeContext(ctx)
	defer cancel()
	s.signal()
	var err error
	select {
	case <-s.done:
	case <-ctx.Done():
		err = fmt.Errorf("%s: closed before the queue drained: %w", s.o.Name, ctx.Err())
		s.cancel()
		<-s.done
	}
	s.cancel()
	return errors.Join(err, s.flushDead(context.Background()), s.closeAll(ctx))
}

// Name is the sink's name, as its metrics label it.
func (c *core) Name() string { return c.o.Name }
