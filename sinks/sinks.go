// Package sinks turns a small per-kind Writer (OpenSearch, webhook alerts, ...) into a
// pipeline.Sink with the guarantees of docs/sinks.md: batching by count, bytes and period;
// retries of the retryable items only, with exponential backoff and jitter; dead letters,
// with their reason, for what can never be written; and two delivery modes.
//
// A required sink acknowledges nothing it has not written: Flush returns nil only when every
// event written before it is durable in the target or in the sink's dead letters, and it
// retries retryable failures until they succeed or its context is cancelled, so a target
// that is down pushes back on the engine and its sources.
//
// A best-effort sink copies events into a bounded queue and delivers them in the
// background; what still fails after its retries, or finds the queue full, goes to dead
// letters. It never stalls the engine, and its Flush makes nothing durable in the target.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Writer is what a sink kind implements: one attempt at one batch.
type Writer interface {
	// Write sends one batch. It returns one result per item: nil for an item that is now
	// durable in the target, a *ItemError for the others (any other error counts as
	// retryable). A non-nil batch error means none is durable (the framework retries all of
	// them). Write must not keep the events.
	Write(ctx context.Context, batch []*pipeline.Event) ([]error, error)
	// Close releases the writer's connections.
	Close(ctx context.Context) error
}

// ItemError is why one item of a batch was not written.
type ItemError struct {
	Retryable bool   // a later attempt may succeed (429, 5xx, a timeout)
	Reason    string // what the target said, for the dead letter: "mapper_parsing_exception: ..."
}

// Error returns the reason, marked "retryable: " when a retry may help.
func (e *ItemError) Error() string {
	if e.Retryable {
		return "retryable: " + e.Reason
	}
	return e.Reason
}

// Retryable returns an *ItemError that a later attempt may fix.
func Retryable(format string, args ...any) *ItemError {
	return &ItemError{Retryable: true, Reason: fmt.Sprintf(format, args...)}
}

// Permanent returns an *ItemError that no later attempt will fix: the item goes to dead letters.
func Permanent(format string, args ...any) *ItemError {
	return &ItemError{Reason: fmt.Sprintf(format, args...)}
}

// Dead-letter reason codes written by this package (the part of the reason before ": ").
const (
	ReasonRejected = "sink_rejected" // the target refused the item for good (a mapping error, a 400)
	ReasonGaveUp   = "sink_gave_up"  // a best-effort sink's retries ran out
	ReasonOverflow = "sink_overflow" // a best-effort sink's queue was full
	ReasonClosed   = "sink_closed"   // a best-effort sink was closed before delivering
)

// ErrClosed is returned by a sink used after Close.
var ErrClosed = errors.New("sink closed")

// Options configure a Sink. Zero values take the defaults of pipeline/config.
type Options struct {
	Name        string        // the sink's name in metrics and dead letters, e.g. "opensearch-0"
	Required    bool          // see the package documentation
	Batching    Batching      // how items are grouped into Write calls
	Retry       Retry         // how failed items are retried
	QueueSize   int           // best-effort: most queued items; default 100000
	DeadLetters pipeline.Sink // receives what can never be written; nil discards it (still counted)
	Metrics     Metrics       // nil: no metrics
	// CloseTimeout bounds Close when its context has no deadline; default 30s. What is not
	// delivered by then was never acknowledged (required) or goes to dead letters
	// (best-effort, reason sink_closed).
	CloseTimeout time.Duration
	// Key returns the ordering key of an event; default its card id. Retries keep the last
	// delivery of each key's events in input order.
	Key func(ev *pipeline.Event) string
	// Size estimates an event's encoded bytes for Batching.ByteSize; default EstimateSize.
	Size func(ev *pipeline.Event) int
	// Encode writes the event as the raw text of its dead letter; default the decision JSON.
	Encode func(dst []byte, ev *pipeline.Event) []byte
}

// New wraps w into a pipeline.Sink with the options' guarantees. The sink owns w and
// o.DeadLetters: its Close closes both.
func New(w Writer, o Options) pipeline.Sink {
	o.defaults()
	c := &core{w: w, o: o}
	if o.Required {
		return &requiredSink{core: c}
	}
	return newBestEffort(c)
}

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = "sink"
	}
	o.Batching.defaults()
	o.Retry.defaults()
	if o.QueueSize <= 0 {
		o.QueueSize = 100000
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 30 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = NopMetrics{}
	}
	if o.Key == nil {
		o.Key = func(ev *pipeline.Event) string { return ev.Tx.CardID }
	}
	if o.Size == nil {
		o.Size = EstimateSize
	}
	if o.Encode == nil {
		o.Encode = func(dst []byte, ev *pipeline.Event) []byte { return pipeline.AppendDecisionJSON(dst, ev, nil) }
	}
}

// EstimateSize is a cheap estimate of an event's size once encoded as a document, for
// byte-size batching: its strings plus a fixed overhead for names and numbers.
func EstimateSize(ev *pipeline.Event) int {
	tx := &ev.Tx
	n := 320 + len(tx.ID) + len(tx.TSText) + len(tx.CardID) + len(tx.AccountID) + len(tx.MerchantID) +
		len(tx.CustomerID) + len(tx.TerminalID) + len(ev.Decision.Model) + len(ev.Decision.Rules) + 24*len(ev.Features)
	for _, r := range ev.Decision.Reasons {
		n += len(r) + 3
	}
	return n
}

// copyEvent copies what a sink needs of ev past the next Flush (the engine reuses the
// events and their slices) into c; strings are immutable and shared.
func copyEvent(c, ev *pipeline.Event, reasons []string, features []float64) {
	*c = pipeline.Event{Seq: ev.Seq, Source: ev.Source, Pos: ev.Pos, Tx: ev.Tx, Decision: ev.Decision, Late: ev.Late}
	c.Decision.Reasons = reasons
	c.Features = features
}

// cloneItems copies a batch of events into new items, with a few allocations per batch
// rather than several per event.
func (o *Options) cloneItems(events []*pipeline.Event, now time.Time) []*item {
	nr, nf := 0, 0
	for _, ev := range events {
		nr += len(ev.Decision.Reasons)
		nf += len(ev.Features)
	}
	evs := make([]pipeline.Event, len(events))
	items := make([]item, len(events))
	ptrs := make([]*item, len(events))
	reasons := make([]string, 0, nr)
	features := make([]float64, 0, nf)
	for i, ev := range events {
		r0, f0 := len(reasons), len(features)
		reasons = append(reasons, ev.Decision.Reasons...)
		features = append(features, ev.Features...)
		var rs []string
		if ev.Decision.Reasons != nil {
			rs = reasons[r0:len(reasons):len(reasons)]
		}
		var fs []float64
		if ev.Features != nil {
			fs = features[f0:len(features):len(features)]
		}
		copyEvent(&evs[i], ev, rs, fs)
		items[i] = item{ev: &evs[i], size: o.Size(ev), enq: now}
		ptrs[i] = &items[i]
	}
	return ptrs
}
