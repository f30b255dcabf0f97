package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// EngineConfig sizes an Engine. Zero values take the defaults noted on each field.
type EngineConfig struct {
	Partitions     int           // partition workers; default GOMAXPROCS
	Decoders       int           // decode workers; default GOMAXPROCS
	QueueBatches   int           // batches in flight between stages; default 16
	DedupTTL       time.Duration // event time a transaction id is remembered; default 48h
	LedgerBatch    int           // most postings per ledger commit; default 4096
	LedgerMaxDelay time.Duration // longest a decision waits for its ledger batch; default 5ms
	KeepFeatures   bool          // copy feature values onto each event for the sinks
	FlushInterval  time.Duration // longest a written batch waits for its sinks' flush; default 100ms
	MaxUnflushed   int           // most batches written but not yet flushed; default 4 × QueueBatches
}

func (c *EngineConfig) withDefaults() EngineConfig {
	o := *c
	if o.Partitions <= 0 {
		o.Partitions = runtime.GOMAXPROCS(0)
	}
	if o.Decoders <= 0 {
		o.Decoders = runtime.GOMAXPROCS(0)
	}
	if o.QueueBatches <= 0 {
		o.QueueBatches = 16
	}
	if o.DedupTTL <= 0 {
		o.DedupTTL = 48 * time.Hour
	}
	if o.LedgerBatch <= 0 {
		o.LedgerBatch = 4096
	}
	if o.LedgerMaxDelay <= 0 {
		o.LedgerMaxDelay = 5 * time.Millisecond
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.MaxUnflushed <= 0 {
		o.MaxUnflushed = 4 * o.QueueBatches
	}
	return o
}

// Engine runs the flow of DESIGN.md: source → decode → router → partition workers →
// ledger stage → sinks. Each stage is one or more goroutines joined by bounded channels, so
// a slow stage slows the source and memory stays bounded. Output order is input order.
type Engine struct {
	cfg         EngineConfig
	schema      *FeatureSchema
	factories   []ScorerFactory
	ledger      Ledger
	sinks       []Sink
	deadLetters Sink
	model       string
	rules       string
	stats       Stats
}

// EngineOptions are the parts an Engine is built from.
type EngineOptions struct {
	Config      EngineConfig
	Schema      *FeatureSchema  // the schema the scorer factories declared their features on
	Scorers     []ScorerFactory // run in this order for every transaction
	Ledger      Ledger          // nil: no ledger, approved decisions say "skipped"
	Sinks       []Sink          // receive decided events
	DeadLetters Sink            // receives refused events; nil discards them (they are still counted)
}

// NewEngine builds an engine from its parts.
func NewEngine(o EngineOptions) (*Engine, error) {
	if o.Schema == nil {
		o.Schema = NewFeatureSchema()
	}
	e := &Engine{
		cfg:         o.Config.withDefaults(),
		schema:      o.Schema,
		factories:   o.Scorers,
		ledger:      o.Ledger,
		sinks:       o.Sinks,
		deadLetters: o.DeadLetters,
	}
	for _, f := range o.Scorers {
		switch kind, v := f.Version(); kind {
		case "model":
			e.model = v
		case "rules":
			e.rules = v
		}
	}
	e.stats.DeadLetters = make(map[string]int64)
	return e, nil
}

// Schema returns the feature schema the engine computes.
func (e *Engine) Schema() *FeatureSchema { return e.schema }

// Stats returns the counts of the last Run. Call it after Run returns.
func (e *Engine) Stats() Stats { return e.stats }

// Stats counts what an engine run did.
type Stats struct {
	Events      int64            // input messages
	Decided     int64            // transactions decided
	ByOutcome   [3]int64         // decided, by Outcome
	ByLedger    [4]int64         // decided, by LedgerStatus
	DeadLetters map[string]int64 // refused, by reason code
	Duplicates  int64            // transaction ids seen again within the dedup TTL (also dead letters)
	Late        int64
	Elapsed     time.Duration
}

// DeadLetterTotal is the number of refused events.
func (s Stats) DeadLetterTotal() int64 {
	var n int64
	for _, c := range s.DeadLetters {
		n += c
	}
	return n
}

// batch is the unit of work between stages. One goroutine at a time owns each part of it:
// decoders fill events, the router splits it, each partition writes only its own events.
type batch struct {
	events  []Event
	ack     AckFunc
	decoded chan struct{} // closed when every event is decoded
	scored  chan struct{} // closed when every partition finished its part
	pending sync.WaitGroup
}

type subBatch struct {
	b   *batch
	idx []int32
}

// Run reads src until it ends or ctx is cancelled, and returns when every event read has
// been decided and written to the sinks (or an error stopped the run). On cancellation it
// stops reading and drains the work in flight.
func (e *Engine) Run(ctx context.Context, src Source) error {
	start := time.Now()
	defer func() { e.stats.Elapsed = time.Since(start) }()

	partitions := make([]*partition, e.cfg.Partitions)
	for p := range partitions {
		pt, err := newPartition(p, e)
		if err != nil {
			return err
		}
		partitions[p] = pt
	}

	// A stage that fails cancels the run so the others stop; the first error is returned.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fail := func(err error) { cancel(err) }

	q := e.cfg.QueueBatches
	decodeQ := make(chan *batch, q)
	orderQ := make(chan *batch, q)
	seqQ := make(chan *batch, q)
	sinkQ := make(chan *batch, q)
	partQ := make([]chan subBatch, len(partitions))
	for i := range partQ {
		partQ[i] = make(chan subBatch, q)
	}

	var wg sync.WaitGroup
	var readErr error
	wg.Go(func() {
		defer close(decodeQ)
		defer close(orderQ)
		readErr = e.read(runCtx, src, decodeQ, orderQ)
	})
	var decoders sync.WaitGroup
	for range e.cfg.Decoders {
		decoders.Go(func() {
			for b := range decodeQ {
				decodeBatch(b)
				close(b.decoded)
			}
		})
	}
	wg.Go(func() {
		defer func() {
			for _, c := range partQ {
				close(c)
			}
			close(seqQ)
		}()
		route(orderQ, partQ, seqQ)
	})
	for i, pt := range partitions {
		wg.Go(func() { pt.run(partQ[i]) })
	}
	var ledgerErr error
	wg.Go(func() {
		defer close(sinkQ)
		if ledgerErr = e.ledgerStage(seqQ, sinkQ); ledgerErr != nil {
			fail(ledgerErr)
			for b := range seqQ { // unblock the stages before
				<-b.scored
			}
		}
	})
	var sinkErr error
	wg.Go(func() {
		if sinkErr = e.sinkStage(runCtx, sinkQ); sinkErr != nil {
			fail(sinkErr)
			for range sinkQ {
			}
		}
	})
	wg.Wait()
	decoders.Wait()
	return errors.Join(readErr, ledgerErr, sinkErr)
}

func (e *Engine) read(ctx context.Context, src Source, decodeQ, orderQ chan<- *batch) error {
	var seq uint64
	name := src.Name()
	for {
		if ctx.Err() != nil {
			return nil // cancelled: drain what was read
		}
		msgs, ack, err := src.ReadBatch(ctx)
		if err != nil {
			if errors.Is(err, ErrEndOfInput) {
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s: %w", name, err)
		}
		if len(msgs) == 0 {
			if ack != nil {
				_ = ack(ctx, nil)
			}
			continue
		}
		b := &batch{
			events:  make([]Event, len(msgs)),
			ack:     ack,
			decoded: make(chan struct{}),
			scored:  make(chan struct{}),
		}
		for i, m := range msgs {
			ev := &b.events[i]
			ev.Seq = seq
			ev.Source = name
			ev.Pos = m.Pos
			ev.Raw = m.Data
			seq++
		}
		decodeQ <- b
		orderQ <- b
	}
}

func decodeBatch(b *batch) {
	for i := range b.events {
		ev := &b.events[i]
		if err := DecodeTransaction(ev.Raw, &ev.Tx); err != nil {
			ev.Err = err.(*DecodeError)
		}
	}
}

// route hands each decoded event to the partition that owns its card, batch by batch in
// input order, so every partition sees its keys in input order.
func route(orderQ <-chan *batch, partQ []chan subBatch, seqQ chan<- *batch) {
	n := uint32(len(partQ))
	parts := make([][]int32, n)
	for b := range orderQ {
		<-b.decoded
		for i := range b.events {
			ev := &b.events[i]
			if ev.Err != nil {
				continue
			}
			p := PartitionOf(ev.Tx.CardID, n)
			parts[p] = append(parts[p], int32(i))
		}
		for p, idx := range parts {
			if len(idx) == 0 {
				continue
			}
			b.pending.Add(1)
			partQ[p] <- subBatch{b: b, idx: idx}
			parts[p] = make([]int32, 0, cap(idx))
		}
		go func() { b.pending.Wait(); close(b.scored) }()
		seqQ <- b
	}
}

// PartitionOf maps a key to one of n partitions (FNV-1a), the same on every machine.
func PartitionOf(key string, n uint32) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return h % n
}

// ledgerStage takes scored batches in input order, posts their approved transactions in
// group commits, and passes each batch on once its postings are durable.
func (e *Engine) ledgerStage(seqQ <-chan *batch, sinkQ chan<- *batch) error {
	var held []*batch
	var reqs []PostRequest
	var owners []*Event
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() error {
		if len(reqs) > 0 {
			if err := e.ledger.Post(context.Background(), reqs); err != nil {
				return fmt.Errorf("ledger: %w", err)
			}
			for i := range reqs {
				applyPosting(owners[i], &reqs[i])
			}
		}
		for _, b := range held {
			sinkQ <- b
		}
		held, reqs, owners = held[:0], reqs[:0], owners[:0]
		return nil
	}
	for {
		var b *batch
		var ok bool
		if len(held) == 0 {
			b, ok = <-seqQ
		} else {
			select {
			case b, ok = <-seqQ:
			case <-timer.C:
				if err := flush(); err != nil {
					return err
				}
				continue
			}
		}
		if !ok {
			timer.Stop()
			return flush()
		}
		<-b.scored
		if e.ledger != nil {
			for i := range b.events {
				ev := &b.events[i]
				if ev.Err != nil || ev.Decision.Outcome != Approve {
					continue
				}
				reqs = append(reqs, PostRequest{
					TxID: ev.Tx.ID, TS: ev.Tx.TS, Payer: ev.Tx.AccountID, Payee: ev.Tx.MerchantID,
					Amount: ev.Tx.Amount, Currency: ev.Tx.Currency,
				})
				owners = append(owners, ev)
			}
		}
		if len(held) == 0 {
			timer.Reset(e.cfg.LedgerMaxDelay)
		}
		held = append(held, b)
		if len(reqs) >= e.cfg.LedgerBatch || e.ledger == nil {
			timer.Stop()
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

func applyPosting(ev *Event, r *PostRequest) {
	ev.Decision.Ledger = r.Status
	if r.Status == LedgerRejected {
		ev.Decision.Outcome = Decline
		reason := r.Reason
		if reason == "" {
			reason = "ledger:rejected"
		}
		ev.Decision.Reasons = append([]string{reason}, ev.Decision.Reasons...)
	}
}

// sinkStage writes each batch to every sink in input order and counts it. It flushes the
// sinks when no further batch is waiting, when MaxUnflushed batches are written, or when
// FlushInterval has passed since the last flush; only then does it acknowledge the batches
// to their source, in order.
func (e *Engine) sinkStage(ctx context.Context, sinkQ <-chan *batch) error {
	var decided, dead []*Event
	var unflushed []*batch
	lastFlush := time.Now()
	flush := func() error {
		for _, s := range e.sinks {
			if err := s.Flush(ctx); err != nil {
				return fmt.Errorf("sink: %w", err)
			}
		}
		if e.deadLetters != nil {
			if err := e.deadLetters.Flush(ctx); err != nil {
				return fmt.Errorf("dead letters: %w", err)
			}
		}
		for _, b := range unflushed {
			if b.ack != nil {
				if err := b.ack(ctx, nil); err != nil {
					return fmt.Errorf("ack: %w", err)
				}
			}
		}
		clear(unflushed)
		unflushed = unflushed[:0]
		lastFlush = time.Now()
		return nil
	}
	for b := range sinkQ {
		decided, dead = decided[:0], dead[:0]
		for i := range b.events {
			ev := &b.events[i]
			e.stats.Events++
			if ev.Err != nil {
				dead = append(dead, ev)
				e.stats.DeadLetters[ev.Err.Code]++
				if ev.Err.Code == ReasonDuplicateID {
					e.stats.Duplicates++
				}
				continue
			}
			decided = append(decided, ev)
			e.stats.Decided++
			e.stats.ByOutcome[ev.Decision.Outcome]++
			e.stats.ByLedger[ev.Decision.Ledger]++
			if ev.Late {
				e.stats.Late++
			}
		}
		if len(decided) > 0 {
			for _, s := range e.sinks {
				if err := s.WriteBatch(ctx, decided); err != nil {
					return fmt.Errorf("sink: %w", err)
				}
			}
		}
		if len(dead) > 0 && e.deadLetters != nil {
			if err := e.deadLetters.WriteBatch(ctx, dead); err != nil {
				return fmt.Errorf("dead letters: %w", err)
			}
		}
		unflushed = append(unflushed, b)
		if len(sinkQ) == 0 || len(unflushed) >= e.cfg.MaxUnflushed || time.Since(lastFlush) >= e.cfg.FlushInterval {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
