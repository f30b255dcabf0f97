package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Options.
const (
	DefaultDurable       = "fraudpipe"
	DefaultAckWait       = 2 * time.Minute
	DefaultMaxAckPending = 100000
	DefaultFetchBatch    = 2048
	DefaultFetchWait     = 250 * time.Millisecond
)

var (
	_ pipeline.Source          = (*Source)(nil)
	_ pipeline.Positioner      = (*Source)(nil)
	_ pipeline.Committer       = (*Source)(nil)
	_ pipeline.GroupPositioner = (*Source)(nil)
)

// Options configure a Source.
type Options struct {
	// URL of the NATS server(s), comma separated; ignored when Conn is set.
	URL string
	// ConnectOptions are passed to nats.Connect when dialling URL: credentials
	// (nats.UserCredentials), a token (nats.Token), TLS.
	ConnectOptions []nats.Option
	// Conn is a connection to use instead of dialling URL; Close leaves it open.
	Conn *nats.Conn
	// Stream is the JetStream stream to read; default "TXN".
	Stream string
	// Durable names the durable pull consumer; default "fraudpipe". Instances that share
	// a stream and split its partitions need a durable each.
	Durable string
	// FilterSubjects restricts the consumer to these subjects, e.g. the partitions
	// "txn.0" and "txn.1" of one instance; default: the whole stream.
	FilterSubjects []string
	// Partitions are the stream partitions this source reads, for an instance that shares
	// a partitioned stream with others: the consumer's filter is <prefix>.<p> for each
	// (FilterSubjects must be empty), and GroupPositions reports each one's position.
	Partitions []int
	// AckWait is how long the server waits for an acknowledgement before it redelivers.
	// With checkpoints, messages are acknowledged once a checkpoint covers them, so
	// AckWait must be longer than the checkpoint interval. Default 2m.
	AckWait time.Duration
	// MaxAckPending is the most messages delivered and not yet acknowledged; the server
	// delivers nothing more until acknowledgements arrive. With checkpoints it must exceed
	// the messages read in one checkpoint interval, or reading pauses until the next
	// checkpoint. Default 100000; -1 for no limit.
	MaxAckPending int
	// FetchBatch is the most messages one ReadBatch returns, and the size of each pull
	// request. Default 2048.
	FetchBatch int
	// FetchWait is how long ReadBatch waits for a first message before it returns an
	// empty batch. Default 250ms.
	FetchWait time.Duration
	// Name identifies the source in dead letters and metrics; default "nats:<stream>".
	Name string
	// Logger receives warnings (messages expired before they were read); nil discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Durable == "" {
		o.Durable = DefaultDurable
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.MaxAckPending == 0 {
		o.MaxAckPending = DefaultMaxAckPending
	}
	if o.FetchBatch <= 0 {
		o.FetchBatch = DefaultFetchBatch
	}
	if o.FetchWait <= 0 {
		o.FetchWait = DefaultFetchWait
	}
	if o.Name == "" {
		o.Name = "nats:" + o.Stream
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Source reads a JetStream stream through a durable pull consumer with AckAll policy. It
// implements pipeline.Source, pipeline.Positioner and pipeline.Committer.
//
// A message's position is its stream sequence and its partition the <p> of a partitioned
// stream's subject <prefix>.<p> (0 for an unpartitioned stream). The source's
// position is the highest stream sequence it has returned; a message delivered again at
// or below it (a redelivery after AckWait) is dropped, so the engine never sees one twice
// in a process's life.
type Source struct {
	o      Options
	nc     *nats.Conn
	ownNC  bool
	js     jetstream.JetStream
	prefix string // "txn." of a partitioned stream, "" otherwise

	// Read side: touched by ReadBatch, and by Seek before the first ReadBatch.
	started bool
	seekTo  uint64 // > 0: the consumer must deliver from here on start
	seq     uint64 // highest stream sequence returned
	// floor, per partition (Options.Partitions), is the stream sequence up to which the
	// partition's state was restored from a checkpoint: its messages at or below it are
	// dropped. Indexed by partition; nil without SeekGroups.
	floor []uint64

	mu      sync.Mutex // guards what follows: used by ReadBatch, Commit, acks, Pending, Close
	cons    jetstream.Consumer
	cc      jetstream.ConsumeContext
	gen     *generation
	posSeq  uint64    // seq as Position reports it
	handles []handle  // batch ends not yet acknowledged, by increasing stream sequence
	acked   uint64    // highest stream sequence acknowledged
	pending uint64    // cached consumer NumPending
	pendAt  time.Time // when pending was read
	closed  bool
}

// generation is one run of the consumer: its delivery channel and a channel closed when it
// is stopped, so a callback blocked on a full channel returns.
type generation struct {
	msgs   chan delivered
	stop   chan struct{}
	failed chan struct{} // closed when err is set: the consumer is gone
	once   sync.Once
	err    error
}

func (g *generation) fail(err error) {
	g.once.Do(func() { g.err = err; close(g.failed) })
}

type delivered struct {
	msg  jetstream.Msg
	seq  uint64
	part int
}

type handle struct {
	seq uint64
	msg jetstream.Msg
}

// Open connects to NATS (unless o.Conn is given) and checks that the stream exists. The
// consumer is set up on the first ReadBatch, or by Seek.
func Open(ctx context.Context, o Options) (*Source, error) {
	o = o.withDefaults()
	if o.MaxAckPending < -1 {
		return nil, fmt.Errorf("nats source: max_ack_pending %d: use a positive count, or -1 for no limit", o.MaxAckPending)
	}
	s := &Source{o: o, nc: o.Conn}
	if s.nc == nil {
		if o.URL == "" {
			return nil, errors.New("nats source: no server URL: set url (e.g. nats://127.0.0.1:4222)")
		}
		opts := append([]nats.Option{nats.Name("fraudpipe " + o.Durable), nats.MaxReconnects(-1)}, o.ConnectOptions...)
		nc, err := nats.Connect(o.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("nats source: connect to %s: %w", o.URL, err)
		}
		s.nc, s.ownNC = nc, true
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.closeConn()
		return nil, fmt.Errorf("nats source: %w", err)
	}
	s.js = js
	st, err := js.Stream(ctx, o.Stream)
	if err != nil {
		s.closeConn()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("nats source: stream %s does not exist on %s: create it first (fraudpipe creates it when it runs the embedded server)", o.Stream, s.nc.ConnectedUrlRedacted())
		}
		return nil, fmt.Errorf("nats source: look up stream %s: %w", o.Stream, err)
	}
	s.prefix = partitionPrefix(st.CachedInfo().Config)
	if len(o.Partitions) > 0 {
		if len(o.FilterSubjects) > 0 {
			s.closeConn()
			return nil, errors.New("nats source: give the partitions to read or the filter subjects, not both")
		}
		if s.prefix == "" {
			s.closeConn()
			return nil, fmt.Errorf("nats source: stream %s is not partitioned (no subject mapping to <subject>.<p>.<key>), so instances cannot share it: create it with partitions set", o.Stream)
		}
		cfg := st.CachedInfo().Config
		parts := partitionCount(cfg)
		owned := map[int]bool{}
		for _, p := range o.Partitions {
			if p < 0 || (parts > 0 && p >= parts) {
				s.closeConn()
				return nil, fmt.Errorf("nats source: stream %s has %d partitions; partition %d does not exist", o.Stream, parts, p)
			}
			owned[p] = true
			s.o.FilterSubjects = append(s.o.FilterSubjects, partitionFilter(cfg, s.prefix, p))
		}
		if parts > 0 && len(owned) == parts {
			s.o.FilterSubjects = nil // every partition: the whole stream, unfiltered, is faster
		}
	}
	// Until the first read, the position is what the durable consumer acknowledged, so a
	// checkpoint taken before any read resumes where this one would.
	c, err := js.Consumer(ctx, o.Stream, o.Durable)
	switch {
	case err == nil:
		s.seq = c.CachedInfo().AckFloor.Stream
		s.posSeq = s.seq
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		s.closeConn()
		return nil, fmt.Errorf("nats source: look up consumer %s of stream %s: %w", o.Durable, o.Stream, err)
	}
	return s, nil
}

func (s *Source) closeConn() {
	if s.ownNC {
		s.nc.Close()
	}
}

// Name identifies the source.
func (s *Source) Name() string { return s.o.Name }

// consumerConfig is the durable consumer's configuration, delivering from start (0: all).
func (s *Source) consumerConfig(start uint64) jetstream.ConsumerConfig {
	c := jetstream.ConsumerConfig{
		Durable:       s.o.Durable,
		Description:   "fraudpipe source",
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       s.o.AckWait,
		MaxAckPending: s.o.MaxAckPending,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if start > 1 {
		c.DeliverPolicy, c.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	if len(s.o.FilterSubjects) == 1 {
		c.FilterSubject = s.o.FilterSubjects[0]
	} else {
		c.FilterSubjects = s.o.FilterSubjects
	}
	return c
}

func filtersOf(c jetstream.ConsumerConfig) []string {
	if c.FilterSubject != "" {
		return []string{c.FilterSubject}
	}
	return c.FilterSubjects
}

// recreate deletes the durable consumer (if any) and creates it anew, delivering from
// stream sequence start.
func (s *Source) recreate(ctx context.Context, start uint64) (jetstream.Consumer, error) {
	err := s.js.DeleteConsumer(ctx, s.o.Stream, s.o.Durable)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("delete consumer %s of stream %s: %w", s.o.Durable, s.o.Stream, err)
	}
	c, err := s.js.CreateConsumer(ctx, s.o.Stream, s.consumerConfig(start))
	if err != nil {
		return nil, fmt.Errorf("create consumer %s of stream %s: %w", s.o.Durable, s.o.Stream, err)
	}
	return c, nil
}

// setup finds or makes the durable consumer, positioned as Seek or the consumer's own
// acknowledgements say, and returns the highest stream sequence already handled.
func (s *Source) setup(ctx context.Context) (jetstream.Consumer, uint64, error) {
	if s.seekTo > 0 {
		st, err := s.js.Stream(ctx, s.o.Stream)
		if err != nil {
			return nil, 0, fmt.Errorf("look up stream %s: %w", s.o.Stream, err)
		}
		state := st.CachedInfo().State
		if s.seekTo > state.LastSeq+1 {
			return nil, 0, fmt.Errorf("the checkpoint read stream %s up to sequence %d, but the stream ends at %d: it was deleted and created again, so the checkpoint does not fit it; remove the checkpoints to start over",
				s.o.Stream, s.seekTo-1, state.LastSeq)
		}
		if state.Msgs > 0 && s.seekTo < state.FirstSeq {
			s.o.Logger.Warn("messages expired from the stream before they were read", "stream", s.o.Stream,
				"from_seq", s.seekTo, "to_seq", state.FirstSeq-1)
		}
		// Deliver from just after the checkpoint, whatever the server acknowledged: nothing
		// the checkpoint does not cover is skipped, and nothing waits for AckWait.
		c, err := s.recreate(ctx, s.seekTo)
		return c, s.seekTo - 1, err
	}
	c, err := s.js.Consumer(ctx, s.o.Stream, s.o.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = s.recreate(ctx, 0)
		return c, 0, err
	}
	if err != nil {
		return nil, 0, fmt.Errorf("look up consumer %s of stream %s: %w", s.o.Durable, s.o.Stream, err)
	}
	info := c.CachedInfo()
	floor := info.AckFloor.Stream
	have := info.Config
	if info.NumAckPending > 0 || have.AckPolicy != jetstream.AckAllPolicy ||
		!slices.Equal(filtersOf(have), filtersOf(s.consumerConfig(0))) {
		// Messages delivered to an earlier process and never acknowledged would wait for
		// AckWait before coming again: start over from the ack floor at once.
		c, err = s.recreate(ctx, floor+1)
		return c, floor, err
	}
	upd := s.consumerConfig(0)
	upd.DeliverPolicy, upd.OptStartSeq = have.DeliverPolicy, have.OptStartSeq
	if have.AckWait != upd.AckWait || have.MaxAckPending != upd.MaxAckPending {
		if c, err = s.js.UpdateConsumer(ctx, s.o.Stream, upd); err != nil {
			return nil, 0, fmt.Errorf("update consumer %s of stream %s: %w", s.o.Durable, s.o.Stream, err)
		}
	}
	return c, floor, nil
}

// start sets up the consumer and starts pulling from it.
func (s *Source) start(ctx context.Context) error {
	c, seq, err := s.setup(ctx)
	if err != nil {
		return fmt.Errorf("nats source %s: %w", s.o.Name, err)
	}
	g := &generation{msgs: make(chan delivered, 2*s.o.FetchBatch), stop: make(chan struct{}), failed: make(chan struct{})}
	onErr := func(_ jetstream.ConsumeContext, err error) {
		switch {
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			g.fail(fmt.Errorf("nats source %s: consumer %s of stream %s was deleted while reading (by another process with the same durable name?): restart to resume from the last checkpoint", s.o.Name, s.o.Durable, s.o.Stream))
		case errors.Is(err, jetstream.ErrConsumerLeadershipChanged), errors.Is(err, jetstream.ErrNoHeartbeat),
			errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, jetstream.ErrMsgIteratorClosed):
			// The client pulls again by itself.
		default:
			s.o.Logger.Warn("NATS consumer error", "source", s.o.Name, "err", err)
		}
	}
	prefix := s.prefix
	cc, err := c.Consume(func(m jetstream.Msg) {
		d := delivered{msg: m}
		if md, err := m.Metadata(); err == nil {
			d.seq = md.Sequence.Stream
		}
		d.part = partitionOf(m.Subject(), prefix)
		select {
		case g.msgs <- d:
		case <-g.stop:
		}
	}, jetstream.PullMaxMessages(s.o.FetchBatch), jetstream.ConsumeErrHandler(onErr),
		// A pull request expires and is renewed every few seconds, so a pull the server
		// stopped serving (seen under heavy load) costs seconds, not the missed-heartbeat
		// timeout.
		jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("nats source %s: consume: %w", s.o.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		cc.Stop()
		close(g.stop)
		return errors.New("nats source: closed")
	}
	s.cons, s.cc, s.gen = c, cc, g
	s.handles, s.acked = s.handles[:0], seq
	s.posSeq, s.seq = seq, seq
	s.started = true
	return nil
}

// partitionOf reads p from subject prefix.<p>.<key>; 0 when the stream is unpartitioned.
func partitionOf(subject, prefix string) int {
	if prefix == "" || !strings.HasPrefix(subject, prefix) {
		return 0
	}
	rest := subject[len(prefix):]
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		rest = rest[:i]
	}
	p, err := strconv.Atoi(rest)
	if err != nil {
		return 0
	}
	return p
}

// ReadBatch returns the messages that arrived, up to FetchBatch, waiting at most FetchWait
// for the first one; an empty batch means nothing arrived. It returns at once when ctx is
// cancelled.
func (s *Source) ReadBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	if !s.started {
		if err := s.start(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, err
		}
	}
	s.mu.Lock()
	g, closed := s.gen, s.closed
	s.mu.Unlock()
	if closed {
		return nil, nil, errors.New("nats source: read after Close")
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err // stopped: hand out nothing more
	}
	// The engine keeps the slice (with checkpoints nothing says when it is done with it),
	// so size it by what is waiting rather than by the largest batch.
	out := make([]pipeline.Message, 0, min(s.o.FetchBatch, max(64, len(g.msgs))))
	var last jetstream.Msg
	take := func(d delivered) {
		if d.seq <= s.seq {
			return // delivered again after AckWait: handed on already
		}
		s.seq, last = d.seq, d.msg
		if d.part < len(s.floor) && d.seq <= s.floor[d.part] {
			return // the partition's restored state covers it already
		}
		out = append(out, pipeline.Message{Data: d.msg.Data(), Pos: int64(d.seq), Partition: d.part})
	}
	timer := time.NewTimer(s.o.FetchWait)
	defer timer.Stop()
	for len(out) == 0 {
		select {
		case d := <-g.msgs:
			take(d)
		case <-timer.C:
			return nil, nil, nil
		case <-g.failed:
			return nil, nil, g.err
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
drain:
	for len(out) < s.o.FetchBatch {
		select {
		case d := <-g.msgs:
			take(d)
		default:
			break drain
		}
	}
	end := handle{seq: s.seq, msg: last}
	s.mu.Lock()
	s.posSeq = s.seq
	s.handles = append(s.handles, end)
	s.mu.Unlock()
	return out, func(ctx context.Context, err error) error {
		if err != nil {
			return nil // not acknowledged: the server redelivers it to a later process
		}
		return s.ack(ctx, end)
	}, nil
}

// ack acknowledges h and, by AckAll, everything before it, unless a later ack did already.
func (s *Source) ack(ctx context.Context, h handle) error {
	s.mu.Lock()
	if h.seq <= s.acked {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if err := h.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("nats source %s: acknowledge up to stream sequence %d: %w", s.o.Name, h.seq, err)
	}
	s.mu.Lock()
	if h.seq > s.acked {
		s.acked = h.seq
	}
	i := 0
	for i < len(s.handles) && s.handles[i].seq <= s.acked {
		i++
	}
	s.handles = slices.Delete(s.handles, 0, i)
	s.mu.Unlock()
	return nil
}

// position is what Position encodes.
type position struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
}

// Position is the highest stream sequence returned so far: every message of this
// consumer's subjects up to it was handed to the engine.
func (s *Source) Position() ([]byte, error) {
	s.mu.Lock()
	seq := s.posSeq
	s.mu.Unlock()
	return json.Marshal(position{Stream: s.o.Stream, Seq: seq})
}

// Seek makes the consumer deliver from just after pos: it deletes the durable consumer and
// creates it again from that stream sequence on the next ReadBatch. It must not run
// concurrently with ReadBatch.
func (s *Source) Seek(pos []byte) error {
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		return fmt.Errorf("bad NATS position %q: %w", pos, err)
	}
	if p.Stream != s.o.Stream {
		return fmt.Errorf("the checkpoint read stream %q, this source reads %q: point the source at %s, or start without the checkpoint", p.Stream, s.o.Stream, p.Stream)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("nats source: seek after Close")
	}
	s.stopLocked()
	s.seekTo = p.Seq + 1
	s.seq, s.posSeq, s.started = p.Seq, p.Seq, false
	return nil
}

// GroupPositions is, for each partition of Options.Partitions, the stream sequence up to
// which its messages were handed to the engine: the source's position, or the partition's
// restored position when that is further.
func (s *Source) GroupPositions() (map[int]uint64, error) {
	if len(s.o.Partitions) == 0 {
		return nil, errors.New("nats source: no partitions given (Options.Partitions), so there are no positions per partition")
	}
	s.mu.Lock()
	seq := s.posSeq
	s.mu.Unlock()
	pos := make(map[int]uint64, len(s.o.Partitions))
	for _, p := range s.o.Partitions {
		v := seq
		if p < len(s.floor) {
			v = max(v, s.floor[p])
		}
		pos[p] = v
	}
	return pos, nil
}

// SeekGroups makes each partition of Options.Partitions resume after its own position
// (0 or missing: from the start of the stream): the consumer is created again from the
// lowest of them on the next ReadBatch, and messages a partition's position covers are
// dropped. It must not run concurrently with ReadBatch.
func (s *Source) SeekGroups(pos map[int]uint64) error {
	if len(s.o.Partitions) == 0 {
		return errors.New("nats source: no partitions given (Options.Partitions) to seek")
	}
	low := uint64(math.MaxUint64)
	floor := make([]uint64, slices.Max(s.o.Partitions)+1)
	for _, p := range s.o.Partitions {
		v := pos[p]
		floor[p] = v
		low = min(low, v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("nats source: seek after Close")
	}
	s.stopLocked()
	s.floor = floor
	s.seekTo = low + 1
	s.seq, s.posSeq, s.started = low, low, false
	return nil
}

// stopLocked stops the running consumption, if any.
func (s *Source) stopLocked() {
	if s.cc != nil {
		s.cc.Stop()
		close(s.gen.stop)
		s.cc, s.gen = nil, nil
	}
	s.handles = s.handles[:0]
}

// Commit acknowledges upstream every message up to the stream sequence of pos, so the
// server forgets them: a checkpoint at pos is durable.
func (s *Source) Commit(ctx context.Context, pos []byte) error {
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		return fmt.Errorf("bad NATS position %q: %w", pos, err)
	}
	if p.Stream != s.o.Stream {
		return fmt.Errorf("commit of a position in stream %q to a source of stream %q", p.Stream, s.o.Stream)
	}
	s.mu.Lock()
	var h handle
	for _, c := range s.handles {
		if c.seq > p.Seq {
			break
		}
		h = c
	}
	s.mu.Unlock()
	if h.msg == nil {
		return nil
	}
	return s.ack(ctx, h)
}

// Pending is how many messages of the consumer's subjects the server has not delivered
// yet, from the consumer's info, read at most once a second; 0 before the first read.
func (s *Source) Pending() uint64 {
	s.mu.Lock()
	c := s.cons
	if c == nil || s.closed || time.Since(s.pendAt) < time.Second {
		n := s.pending
		s.mu.Unlock()
		return n
	}
	s.pendAt = time.Now()
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.pending = info.NumPending
	}
	return s.pending
}

// Close stops reading and closes the connection if the source opened it. Messages read
// and not committed are delivered again to the next consumer of the durable.
func (s *Source) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.stopLocked()
	s.mu.Unlock()
	s.closeConn()
	return nil
}
