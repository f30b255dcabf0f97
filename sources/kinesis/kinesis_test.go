package kinesis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// txLine is a transaction line: the n-th put, of card c.
func txLine(n, cards int) []byte {
	return fmt.Appendf(nil, `{"id":"tx-%06d","card_id":"card-%03d","n":%d}`, n, n%cards, n)
}

func lines(from, to, cards int) [][]byte {
	var ls [][]byte
	for n := from; n < to; n++ {
		ls = append(ls, txLine(n, cards))
	}
	return ls
}

type got struct {
	N         int    `json:"n"`
	Card      string `json:"card_id"`
	partition int
	pos       int64
}

// readN reads until want messages came (or fails after a deadline), then checks that no
// more came: none in the last batch, none in one more ReadBatch.
func readN(t *testing.T, src *Source, want int) []got {
	t.Helper()
	out := readUntil(t, src, want)
	if len(out) != want {
		t.Fatalf("read %d records, want %d", len(out), want)
	}
	msgs, _, err := src.ReadBatch(context.Background())
	if err != nil || len(msgs) != 0 {
		t.Fatalf("after the %d records wanted, ReadBatch returned %d more (err %v)", want, len(msgs), err)
	}
	return out
}

// readUntil reads batches until at least want messages came.
func readUntil(t *testing.T, src *Source, want int) []got {
	t.Helper()
	var out []got
	deadline := time.Now().Add(40 * time.Second)
	for len(out) < want {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d records before the deadline", len(out), want)
		}
		msgs, ack, err := src.ReadBatch(context.Background())
		if err != nil {
			t.Fatalf("ReadBatch: %v", err)
		}
		out = append(out, decode(t, msgs)...)
		if ack != nil {
			_ = ack(context.Background(), nil)
		}
	}
	return out
}

func decode(t *testing.T, msgs []pipeline.Message) []got {
	t.Helper()
	var out []got
	for _, m := range msgs {
		var g got
		if err := json.Unmarshal(m.Data, &g); err != nil {
			t.Fatalf("record %q: %v", m.Data, err)
		}
		g.partition, g.pos = m.Partition, m.Pos
		out = append(out, g)
	}
	return out
}

// checkExactlyOnceInOrder checks that recs hold each of 0..n-1 once and that each card's
// records come in put order.
func checkExactlyOnceInOrder(t *testing.T, recs []got, n int) {
	t.Helper()
	seen := make([]int, n)
	last := map[string]int{}
	for _, r := range recs {
		if r.N < 0 || r.N >= n {
			t.Fatalf("record %d was never put", r.N)
		}
		seen[r.N]++
		if prev, ok := last[r.Card]; ok && prev > r.N {
			t.Errorf("%s: record %d came after %d", r.Card, r.N, prev)
		}
		last[r.Card] = r.N
	}
	for i, c := range seen {
		if c != 1 {
			t.Errorf("record %d read %d times", i, c)
		}
	}
}

func openSource(t *testing.T, e *emulator, stream string, o Options) *Source {
	t.Helper()
	o.Stream = stream
	if o.Client == nil {
		o.Client = e.client
	}
	src, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func put(t *testing.T, e *emulator, stream string, ls [][]byte) {
	t.Helper()
	if err := Put(context.Background(), e.client, stream, ls, nil); err != nil {
		t.Fatal(err)
	}
}

func TestReadAllShardsInKeyOrder(t *testing.T) {
	e := startEmulator(t)
	e.createStream(t, "tx", 4)
	const n = 3000
	put(t, e, "tx", lines(0, n, 97))
	src := openSource(t, e, "tx", Options{BatchSize: 256, Limit: 500})
	recs := readN(t, src, n)
	checkExactlyOnceInOrder(t, recs, n)
	parts := map[int]bool{}
	var lastPos int64 = -1
	for _, r := range recs {
		parts[r.partition] = true
		if r.pos <= lastPos {
			t.Fatalf("Pos %d after %d: not increasing", r.pos, lastPos)
		}
		lastPos = r.pos
	}
	if len(parts) != 4 {
		t.Errorf("records came from partitions %v, want 4 shards", parts)
	}
	for p := range parts {
		if p < 0 || p >= 4 {
			t.Errorf("partition %d is not a small shard index", p)
		}
	}
}

func TestPositionSeekResumesExactlyOnce(t *testing.T) {
	e := startEmulator(t)
	e.createStream(t, "tx", 4)
	const n = 2000
	put(t, e, "tx", lines(0, n, 53))

	first := openSource(t, e, "tx", Options{BatchSize: 100, Limit: 100})
	part := readUntil(t, first, n/2)
	pos, err := first.Position()
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	second := openSource(t, e, "tx", Options{BatchSize: 100, Limit: 100})
	if err := second.Seek(pos); err != nil {
		t.Fatalf("Seek(%s): %v", pos, err)
	}
	rest := readN(t, second, n-len(part))
	checkExactlyOnceInOrder(t, append(part, rest...), n)

	// Records put after the checkpoint come once too.
	put(t, e, "tx", lines(n, n+200, 53))
	more := readN(t, second, 200)
	checkExactlyOnceInOrder(t, slices.Concat(part, rest, more), n+200)

	if err := second.Seek(pos); err == nil {
		t.Error("Seek after reading began was accepted")
	}
	e.createStream(t, "other", 1)
	wrong := openSource(t, e, "other", Options{})
	if err := wrong.Seek(pos); err == nil || !strings.Contains(err.Error(), "stream tx") {
		t.Errorf("Seek to a position of another stream: %v", err)
	}
	if err := wrong.Seek([]byte("{")); err == nil {
		t.Error("Seek to a damaged position was accepted")
	}
}

func TestReshardParentsBeforeChildren(t *testing.T) {
	e := startEmulator(t)
	e.createStream(t, "tx", 4)
	const cards = 61
	put(t, e, "tx", lines(0, 1500, cards))

	// The source starts before the reshard and must follow it.
	src := openSource(t, e, "tx", Options{BatchSize: 200, Limit: 200, ShardRefresh: 100 * time.Millisecond})
	part := readUntil(t, src, 300)

	e.split(t, "tx", "shardId-000000000000")
	put(t, e, "tx", lines(1500, 2500, cards))
	e.merge(t, "tx", "shardId-000000000002", "shardId-000000000003")
	put(t, e, "tx", lines(2500, 3500, cards))
	// Split a child of the split: a grandchild waits for two generations.
	e.split(t, "tx", "shardId-000000000004")
	put(t, e, "tx", lines(3500, 4500, cards))

	if got := len(e.shards(t, "tx")); got != 9 {
		t.Fatalf("after the reshard the stream has %d shards, want 9", got)
	}
	rest := readN(t, src, 4500-len(part))
	checkExactlyOnceInOrder(t, append(part, rest...), 4500)

	pos, err := src.Position()
	if err != nil {
		t.Fatal(err)
	}
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		t.Fatal(err)
	}
	wantFinished := []string{"shardId-000000000000", "shardId-000000000002", "shardId-000000000003", "shardId-000000000004"}
	if !slices.Equal(p.Finished, wantFinished) {
		t.Errorf("finished shards %v, want %v (position %s)", p.Finished, wantFinished, pos)
	}

	// A checkpoint taken before the reshard resumes through it: the children, absent from
	// it, start at their beginning.
	e.createStream(t, "tx2", 2)
	put(t, e, "tx2", lines(0, 400, cards))
	a := openSource(t, e, "tx2", Options{BatchSize: 50, Limit: 50})
	early := readUntil(t, a, 50)
	pos, err = a.Position()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	e.split(t, "tx2", "shardId-000000000001")
	put(t, e, "tx2", lines(400, 800, cards))
	b := openSource(t, e, "tx2", Options{StartAt: StartLatest})
	if err := b.Seek(pos); err != nil {
		t.Fatal(err)
	}
	late := readN(t, b, 800-len(early))
	checkExactlyOnceInOrder(t, append(early, late...), 800)
}

func TestExpiredIteratorIsRenewed(t *testing.T) {
	e := startEmulator(t)
	e.createStream(t, "tx", 2)
	const n = 1500
	put(t, e, "tx", lines(0, n, 31))
	f := &faultyAPI{API: e.client, getRecords: func(call int) error {
		if call%3 == 0 && call <= 30 {
			return &types.ExpiredIteratorException{Message: aws.String("Iterator expired (injected)")}
		}
		return nil
	}}
	src := openSource(t, e, "tx", Options{Client: f, Limit: 100, BatchSize: 100})
	recs := readN(t, src, n)
	checkExactlyOnceInOrder(t, recs, n)
	injected, _, byType := f.stats()
	if injected == 0 {
		t.Fatal("no expiry was injected")
	}
	if byType[types.ShardIteratorTypeAfterSequenceNumber] == 0 {
		t.Errorf("no iterator was taken AFTER_SEQUENCE_NUMBER after %d expiries (iterators by type %v)", injected, byType)
	}
}

func TestThrottlingBacksOff(t *testing.T) {
	e := startEmulator(t)
	e.createStream(t, "tx", 3)
	const n = 1200
	put(t, e, "tx", lines(0, n, 29))
	f := &faultyAPI{API: e.client,
		getRecords: func(call int) error {
			if call <= 6 || call%4 == 0 && call < 40 {
				return &types.ProvisionedThroughputExceededException{Message: aws.String("Rate exceeded for shard (injected)")}
			}
			return nil
		},
		getIterator: func(call int, _ *kinesis.GetShardIteratorInput) error {
			if call <= 2 {
				return &types.LimitExceededException{Message: aws.String("Rate exceeded (injected)")}
			}
			return nil
		},
	}
	src := openSource(t, e, "tx", Options{Client: f, Limit: 100, BatchSize: 100})
	recs := readN(t, src, n)
	checkExactlyOnceInOrder(t, recs, n)
	if injected, _, _ := f.stats(); injected < 8 {
		t.Errorf("only %d throttling errors injected", injected)
	}
}

func TestCleanShutdown(t *testing.T) {
	e := startEmulator(t)
	e.createStream(t, "tx", 4)
	e.createStream(t, "empty", 1)
	put(t, e, "tx", lines(0, 2000, 41))

	// Waiting on an empty stream, ReadBatch returns when its context ends.
	idle := openSource(t, e, "empty", Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if msgs, _, err := idle.ReadBatch(ctx); err == nil || len(msgs) != 0 {
		t.Errorf("ReadBatch past its context's deadline: %d messages, %v", len(msgs), err)
	}
	if msgs, _, err := idle.ReadBatch(context.Background()); err != nil || len(msgs) != 0 {
		t.Errorf("ReadBatch on an empty stream: %d messages, %v; want an empty batch", len(msgs), err)
	}

	f := &faultyAPI{API: e.client}
	// A small buffer: readers are blocked handing records over when Close comes.
	src := openSource(t, e, "tx", Options{Client: f, Limit: 20, BatchSize: 10, Buffer: 1})
	if msgs, _, err := src.ReadBatch(context.Background()); err != nil || len(msgs) == 0 {
		t.Fatalf("first batch: %d messages, %v", len(msgs), err)
	}
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if msgs, _, err := src.ReadBatch(cancelled); err == nil || len(msgs) != 0 {
		t.Errorf("ReadBatch with a cancelled context: %d messages, %v", len(msgs), err)
	}
	done := make(chan error, 1)
	go func() { done <- src.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return: shard readers still running")
	}
	if _, inFlight, _ := f.stats(); inFlight != 0 {
		t.Errorf("%d API calls still in flight after Close", inFlight)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStartLatest(t *testing.T) {
	e := startEmulator(t)
	e.createStream(t, "tx", 2)
	put(t, e, "tx", lines(0, 300, 23))
	f := &faultyAPI{API: e.client}
	src := openSource(t, e, "tx", Options{Client: f, StartAt: StartLatest})
	// The readers take their LATEST iterators at the first ReadBatch.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, byType := f.stats(); byType[types.ShardIteratorTypeLatest] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the readers took no LATEST iterators")
		}
		if msgs, _, err := src.ReadBatch(context.Background()); err != nil || len(msgs) != 0 {
			t.Fatalf("a latest source returned %d old records (err %v)", len(msgs), err)
		}
	}
	// Nothing returned yet: the position keeps when the shards started.
	pos, err := src.Position()
	if err != nil {
		t.Fatal(err)
	}
	put(t, e, "tx", lines(300, 700, 23))
	recs := readN(t, src, 400)
	for _, r := range recs {
		if r.N < 300 {
			t.Fatalf("a latest source returned record %d, put before it started", r.N)
		}
	}
	// Resumed from that position, a source reads from that time on (AT_TIMESTAMP).
	again := openSource(t, e, "tx", Options{StartAt: StartLatest})
	if err := again.Seek(pos); err != nil {
		t.Fatalf("Seek(%s): %v", pos, err)
	}
	recs = readN(t, again, 400)
	for _, r := range recs {
		if r.N < 300 {
			t.Fatalf("resumed at the start time, the source returned record %d, put before", r.N)
		}
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Stream: "s", StartAt: "earliest"},
		{Stream: "s", Limit: 20000},
		{Stream: "s", AccessKeyID: "a"},
	} {
		if err := o.defaults(); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	o := Options{Stream: "s", StartAt: "LATEST"}
	if err := o.defaults(); err != nil || o.StartAt != StartLatest || o.Limit != DefaultLimit || o.Name != "kinesis:s" {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want errKind
	}{
		{&types.ExpiredIteratorException{}, errKindExpired},
		{&types.ProvisionedThroughputExceededException{}, errKindThrottled},
		{&types.LimitExceededException{}, errKindThrottled},
		{&types.KMSThrottlingException{}, errKindThrottled},
		{&types.ResourceNotFoundException{}, errKindGone},
		{&types.AccessDeniedException{}, errKindFatal},
		{&types.InvalidArgumentException{}, errKindFatal},
		{fmt.Errorf("wrapped: %w", &types.InternalFailureException{}), errKindRetry},
		{context.DeadlineExceeded, errKindRetry},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%T) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestBackoffIsCappedWithJitter(t *testing.T) {
	var b backoff
	for i := range 30 {
		d := b.next()
		limit := min(backoffInitial<<min(i, 10), backoffMax)
		if d < limit/2 || d >= limit {
			t.Fatalf("attempt %d: wait %v outside [%v, %v)", i, d, limit/2, limit)
		}
	}
}

func TestErrorsStopTheSource(t *testing.T) {
	e := startEmulator(t)
	_, err := Open(context.Background(), Options{Stream: "missing", Client: e.client, Endpoint: e.endpoint})
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Open of a missing stream: %v", err)
	}
	t.Log(err)
	e.createStream(t, "tx", 1)
	put(t, e, "tx", lines(0, 10, 3))
	src := openSource(t, e, "tx", Options{})
	// A sequence number this stream never gave: no retry can help, so ReadBatch says so.
	if err := src.Seek([]byte(`{"stream":"tx","shards":{"shardId-000000000000":{"seq":"12345"}}}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs, _, err := src.ReadBatch(context.Background())
		if err != nil {
			if !strings.Contains(err.Error(), "shardId-000000000000") || !strings.Contains(err.Error(), "12345") {
				t.Errorf("error does not name the shard and sequence number: %v", err)
			}
			t.Log(err)
			break
		}
		if len(msgs) != 0 {
			t.Fatalf("read %d records from a bad position", len(msgs))
		}
		if time.Now().After(deadline) {
			t.Fatal("a bad position gave no error")
		}
	}
}

func TestMillisBehindIsTheLargestOfRunningShards(t *testing.T) {
	s := &Source{shards: map[string]*shard{}}
	for i, c := range []struct {
		state  shardState
		behind int64
	}{{stateRunning, 5}, {stateRunning, 70}, {stateFinished, 900}, {stateWaiting, 800}} {
		sh := &shard{id: fmt.Sprint(i), state: c.state}
		sh.behind.Store(c.behind)
		s.shards[sh.id] = sh
	}
	if got := s.MillisBehind(); got != 70 {
		t.Errorf("MillisBehind = %d, want 70", got)
	}
}

// pagedAPI returns ListShards one shard a page, as Kinesis does for large streams.
type pagedAPI struct {
	API
	pages int
}

func (p *pagedAPI) ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	i := 0
	if in.NextToken != nil {
		if in.StreamName != nil || in.StreamARN != nil {
			return nil, &types.InvalidArgumentException{Message: aws.String("NextToken and StreamName cannot be provided together.")}
		}
		i, _ = strconv.Atoi(*in.NextToken)
		in = &kinesis.ListShardsInput{StreamName: aws.String("tx")}
	}
	out, err := p.API.ListShards(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	p.pages++
	page := &kinesis.ListShardsOutput{Shards: out.Shards[i : i+1]}
	if i+1 < len(out.Shards) {
		page.NextToken = aws.String(strconv.Itoa(i + 1))
	}
	return page, nil
}

func TestListShardsPages(t *testing.T) {
	e := startEmulator(t)
	e.createStream(t, "tx", 3)
	put(t, e, "tx", lines(0, 300, 19))
	p := &pagedAPI{API: e.client}
	src := openSource(t, e, "tx", Options{Client: p})
	checkExactlyOnceInOrder(t, readN(t, src, 300), 300)
	if p.pages < 3 {
		t.Errorf("%d pages listed, want 3", p.pages)
	}
}
