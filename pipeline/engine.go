package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

	// MaxOutOfOrderness is how far behind the newest event time seen an event may be and
	// still be on time: the watermark is the newest event time minus this. Default 30s.
	MaxOutOfOrderness time.Duration
	// AllowedLateness is how far behind the watermark an event may be and still update
	// state; a later event is decided from the state as it is, flagged late and counted.
	// Default 5m.
	AllowedLateness time.Duration
	// IdleTimeout is how long a source partition may deliver nothing before the watermark
	// stops waiting for it. Default 1m.
	IdleTimeout time.Duration

	CheckpointEvery time.Duration // time between checkpoints when a store is given; default 10s
	CheckpointKeep  int           // checkpoints kept; default 3

	// Groups, when set, are the stream partitions this engine owns (instance i of N of a
	// scaled-out deployment): the engine runs one partition worker per listed stream
	// partition, hands each event to the worker of the stream partition it came from, and
	// checkpoints each one's state in a file of its own with the source position it covers,
	// so that another instance can take that partition over. Partitions is ignored. The
	// source must implement GroupPositioner.
	Groups []int
	// Instance names this engine among the instances sharing the stream ("1/3"), for
	// manifests and messages.
	Instance string

	autoPartitions bool             // Partitions was left to the default: a checkpoint may set it
	now            func() time.Time // the wall clock, for idleness; tests replace it
}

func (c *EngineConfig) withDefaults() EngineConfig {
	o := *c
	if len(o.Groups) > 0 {
		o.Partitions = len(o.Groups)
	} else if o.Partitions <= 0 {
		o.Partitions = runtime.GOMAXPROCS(0)
		o.autoPartitions = true
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
	if o.MaxOutOfOrderness <= 0 {
		o.MaxOutOfOrderness = 30 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = time.Minute
	}
	if o.AllowedLateness <= 0 {
		o.AllowedLateness = 5 * time.Minute
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 10 * time.Second
	}
	if o.CheckpointKeep <= 0 {
		o.CheckpointKeep = 3
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
	store       CheckpointStore
	restored    *Checkpoint
	log         *slog.Logger
	metrics     *Metrics

	ckptFailures atomic.Int64 // counted by two goroutines: the sink stage and the checkpoint writer
	queues       *queues      // the running flow's channels, for the queue-depth gauges
	ordered      []OrderedScorer
	crossIdx     []int // schema indices of the ordered scorers' features, in Event.Cross order
	shadowModel  string
	chargeback   Chargeback

	peers       []CheckpointStore // other instances' stores, read to take partitions over
	groupWorker []int32           // stream partition → worker, -1 when not owned (Groups set)
	groups      map[int]groupState
}

// groupState is the state of one owned stream partition chosen on restore.
type groupState struct {
	data      []byte
	pos       uint64
	newest    int64 // its newest event time, when hasNewest
	hasNewest bool
	from      string // the checkpoint it came from
}

// queues are the channels between the stages of a run.
type queues struct {
	decode    chan *batch
	partition []chan subBatch
	ledger    chan *batch
}

// EngineOptions are the parts an Engine is built from.
type EngineOptions struct {
	Config      EngineConfig
	Schema      *FeatureSchema  // the schema the scorer factories declared their features on
	Scorers     []ScorerFactory // run in this order for every transaction
	Ledger      Ledger          // nil: no ledger, approved decisions say "skipped"
	Sinks       []Sink          // receive decided events
	DeadLetters Sink            // receives refused events; nil discards them (they are still counted)
	Checkpoints CheckpointStore // where checkpoints go; nil: none
	Logger      *slog.Logger    // nil: discard
	Metrics     *Metrics        // nil: kept in a registry of its own, unexported
	// Ordered scorers run in input order before the partitions (cross-card features).
	Ordered []OrderedScorer
	// Chargeback, when set, is called by the ledger stage for every feedback that
	// confirms fraud, after the postings before it are durable.
	Chargeback Chargeback
	// Peers are the checkpoint stores of the other instances sharing the stream (with
	// Config.Groups): Restore takes each owned stream partition's state from whichever
	// checkpoint, this instance's or a peer's, covers it furthest.
	Peers []CheckpointStore
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
		store:       o.Checkpoints,
		log:         o.Logger,
		metrics:     o.Metrics,
		ordered:     o.Ordered,
		chargeback:  o.Chargeback,
		peers:       o.Peers,
	}
	if g := e.cfg.Groups; len(g) > 0 {
		e.groupWorker = make([]int32, slices.Max(g)+1)
		for i := range e.groupWorker {
			e.groupWorker[i] = -1
		}
		for w, p := range g {
			if p < 0 || e.groupWorker[p] >= 0 {
				return nil, fmt.Errorf("engine groups %v: each stream partition must be listed once, and be 0 or more", g)
			}
			e.groupWorker[p] = int32(w)
		}
	}
	for _, o := range e.ordered {
		e.crossIdx = append(e.crossIdx, o.Features()...)
	}
	if e.metrics == nil {
		e.metrics = NewMetrics(prometheus.NewRegistry())
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	for _, f := range o.Scorers {
		switch kind, v := f.Version(); kind {
		case "model":
			if s, ok := strings.CutPrefix(v, "shadow:"); ok {
				e.shadowModel = s
				continue
			}
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
	Late        int64            // decided later than the allowed lateness, state untouched
	Feedback    int64            // feedback events applied
	// FeedbackFraud counts feedback events that confirmed fraud; Chargebacks splits them by
	// what the ledger did (posted: reversed; skipped: never posted; duplicate: reversed
	// before; rejected), when chargebacks are on.
	FeedbackFraud int64
	Chargebacks   [4]int64
	Watermark     int64 // the engine watermark at the end, Unix ms
	Checkpoints   int64 // checkpoints written
	// CheckpointFailures counts checkpoints that could not be written; the previous one
	// stays the newest complete one.
	CheckpointFailures int64
	CheckpointsSkipped int64         // barriers that came while the previous checkpoint was still being written
	LastCheckpoint     time.Duration // how long the last checkpoint took, barrier to manifest
	Elapsed            time.Duration
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
	read    time.Time // when the source returned it
	routed  time.Time // when the router handed it to the partitions
	scored2 time.Time // when the ledger stage received it scored
	written time.Time // when the sink stage wrote it
	events  []Event
	ack     AckFunc
	decoded chan struct{} // closed when every event is decoded
	scored  chan struct{} // closed when every partition finished its part
	pending sync.WaitGroup
	barrier *barrier // non-nil: a checkpoint barrier, with no events
}

// barrier marks a point of the input where every stage records its state. Stages pass it
// on in order, so each records exactly the effect of the events before it.
type barrier struct {
	id        uint64
	final     bool // at the end of the input or on shutdown
	started   time.Time
	sourcePos []byte
	groupPos  map[int]uint64 // per owned stream partition, with EngineConfig.Groups
	groupTime map[int]int64  // per owned stream partition: its newest event time
	nextSeq   uint64
	watermark int64
	snapshots [][]byte // per partition
	ordered   [][]byte // per ordered scorer
	errs      []error  // per partition, then per ordered scorer
}

type subBatch struct {
	b   *batch
	idx []int32
}

// Restore loads the newest complete checkpoint of the engine's checkpoint store, so that
// the next Run resumes from it: partition state, the source position, the sinks' committed
// output and the sequence numbers. It returns nil when the store holds no checkpoint.
func (e *Engine) Restore(ctx context.Context) (*Manifest, error) {
	if e.store == nil {
		return nil, nil
	}
	c, err := e.latest(ctx, e.store)
	if err != nil {
		return nil, err
	}
	if len(e.cfg.Groups) > 0 {
		return e.restoreGroups(ctx, c)
	}
	if c == nil {
		return nil, nil
	}
	return &c.Manifest, e.RestoreFrom(c)
}

// latest is the newest complete checkpoint of store, or nil when it holds none.
func (e *Engine) latest(ctx context.Context, store CheckpointStore) (*Checkpoint, error) {
	c, err := store.Latest(ctx)
	if errors.Is(err, ErrNoCheckpoint) {
		if err.Error() != ErrNoCheckpoint.Error() {
			e.log.Warn("no usable checkpoint", "store", store.String(), "err", err)
		}
		return nil, nil
	}
	return c, err
}

// restoreGroups chooses, for each owned stream partition, the checkpoint that covers it
// furthest among this instance's newest (own, possibly nil) and each peer's newest: the
// partition resumes from that checkpoint's state and position. The rest (sinks, cross-card
// scorers, sequence numbers) resumes from this instance's own checkpoint.
func (e *Engine) restoreGroups(ctx context.Context, own *Checkpoint) (*Manifest, error) {
	var cands []*Checkpoint
	if own != nil {
		if own.Manifest.Groups == nil {
			return nil, fmt.Errorf("checkpoint %s was taken by an instance that did not own stream partitions (no scale-out): it cannot resume a scaled-out instance; start from an empty checkpoint store, or run without scale.instances", own.Location)
		}
		cands = append(cands, own)
	}
	for _, st := range e.peers {
		c, err := e.latest(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("read the checkpoints of peer %s: %w", st, err)
		}
		if c != nil && c.Manifest.Groups != nil {
			cands = append(cands, c)
		}
	}
	e.restored = own
	e.groups = make(map[int]groupState, len(e.cfg.Groups))
	for _, g := range e.cfg.Groups {
		best := -1
		for i, c := range cands {
			pos, ok := c.Manifest.Groups[g]
			if ok && (best < 0 || pos > cands[best].Manifest.Groups[g]) {
				best = i
			}
		}
		if best < 0 {
			continue
		}
		c := cands[best]
		data, ok := c.Files[partitionFile(g)]
		if !ok {
			return nil, fmt.Errorf("checkpoint %s lists stream partition %d but lacks %s", c.Location, g, partitionFile(g))
		}
		ts, ok := c.Manifest.GroupTimes[g]
		e.groups[g] = groupState{data: data, pos: c.Manifest.Groups[g], newest: ts, hasNewest: ok, from: c.Location}
	}
	if own == nil && len(e.groups) == 0 {
		return nil, nil
	}
	if own != nil {
		return &own.Manifest, nil
	}
	return &Manifest{Instance: e.cfg.Instance, Partitions: e.cfg.Partitions}, nil
}

// RestoreFrom makes the next Run resume from checkpoint c.
func (e *Engine) RestoreFrom(c *Checkpoint) error {
	m := c.Manifest
	if !e.cfg.autoPartitions && e.cfg.Partitions != m.Partitions {
		return fmt.Errorf("checkpoint %s was taken with %d partitions, the config asks for %d: set engine.partitions to %d (or 0) to resume from it",
			c.Location, m.Partitions, e.cfg.Partitions, m.Partitions)
	}
	e.cfg.Partitions = m.Partitions
	e.restored = c
	return nil
}

// Run reads src until it ends or ctx is cancelled, and returns when every event read has
// been decided and written to the sinks (or an error stopped the run). On cancellation it
// stops reading, drains the work in flight and, with a checkpoint store, takes a final
// checkpoint.
func (e *Engine) Run(ctx context.Context, src Source) error {
	start := time.Now()
	defer func() {
		e.stats.Elapsed = time.Since(start)
		e.stats.CheckpointFailures = e.ckptFailures.Load()
	}()

	nextSeq := uint64(1) // 0 is no decision: the ledger stores it with each entry
	var watermark int64 = math.MinInt64
	nextID := uint64(1)
	if e.store != nil {
		if _, ok := src.(Positioner); !ok {
			return fmt.Errorf("source %s cannot rewind, so a checkpoint could not resume it: read a file, or turn checkpoints off", src.Name())
		}
	}
	if len(e.cfg.Groups) > 0 {
		if _, ok := src.(GroupPositioner); !ok {
			return fmt.Errorf("source %s has no stream partitions to share between instances: scale-out needs a partitioned NATS stream", src.Name())
		}
	}
	partitions := make([]*partition, e.cfg.Partitions)
	for p := range partitions {
		pt, err := newPartition(p, e)
		if err != nil {
			return err
		}
		partitions[p] = pt
	}
	if e.groups != nil {
		if err := e.restoreOwned(src, partitions); err != nil {
			return err
		}
		if c := e.restored; c != nil {
			nextSeq, watermark, nextID = c.Manifest.NextSeq, c.Manifest.Watermark, c.Manifest.ID+1
		}
	} else if c := e.restored; c != nil {
		if err := e.restore(c, src, partitions); err != nil {
			return err
		}
		nextSeq, watermark, nextID = c.Manifest.NextSeq, c.Manifest.Watermark, c.Manifest.ID+1
		e.log.Info("resumed from checkpoint", "checkpoint", c.Location, "next_seq", nextSeq)
	}

	// Cancelling ctx stops the reading only; the stages after it drain with a context that
	// is cancelled when one of them fails, so the first error stops them all.
	workCtx, fail := context.WithCancelCause(context.WithoutCancel(ctx))
	defer fail(nil)

	q := e.cfg.QueueBatches
	decodeQ := make(chan *batch, q)
	orderQ := make(chan *batch, q)
	seqQ := make(chan *batch, q)
	sinkQ := make(chan *batch, q)
	partQ := make([]chan subBatch, len(partitions))
	for i := range partQ {
		partQ[i] = make(chan subBatch, q)
	}
	e.queues = &queues{decode: decodeQ, partition: partQ, ledger: seqQ}

	var wg sync.WaitGroup
	var readErr error
	wg.Go(func() {
		defer close(decodeQ)
		defer close(orderQ)
		stop, cancel := context.WithCancel(ctx)
		defer cancel()
		context.AfterFunc(workCtx, cancel)
		readErr = e.read(stop, src, nextSeq, nextID, decodeQ, orderQ)
	})
	var decoders sync.WaitGroup
	for range e.cfg.Decoders {
		decoders.Go(func() {
			for b := range decodeQ {
				began := time.Now()
				decodeBatch(b)
				e.metrics.stages[stageDecode].Observe(time.Since(began).Seconds())
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
		e.stats.Watermark = e.route(orderQ, partQ, seqQ, watermark)
	})
	for i, pt := range partitions {
		wg.Go(func() { pt.run(partQ[i]) })
	}
	var ledgerErr error
	wg.Go(func() {
		defer close(sinkQ)
		_, answers := src.(Responder)
		if ledgerErr = e.ledgerStage(workCtx, seqQ, sinkQ, answers); ledgerErr != nil {
			fail(ledgerErr)
			for b := range seqQ { // unblock the stages before
				<-b.scored
			}
		}
	})
	var sinkErr error
	wg.Go(func() {
		if sinkErr = e.sinkStage(workCtx, sinkQ, src); sinkErr != nil {
			fail(sinkErr)
			for range sinkQ {
			}
		}
	})
	wg.Wait()
	decoders.Wait()
	return errors.Join(readErr, ledgerErr, sinkErr)
}

// restoreOwned applies what restoreGroups chose: each owned stream partition's state and
// position, and this instance's own checkpoint for the rest.
func (e *Engine) restoreOwned(src Source, partitions []*partition) error {
	pos := make(map[int]uint64, len(e.groups))
	for _, pt := range partitions {
		g, ok := e.groups[pt.id]
		if !ok {
			e.log.Info("stream partition starts without state: no checkpoint covers it", "partition", pt.id)
			continue
		}
		if err := pt.restore(g.data); err != nil {
			return fmt.Errorf("checkpoint %s: stream partition %d: %w", g.from, pt.id, err)
		}
		pos[pt.id] = g.pos
		e.log.Info("stream partition resumed", "partition", pt.id, "checkpoint", g.from, "after_seq", g.pos)
	}
	if c := e.restored; c != nil {
		if err := e.restoreRest(c); err != nil {
			return err
		}
	}
	if err := src.(GroupPositioner).SeekGroups(pos); err != nil {
		return fmt.Errorf("rewind %s to the checkpoints of its partitions: %w", src.Name(), err)
	}
	return nil
}

// restore applies checkpoint c to the partitions, the sinks and the source.
func (e *Engine) restore(c *Checkpoint, src Source, partitions []*partition) error {
	for _, pt := range partitions {
		data, ok := c.Files[partitionFile(pt.id)]
		if !ok {
			return fmt.Errorf("checkpoint %s lacks %s", c.Location, partitionFile(pt.id))
		}
		if err := pt.restore(data); err != nil {
			return fmt.Errorf("checkpoint %s: partition %d: %w", c.Location, pt.id, err)
		}
	}
	if err := e.restoreRest(c); err != nil {
		return err
	}
	pos, ok := c.Files[sourceFile]
	if !ok {
		return fmt.Errorf("checkpoint %s lacks the source position", c.Location)
	}
	p, ok := src.(Positioner)
	if !ok {
		return fmt.Errorf("source %s cannot rewind to checkpoint %s", src.Name(), c.Location)
	}
	if err := p.Seek(pos); err != nil {
		return fmt.Errorf("rewind %s to checkpoint %s: %w", src.Name(), c.Location, err)
	}
	return nil
}

// restoreRest applies checkpoint c to the cross-card scorers and the sinks.
func (e *Engine) restoreRest(c *Checkpoint) error {
	for i, o := range e.ordered {
		data, ok := c.Files[orderedFile(i)]
		if !ok {
			return fmt.Errorf("checkpoint %s lacks %s: the config added a cross-card scorer since it was taken", c.Location, orderedFile(i))
		}
		if err := o.Restore(data); err != nil {
			return fmt.Errorf("checkpoint %s: %s: %w", c.Location, orderedFile(i), err)
		}
	}
	for i, s := range e.sinks {
		if sn, ok := s.(Snapshotter); ok {
			if data, ok := c.Files[sinkFile(i)]; ok {
				if err := sn.Restore(data); err != nil {
					return fmt.Errorf("checkpoint %s: sink %d: %w", c.Location, i, err)
				}
			}
		}
	}
	if sn, ok := e.deadLetters.(Snapshotter); ok {
		if data, ok := c.Files[sinkFile(len(e.sinks))]; ok {
			if err := sn.Restore(data); err != nil {
				return fmt.Errorf("checkpoint %s: dead letters: %w", c.Location, err)
			}
		}
	}
	return nil
}

func (e *Engine) read(ctx context.Context, src Source, seq, nextID uint64, decodeQ, orderQ chan<- *batch) error {
	name := src.Name()
	_, commits := src.(Committer)
	commits = commits && e.store != nil
	lastBarrier := time.Now()
	barrierSeq := seq // the sequence number at the last barrier
	barrierNow := func(final bool) error {
		if e.store == nil {
			return nil
		}
		pos, err := src.(Positioner).Position()
		if err != nil {
			return fmt.Errorf("position of %s: %w", name, err)
		}
		var groupPos map[int]uint64
		if gp, ok := src.(GroupPositioner); ok && len(e.cfg.Groups) > 0 {
			if groupPos, err = gp.GroupPositions(); err != nil {
				return fmt.Errorf("partition positions of %s: %w", name, err)
			}
		}
		b := &batch{decoded: make(chan struct{}), scored: make(chan struct{}), barrier: &barrier{
			id: nextID, final: final, started: time.Now(), sourcePos: pos, groupPos: groupPos, nextSeq: seq,
			snapshots: make([][]byte, e.cfg.Partitions), errs: make([]error, e.cfg.Partitions),
		}}
		close(b.decoded)
		nextID++
		lastBarrier, barrierSeq = time.Now(), seq
		orderQ <- b
		return nil
	}
	for {
		if ctx.Err() != nil {
			return barrierNow(true) // stopped: drain what was read, then a final checkpoint
		}
		msgs, ack, err := src.ReadBatch(ctx)
		if err != nil {
			if errors.Is(err, ErrEndOfInput) || ctx.Err() != nil {
				return barrierNow(true)
			}
			return fmt.Errorf("read %s: %w", name, err)
		}
		if len(msgs) == 0 { // a live source with nothing new: still checkpoint on time
			if ack != nil {
				_ = ack(ctx, nil)
			}
			if e.store != nil && seq != barrierSeq && time.Since(lastBarrier) >= e.cfg.CheckpointEvery {
				if err := barrierNow(false); err != nil {
					return err
				}
			}
			continue
		}
		if commits {
			ack = nil // upstream forgets a message only once a checkpoint covers it
		}
		b := &batch{
			read:    time.Now(),
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
			ev.SourcePartition = m.Partition
			ev.Raw = m.Data
			seq++
		}
		decodeQ <- b
		orderQ <- b
		if e.store != nil && time.Since(lastBarrier) >= e.cfg.CheckpointEvery {
			if err := barrierNow(false); err != nil {
				return err
			}
		}
	}
}

func decodeBatch(b *batch) {
	for i := range b.events {
		DecodeEvent(&b.events[i])
	}
}

// route hands each decoded event to the partition that owns its card, batch by batch in
// input order, so every partition sees its keys in input order. It keeps the watermark:
// the newest event time seen minus the allowed out-of-orderness; an event more than the
// allowed lateness behind it is flagged late. Barriers go to every partition. It returns
// the final watermark.
func (e *Engine) route(orderQ <-chan *batch, partQ []chan subBatch, seqQ chan<- *batch, watermark int64) int64 {
	n := uint32(len(partQ))
	parts := make([][]int32, n)
	lateness := e.cfg.AllowedLateness.Milliseconds()
	wms := newWatermarks(e.cfg.MaxOutOfOrderness, e.cfg.IdleTimeout, e.cfg.now, watermark)
	if e.groups != nil {
		// Partitions taken over may be behind this instance's own: the watermark restarts
		// from theirs, or their events would be late.
		newest := map[int]int64{}
		for g, st := range e.groups {
			if st.hasNewest {
				newest[g] = st.newest
			}
		}
		wms.resume(newest)
	}
	for b := range orderQ {
		<-b.decoded
		if br := b.barrier; br != nil {
			wms.advance(wms.now()) // partitions may have gone idle since their last event
			br.watermark = wms.current()
			if e.groupWorker != nil {
				br.groupTime = wms.newest()
			}
			br.ordered = make([][]byte, len(e.ordered))
			for i, o := range e.ordered {
				data, err := o.Snapshot()
				br.ordered[i] = data
				br.errs = append(br.errs, err)
			}
			for p := range partQ {
				b.pending.Add(1)
				partQ[p] <- subBatch{b: b}
			}
			go func() { b.pending.Wait(); close(b.scored) }()
			seqQ <- b
			continue
		}
		var cross []float64
		if nc := len(e.crossIdx); nc > 0 {
			cross = make([]float64, nc*len(b.events))
		}
		for i := range b.events {
			ev := &b.events[i]
			if ev.Err != nil {
				continue
			}
			if fb := ev.Feedback; fb != nil {
				wms.observe(ev.SourcePartition, fb.TS)
				for _, o := range e.ordered {
					o.Feedback(fb)
				}
				continue
			}
			var w uint32
			if e.groupWorker != nil {
				sp := ev.SourcePartition
				if sp < 0 || sp >= len(e.groupWorker) || e.groupWorker[sp] < 0 {
					ev.Err = &DecodeError{Code: ReasonUnownedPartition, Detail: fmt.Sprintf("stream partition %d is not owned by instance %s", sp, e.cfg.Instance)}
					continue
				}
				w = uint32(e.groupWorker[sp])
			} else {
				w = PartitionOf(ev.Tx.CardID, n)
			}
			ts := ev.Tx.TS
			if wm := wms.current(); wm != math.MinInt64 && ts < wm-lateness {
				ev.Late = true
			}
			wms.observe(ev.SourcePartition, ts)
			if cross != nil {
				nc := len(e.crossIdx)
				ev.Cross = cross[i*nc : (i+1)*nc : (i+1)*nc]
				off := 0
				for _, o := range e.ordered {
					k := len(o.Features())
					o.Score(&ev.Tx, ev.Late, ev.Cross[off:off+k])
					off += k
				}
			}
			parts[w] = append(parts[w], int32(i))
		}
		if wm := wms.current(); wm != math.MinInt64 {
			e.metrics.watermark.Set(float64(wm) / 1000)
			e.metrics.watermarkMs.Store(max(wm, 1))
		}
		b.routed = time.Now()
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
	return wms.current()
}

// ReasonUnownedPartition is the dead-letter reason of an event that came from a stream
// partition its instance does not own (a source filter that does not match the instance).
const ReasonUnownedPartition = "unowned_partition"

// PartitionOf maps a key to one of n partitions (FNV-1a), the same on every machine. It is
// also the partition JetStream's subject mapping function partition(n, ...) gives a key.

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
//
// With answers set (a Responder source: senders wait), the group commit does not wait for
// LedgerMaxDelay when nothing more is queued: it commits what it holds at once.
func (e *Engine) ledgerStage(ctx context.Context, seqQ <-chan *batch, sinkQ chan<- *batch, answers bool) error {
	var held []*batch
	var reqs []PostRequest
	var owners []*Event
	var frauds []*Event // fraud feedback, reversed after the postings before it
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() error {
		if len(reqs) > 0 {
			began := time.Now()
			if err := e.ledger.Post(ctx, reqs); err != nil {
				return fmt.Errorf("ledger: %w", err)
			}
			e.metrics.ledgerBatch.Observe(time.Since(began).Seconds())
			for i := range reqs {
				applyPosting(owners[i], &reqs[i])
			}
		}
		for _, ev := range frauds {
			st, reason, err := e.chargeback(ctx, ev.Feedback)
			if err != nil {
				return fmt.Errorf("chargeback of %s: %w", ev.Feedback.ID, err)
			}
			ev.Decision.Ledger = st
			if reason != "" {
				ev.Decision.Reasons = []string{reason}
			}
		}
		frauds = frauds[:0]
		now := time.Now()
		for _, b := range held {
			if b.barrier == nil {
				e.metrics.stages[stageLedger].Observe(now.Sub(b.scored2).Seconds())
			}
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
		if b.barrier == nil {
			b.scored2 = time.Now()
			e.metrics.stages[stageScore].Observe(b.scored2.Sub(b.routed).Seconds())
		}
		if e.ledger != nil {
			for i := range b.events {
				ev := &b.events[i]
				if fb := ev.Feedback; fb != nil && fb.Fraud && e.chargeback != nil {
					frauds = append(frauds, ev)
					continue
				}
				if ev.Err != nil || ev.Feedback != nil || ev.Decision.Outcome != Approve {
					continue
				}
				reqs = append(reqs, PostRequest{
					TxID: ev.Tx.ID, TS: ev.Tx.TS, Payer: ev.Tx.AccountID, Payee: ev.Tx.MerchantID,
					Amount: ev.Tx.Amount, Currency: ev.Tx.Currency,
					Seq: ev.Seq, Model: ev.Decision.Model, Rules: ev.Decision.Rules,
					Partition: ev.SourcePartition,
				})
				owners = append(owners, ev)
			}
		}
		if len(held) == 0 {
			timer.Reset(e.cfg.LedgerMaxDelay)
		}
		held = append(held, b)
		// A barrier flushes at once: a checkpoint covers only postings that are durable.
		if len(reqs) >= e.cfg.LedgerBatch || (e.ledger == nil && len(frauds) == 0) || b.barrier != nil ||
			(answers && len(seqQ) == 0) {
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
func (e *Engine) sinkStage(ctx context.Context, sinkQ <-chan *batch, src Source) error {
	// Checkpoints are written by a goroutine of their own, so the stream does not wait on
	// the store; at most one is in flight.
	ckptQ := make(chan *pendingCheckpoint, 1)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		committer, _ := src.(Committer)
		for cp := range ckptQ {
			if e.writeCheckpoint(ctx, cp) && committer != nil {
				if err := committer.Commit(ctx, cp.files[sourceFile]); err != nil {
					e.log.Warn("source could not commit the checkpoint's position; it may redeliver what the checkpoint covers", "source", src.Name(), "checkpoint", cp.br.id, "err", err)
				}
			}
		}
	}()
	defer func() { close(ckptQ); <-writerDone }()
	responder, _ := src.(Responder)
	// Senders waiting for their answers (the decision API) should not wait for the flush
	// interval under load: flush at least every millisecond for them.
	flushEvery := e.cfg.FlushInterval
	if responder != nil {
		flushEvery = min(flushEvery, time.Millisecond)
	}
	reasons := map[string]int{} // reason code → decisions naming it, per batch
	sinkTimers := make([]prometheus.Observer, len(e.sinks))
	for i, s := range e.sinks {
		sinkTimers[i] = e.metrics.sinkFlush.WithLabelValues(sinkName(i, s))
	}
	var decided, dead []*Event
	var unflushed []*batch
	lastFlush := time.Now()
	flush := func() error {
		began := time.Now()
		defer func() { e.metrics.flushSecs.Observe(time.Since(began).Seconds()) }()
		// The sinks flush side by side: a flush costs the slowest sink's time, not the sum.
		errs := make([]error, len(e.sinks)+1)
		var wg sync.WaitGroup
		flushOne := func(i int, s Sink) {
			t0 := time.Now()
			if err := s.Flush(ctx); err != nil {
				if i == len(e.sinks) {
					errs[i] = fmt.Errorf("dead letters: %w", err)
				} else {
					errs[i] = fmt.Errorf("sink: %w", err)
				}
				return
			}
			if i < len(e.sinks) {
				sinkTimers[i].Observe(time.Since(t0).Seconds())
			}
		}
		for i, s := range e.sinks {
			if i == len(e.sinks)-1 && e.deadLetters == nil {
				flushOne(i, s) // the last one on this goroutine
				continue
			}
			wg.Go(func() { flushOne(i, s) })
		}
		if e.deadLetters != nil {
			flushOne(len(e.sinks), e.deadLetters)
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		now := time.Now()
		for _, b := range unflushed {
			e.metrics.stages[stageSink].Observe(now.Sub(b.written).Seconds())
			e.metrics.latency.Observe(now.Sub(b.read).Seconds())
			if responder != nil {
				responder.Respond(b.events)
			}
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
		if b.barrier != nil {
			if err := flush(); err != nil {
				return err
			}
			if cp := e.prepareCheckpoint(b.barrier, src); cp != nil {
				if b.barrier.final {
					ckptQ <- cp // the final one is never skipped
				} else {
					select {
					case ckptQ <- cp:
					default: // the previous checkpoint is still being written: skip this one
						e.stats.CheckpointsSkipped++
						e.metrics.ckpts.WithLabelValues("skipped").Inc()
					}
				}
			}
			continue
		}
		b.written = time.Now()
		if q := e.queues; q != nil {
			e.metrics.queues[queueDecode].Set(float64(len(q.decode)))
			depth := 0
			for _, c := range q.partition {
				depth += len(c)
			}
			e.metrics.queues[queuePartition].Set(float64(depth))
			e.metrics.queues[queueLedger].Set(float64(len(q.ledger)))
			e.metrics.queues[queueSink].Set(float64(len(sinkQ)))
		}
		decided, dead = decided[:0], dead[:0]
		var byOutcome [3]int64
		var byLedger [4]int64
		var late int64
		for i := range b.events {
			ev := &b.events[i]
			if ev.Err != nil {
				dead = append(dead, ev)
				e.stats.DeadLetters[ev.Err.Code]++
				e.metrics.deadLetters.WithLabelValues(ev.Err.Code).Inc()
				if ev.Err.Code == ReasonDuplicateID {
					e.stats.Duplicates++
				}
				continue
			}
			if fb := ev.Feedback; fb != nil {
				e.stats.Feedback++
				if fb.Fraud {
					e.stats.FeedbackFraud++
					if e.chargeback != nil {
						e.stats.Chargebacks[ev.Decision.Ledger]++
						e.metrics.chargebacks.WithLabelValues(chargebackNames[ev.Decision.Ledger]).Inc()
					}
				}
				e.metrics.feedback.WithLabelValues(strconv.FormatBool(fb.Fraud)).Inc()
				continue
			}
			decided = append(decided, ev)
			if ev.Decision.HasScore {
				e.metrics.scores.Observe(ev.Decision.Score)
			}
			for _, r := range ev.Decision.Reasons {
				reasons[r]++
			}
			byOutcome[ev.Decision.Outcome]++
			byLedger[ev.Decision.Ledger]++
			if ev.Late {
				late++
			}
		}
		e.stats.Events += int64(len(b.events))
		e.stats.Decided += int64(len(decided))
		e.stats.Late += late
		e.metrics.events.Add(float64(len(b.events)))
		e.metrics.late.Add(float64(late))
		for o, n := range byOutcome {
			e.stats.ByOutcome[o] += n
			e.metrics.decisions.WithLabelValues(outcomeNames[o]).Add(float64(n))
		}
		for r, n := range reasons {
			e.metrics.reasons.WithLabelValues(r).Add(float64(n))
		}
		clear(reasons)
		for l, n := range byLedger {
			e.stats.ByLedger[l] += n
			e.metrics.ledger.WithLabelValues(ledgerNames[l]).Add(float64(n))
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
		if len(sinkQ) == 0 || len(unflushed) >= e.cfg.MaxUnflushed || time.Since(lastFlush) >= flushEvery {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// sinkName labels a sink in metrics: its Name when it has one, else its type and position.
func sinkName(i int, s Sink) string {
	if n, ok := s.(interface{ Name() string }); ok && n.Name() != "" {
		return n.Name()
	}
	t := fmt.Sprintf("%T", s)
	if j := strings.LastIndexByte(t, '.'); j >= 0 {
		t = t[j+1:]
	}
	return fmt.Sprintf("%s-%d", strings.ToLower(strings.TrimPrefix(t, "*")), i)
}

// pendingCheckpoint is a checkpoint whose state is taken and whose files are to be written.
type pendingCheckpoint struct {
	br       *barrier
	manifest Manifest
	files    map[string][]byte
}

// prepareCheckpoint gathers the state of barrier br: the partitions' snapshots, the sinks'
// committed positions and the source position. Every batch before the barrier is flushed
// and acknowledged by now. It returns nil, logging why, when some state could not be taken.
func (e *Engine) prepareCheckpoint(br *barrier, src Source) *pendingCheckpoint {
	files := map[string][]byte{sourceFile: br.sourcePos}
	err := errors.Join(br.errs...)
	for p, snap := range br.snapshots {
		id := p
		if len(e.cfg.Groups) > 0 {
			id = e.cfg.Groups[p]
		}
		files[partitionFile(id)] = snap
	}
	for i, snap := range br.ordered {
		files[orderedFile(i)] = snap
	}
	sinks := append(append([]Sink(nil), e.sinks...), e.deadLetters)
	for i, s := range sinks {
		if sn, ok := s.(Snapshotter); ok && s != nil {
			data, serr := sn.Snapshot()
			err = errors.Join(err, serr)
			files[sinkFile(i)] = data
		}
	}
	if err != nil {
		e.ckptFailures.Add(1)
		e.metrics.ckpts.WithLabelValues("failed").Inc()
		e.log.Error("checkpoint state could not be taken; the previous checkpoint stays in force", "checkpoint", br.id, "err", err)
		return nil
	}
	return &pendingCheckpoint{br: br, files: files, manifest: Manifest{
		ID: br.id, Created: time.Now().UTC(), Partitions: e.cfg.Partitions,
		NextSeq: br.nextSeq, Watermark: br.watermark, Source: src.Name(),
		Instance: e.cfg.Instance, Groups: br.groupPos, GroupTimes: br.groupTime,
	}}
}

// writeCheckpoint stores a checkpoint, manifest last, and prunes old ones. A checkpoint
// that cannot be written is logged and counted; the previous one stays the newest
// complete one. It reports whether the checkpoint was written.
func (e *Engine) writeCheckpoint(ctx context.Context, cp *pendingCheckpoint) bool {
	if err := e.store.Write(ctx, cp.manifest, cp.files); err != nil {
		e.ckptFailures.Add(1)
		e.metrics.ckpts.WithLabelValues("failed").Inc()
		e.log.Error("checkpoint failed; the previous one stays in force", "checkpoint", cp.br.id, "store", e.store.String(), "err", err)
		return false
	}
	e.stats.Checkpoints++
	e.stats.LastCheckpoint = time.Since(cp.br.started)
	e.metrics.ckpts.WithLabelValues("written").Inc()
	e.metrics.ckptLast.Set(float64(time.Now().UnixNano()) / 1e9)
	e.metrics.ckptSeconds.Observe(e.stats.LastCheckpoint.Seconds())
	size := 0
	for _, f := range cp.files {
		size += len(f)
	}
	e.metrics.ckptBytes.Set(float64(size))
	if err := e.store.Prune(ctx, e.cfg.CheckpointKeep); err != nil {
		e.log.Warn("pruning old checkpoints", "store", e.store.String(), "err", err)
	}
	return true
}
