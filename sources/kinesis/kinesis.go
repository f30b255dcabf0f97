// Package kinesis reads raw events from an Amazon Kinesis data stream, one reader per open
// shard, polling GetRecords.
//
// Shards are discovered with ListShards and again every ShardRefresh, so a stream that is
// resharded while the source runs is followed. After a split or a merge a child shard is read
// only once every parent it names has been read to its end and every record of the parent
// has been returned by ReadBatch (or the parent is no longer listed: trimmed past the
// retention period). Records of one partition key therefore come out in the order they were
// put, across reshards.
//
// A Message's Partition is a small index per shard, stable within a run (the engine keeps a
// watermark per partition); its Pos is a counter of the run, increasing with every message
// (Kinesis sequence numbers are up to 128 bits and do not fit an int64). The real position,
// the sequence number of the last record returned per shard, is what Position encodes.
package kinesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/awsconf"
)

// Defaults of Options.
const (
	DefaultLimit        = 10000
	DefaultPollInterval = 200 * time.Millisecond
	DefaultShardRefresh = 10 * time.Second
	DefaultBatchSize    = 1024
	DefaultBuffer       = 16
)

// Where a shard without a checkpoint starts: Options.StartAt.
const (
	StartTrimHorizon = "trim_horizon" // the oldest record still kept
	StartLatest      = "latest"       // only records put after the source started
)

// emptyWait is how long ReadBatch waits for a record before it returns an empty batch.
const emptyWait = 250 * time.Millisecond

// API is the part of the Kinesis client the source uses. *kinesis.Client implements it; tests
// wrap it to inject errors.
type API interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// Options configures a Source.
type Options struct {
	// Name identifies the source in dead letters and metrics; default "kinesis:" + Stream.
	Name string
	// Stream is the stream's name or ARN ("arn:aws:kinesis:...").
	Stream string
	// Endpoint overrides the service URL, e.g. http://127.0.0.1:4567 for an emulator; empty
	// means AWS.
	Endpoint string
	// Region is the AWS region; empty takes it from the environment and shared config.
	Region string
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials; with no access
	// key the standard AWS chain is used (environment, shared files, instance role, ...).
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// StartAt is where a shard with no checkpoint starts: "trim_horizon" (default) or
	// "latest". A shard created by a reshard while the source runs, or after the checkpoint
	// it resumed from, always starts at its beginning, so nothing is lost.
	StartAt string
	// Limit is GetRecords' Limit, the most records one call returns; default 10000.
	Limit int
	// PollInterval is the pause between GetRecords calls on a shard that is caught up;
	// default 200ms (Kinesis allows 5 calls a second per shard).
	PollInterval time.Duration
	// ShardRefresh is how often ListShards runs to find new shards; default 10s.
	ShardRefresh time.Duration
	// BatchSize is the most messages one ReadBatch returns; default 1024.
	BatchSize int
	// Buffer is how many GetRecords results may wait for ReadBatch before the shard readers
	// stop polling; default 16. Memory is bounded by (Buffer + open shards) × one result.
	Buffer int
	// Client replaces the client built from the fields above (tests, custom middleware).
	Client API
	// Logger receives the rare warnings (throttling, retried errors); default slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Stream == "" {
		return errors.New("kinesis source: stream is not set: give the stream's name or ARN")
	}
	switch strings.ToLower(o.StartAt) {
	case "", StartTrimHorizon:
		o.StartAt = StartTrimHorizon
	case StartLatest:
		o.StartAt = StartLatest
	default:
		return fmt.Errorf("kinesis source: start_at %q is not one of trim_horizon, latest", o.StartAt)
	}
	if o.Limit <= 0 {
		o.Limit = DefaultLimit
	}
	if o.Limit > 10000 {
		return fmt.Errorf("kinesis source: limit %d is over the 10000 records GetRecords allows", o.Limit)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.ShardRefresh <= 0 {
		o.ShardRefresh = DefaultShardRefresh
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.Name == "" {
		o.Name = "kinesis:" + o.Stream
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if (o.AccessKeyID == "") != (o.SecretAccessKey == "") {
		return errors.New("kinesis source: give both access_key_id and secret_access_key, or neither to use the standard AWS credential chain")
	}
	return nil
}

// NewClient builds a Kinesis client: static credentials when accessKeyID is set, else the
// standard AWS chain; endpoint, when set, replaces the AWS endpoint.
func NewClient(ctx context.Context, region, endpoint, accessKeyID, secretAccessKey, sessionToken string) (*kinesis.Client, error) {
	cfg, err := awsconf.Load(ctx, "kinesis", awsconf.Static{
		Region: region, AccessKeyID: accessKeyID, SecretAccessKey: secretAccessKey, SessionToken: sessionToken})
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		if endpoint == "" {
			return nil, errors.New("kinesis: no AWS region: set region in the config or AWS_REGION")
		}
		cfg.Region = "us-east-1" // an emulator ignores it, but requests must be signed for one
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// Source reads a Kinesis stream. ReadBatch, Position and Seek are called from one goroutine
// (the engine's reader); the shard readers run on their own.
type Source struct {
	o      Options
	client API

	ch   chan *chunk   // GetRecords results, in the order each shard read them
	wake chan struct{} // a shard finished: its children may start

	ctx    context.Context // the readers' context, cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	start  sync.Once

	mu       sync.Mutex
	shards   map[string]*shard
	listed   map[string]bool // the last listing
	finished map[string]bool // read to the end and every record returned
	nextIdx  int
	seeked   bool                // Seek was called: shards absent from the position are new
	seekPos  map[string]shardPos // the position Seek was given
	fatal    error               // an error no retry will cure; ReadBatch returns it
	failed   chan struct{}
	failOnce sync.Once

	cur  *chunk // the chunk ReadBatch is taking records from
	pos  int64  // Pos of the next message
	msgs []pipeline.Message
}

// chunk is one GetRecords result of one shard; end marks the shard's last.
type chunk struct {
	sh   *shard
	recs []types.Record
	next int
	end  bool
}

// Open checks that the stream exists (one ListShards) and returns a source that starts its
// shard readers at the first ReadBatch, so that Seek can come first.
func Open(ctx context.Context, o Options) (*Source, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	client := o.Client
	if client == nil {
		c, err := NewClient(ctx, o.Region, o.Endpoint, o.AccessKeyID, o.SecretAccessKey, o.SessionToken)
		if err != nil {
			return nil, fmt.Errorf("kinesis source %s: %w", o.Stream, err)
		}
		client = c
	}
	s := &Source{
		o:        o,
		client:   client,
		ch:       make(chan *chunk, o.Buffer),
		wake:     make(chan struct{}, 1),
		shards:   map[string]*shard{},
		listed:   map[string]bool{},
		finished: map[string]bool{},
		failed:   make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	listed, err := s.listShards(ctx)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.mu.Lock()
	s.applyListing(listed, true)
	s.mu.Unlock()
	return s, nil
}

// Name identifies the source.
func (s *Source) Name() string { return s.o.Name }

// Client is the Kinesis client the source uses.
func (s *Source) Client() API { return s.client }

// ReadBatch returns the records the shard readers fetched, up to BatchSize; an empty batch
// when none came for about 250ms. The messages stay valid after the ack.
func (s *Source) ReadBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	s.start.Do(func() {
		s.wg.Add(1)
		go s.manage()
	})
	if err := s.fatalErr(); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if s.ctx.Err() != nil {
		return nil, nil, fmt.Errorf("kinesis source %s is closed", s.o.Stream)
	}
	if s.cur == nil {
		timer := time.NewTimer(emptyWait)
		defer timer.Stop()
		select {
		case c := <-s.ch:
			s.cur = c
		case <-timer.C:
			return nil, nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-s.failed:
			return nil, nil, s.fatalErr()
		}
	}
	msgs := make([]pipeline.Message, 0, min(s.o.BatchSize, len(s.cur.recs)-s.cur.next+64))
	for s.cur != nil && len(msgs) < s.o.BatchSize {
		c := s.cur
		n := min(len(c.recs)-c.next, s.o.BatchSize-len(msgs))
		for _, r := range c.recs[c.next : c.next+n] {
			msgs = append(msgs, pipeline.Message{Data: r.Data, Pos: s.pos, Partition: c.sh.idx})
			s.pos++
		}
		c.next += n
		if c.next < len(c.recs) {
			break // the batch is full
		}
		s.mu.Lock()
		if len(c.recs) > 0 {
			c.sh.returned = aws.ToString(c.recs[len(c.recs)-1].SequenceNumber)
		}
		if c.end {
			s.finished[c.sh.id] = true
			c.sh.state = stateFinished
		}
		s.mu.Unlock()
		if c.end {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
		s.cur = nil
		select {
		case s.cur = <-s.ch:
		default:
		}
	}
	if c := s.cur; c != nil && c.next > 0 {
		s.mu.Lock()
		c.sh.returned = aws.ToString(c.recs[c.next-1].SequenceNumber)
		s.mu.Unlock()
	}
	return msgs, nil, nil
}

func (s *Source) fatalErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fatal
}

func (s *Source) fail(err error) {
	s.mu.Lock()
	if s.fatal == nil {
		s.fatal = err
	}
	s.mu.Unlock()
	s.failOnce.Do(func() { close(s.failed) })
}

// MillisBehind is the largest MillisBehindLatest the open shards reported last: how far the
// source is behind the tip of the stream.
func (s *Source) MillisBehind() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m int64
	for _, sh := range s.shards {
		if sh.state == stateRunning {
			m = max(m, sh.behind.Load())
		}
	}
	return m
}

// Close stops the shard readers and waits for them.
func (s *Source) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// position is what Position encodes.
type position struct {
	Stream string `json:"stream"`
	// Shards maps each shard not finished to where it resumes.
	Shards map[string]shardPos `json:"shards"`
	// Finished lists the shards read to their end and fully returned: they are skipped.
	Finished []string `json:"finished,omitempty"`
}

// shardPos is where one shard resumes: after Seq; or, when nothing was returned from it
// yet, at the arrival time Since (Unix ms) when it started at "latest", else at its
// beginning.
type shardPos struct {
	Seq   string `json:"seq,omitempty"`
	Since int64  `json:"since_ms,omitempty"`
}

// Position is, per shard, the sequence number of the last record ReadBatch returned, and the
// shards finished.
func (s *Source) Position() ([]byte, error) {
	s.mu.Lock()
	p := position{Stream: s.o.Stream, Shards: map[string]shardPos{}}
	for id := range s.finished {
		p.Finished = append(p.Finished, id)
	}
	for id, sh := range s.shards {
		if s.finished[id] {
			continue
		}
		switch {
		case sh.returned != "":
			p.Shards[id] = shardPos{Seq: sh.returned}
		case sh.from.kind == types.ShardIteratorTypeAfterSequenceNumber:
			p.Shards[id] = shardPos{Seq: sh.from.seq}
		case sh.from.kind == types.ShardIteratorTypeLatest || sh.from.kind == types.ShardIteratorTypeAtTimestamp:
			p.Shards[id] = shardPos{Since: sh.from.since}
		default:
			p.Shards[id] = shardPos{}
		}
	}
	s.mu.Unlock()
	sort.Strings(p.Finished)
	return json.Marshal(p)
}

// Seek makes the source resume at pos, a value Position returned: each shard after its
// sequence number, finished shards skipped, shards absent from pos at StartAt (or at their
// beginning when a reshard made them). It must come before the first ReadBatch.
func (s *Source) Seek(pos []byte) error {
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		return fmt.Errorf("kinesis source %s: bad position %q: %w", s.o.Stream, pos, err)
	}
	if p.Stream != s.o.Stream {
		return fmt.Errorf("kinesis source: the checkpoint read stream %s, this run reads %s: point the source at %s or start without the checkpoint", p.Stream, s.o.Stream, p.Stream)
	}
	started := true
	s.start.Do(func() { started = false })
	if started {
		return fmt.Errorf("kinesis source %s: Seek after reading began; seek before the first ReadBatch", s.o.Stream)
	}
	// The Do above consumed the start: start the readers here, after the position is set.
	s.mu.Lock()
	s.seeked = true
	clear(s.finished)
	for _, id := range p.Finished {
		s.finished[id] = true
	}
	s.seekPos = p.Shards
	for id, sh := range s.shards {
		sh.returned = ""
		if s.finished[id] {
			sh.state = stateFinished
			continue
		}
		sh.state = stateWaiting
		if sp, ok := p.Shards[id]; ok {
			sh.from = sp.iterator()
		} else {
			sh.from = s.startFor(sh, true)
		}
	}
	// Shards of the position that the listing lacks were trimmed: nothing to resume.
	s.mu.Unlock()
	s.wg.Add(1)
	go s.manage()
	return nil
}

func (sp shardPos) iterator() iterFrom {
	switch {
	case sp.Seq != "":
		return iterFrom{kind: types.ShardIteratorTypeAfterSequenceNumber, seq: sp.Seq}
	case sp.Since != 0:
		return iterFrom{kind: types.ShardIteratorTypeAtTimestamp, since: sp.Since}
	default:
		return iterFrom{kind: types.ShardIteratorTypeTrimHorizon}
	}
}
