package kinesis

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// callTimeout bounds one API call, so a connection that hangs is given up and retried.
const callTimeout = 30 * time.Second

// shardState is where a shard is in its life within this source.
type shardState int

const (
	stateWaiting  shardState = iota // not read yet: waiting for its parents, or to be started
	stateRunning                    // a reader polls it
	stateEnded                      // read to its end; some records may not be returned yet
	stateFinished                   // read to its end and every record returned by ReadBatch
	stateGone                       // its reader found it missing; retried if listed again
)

// shard is one shard the source knows. id, idx and parents never change; the rest is
// guarded by Source.mu, except behind.
type shard struct {
	id      string
	idx     int      // Message.Partition
	parents []string // ParentShardId, AdjacentParentShardId, when set

	state    shardState
	from     iterFrom // where the reader starts when it has read nothing
	lastRead string   // sequence number of the last record the reader fetched
	returned string   // sequence number of the last record ReadBatch returned
	behind   atomic.Int64
}

// iterFrom is the start of a shard iterator.
type iterFrom struct {
	kind  types.ShardIteratorType
	seq   string // AFTER_SEQUENCE_NUMBER
	since int64  // AT_TIMESTAMP, Unix ms; for LATEST, when the iterator was taken
}

// startFor is where a shard with no checkpoint starts. Shards of the first listing start at
// StartAt; a shard that a reshard made while the source ran, or since the checkpoint the
// source resumed from, starts at its beginning so nothing put to it is lost.
func (s *Source) startFor(sh *shard, initial bool) iterFrom {
	if !initial || (s.seeked && len(sh.parents) > 0) || s.o.StartAt == StartTrimHorizon {
		return iterFrom{kind: types.ShardIteratorTypeTrimHorizon}
	}
	return iterFrom{kind: types.ShardIteratorTypeLatest, since: time.Now().UnixMilli()}
}

// applyListing records the shards ListShards returned. Called with s.mu held.
func (s *Source) applyListing(listed []types.Shard, initial bool) {
	seen := make(map[string]bool, len(listed))
	sort.Slice(listed, func(i, j int) bool { return aws.ToString(listed[i].ShardId) < aws.ToString(listed[j].ShardId) })
	for _, ls := range listed {
		id := aws.ToString(ls.ShardId)
		seen[id] = true
		sh := s.shards[id]
		if sh == nil {
			sh = &shard{id: id, idx: s.nextIdx}
			s.nextIdx++
			for _, p := range []*string{ls.ParentShardId, ls.AdjacentParentShardId} {
				if aws.ToString(p) != "" {
					sh.parents = append(sh.parents, *p)
				}
			}
			switch sp, ok := s.seekPos[id]; {
			case s.finished[id]:
				sh.state = stateFinished
			case ok:
				sh.from = sp.iterator()
			default:
				sh.from = s.startFor(sh, initial)
			}
			s.shards[id] = sh
		} else if sh.state == stateGone {
			sh.state = stateWaiting
		}
	}
	s.listed = seen
	// A shard no longer listed was trimmed past the retention period: forget it once no
	// reader or unreturned record refers to it.
	for id, sh := range s.shards {
		if !seen[id] && sh.state != stateRunning && sh.state != stateEnded {
			delete(s.shards, id)
		}
	}
	for id := range s.finished {
		if !seen[id] {
			delete(s.finished, id)
		}
	}
}

// ready reports whether a waiting shard may be read: every parent is finished or no longer
// listed. Called with s.mu held.
func (s *Source) ready(sh *shard) bool {
	if sh.state != stateWaiting {
		return false
	}
	for _, p := range sh.parents {
		if s.listed[p] && !s.finished[p] {
			return false
		}
	}
	return true
}

// startReady starts a reader for every shard that may be read.
func (s *Source) startReady() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	ids := make([]string, 0, len(s.shards))
	for id := range s.shards {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		sh := s.shards[id]
		if s.ready(sh) {
			sh.state = stateRunning
			s.wg.Add(1)
			go s.read(sh)
		}
	}
}

// manage starts shard readers and lists the shards again every ShardRefresh.
func (s *Source) manage() {
	defer s.wg.Done()
	s.startReady()
	tick := time.NewTicker(s.o.ShardRefresh)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
			s.startReady()
		case <-tick.C:
			listed, err := s.listShards(s.ctx)
			if err != nil {
				if s.ctx.Err() != nil {
					return
				}
				if isFatal(err) {
					s.fail(err)
					return
				}
				s.o.Logger.Warn("kinesis: listing shards failed; new shards are found at the next try", "stream", s.o.Stream, "err", err)
				continue
			}
			s.mu.Lock()
			s.applyListing(listed, false)
			s.mu.Unlock()
			s.startReady()
		}
	}
}

// listShards lists every shard of the stream, closed ones included, retrying transient
// errors a few times.
func (s *Source) listShards(ctx context.Context) ([]types.Shard, error) {
	var bo backoff
	for {
		shards, err := s.listShardsOnce(ctx)
		if err == nil {
			return shards, nil
		}
		switch classify(err) {
		case errKindGone:
			return nil, &fatalError{fmt.Errorf("kinesis stream %s not found%s: create it, or check the stream name, region and endpoint: %w", s.o.Stream, s.where(), err)}
		case errKindFatal:
			return nil, &fatalError{fmt.Errorf("kinesis stream %s%s: listing shards: %w", s.o.Stream, s.where(), err)}
		}
		if bo.attempt >= 5 || !bo.wait(ctx) {
			return nil, fmt.Errorf("kinesis stream %s%s: listing shards: %w", s.o.Stream, s.where(), err)
		}
	}
}

func (s *Source) listShardsOnce(ctx context.Context) ([]types.Shard, error) {
	var all []types.Shard
	in := &kinesis.ListShardsInput{}
	s.setStream(&in.StreamName, &in.StreamARN)
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		out, err := s.client.ListShards(cctx, in)
		cancel()
		if err != nil {
			return nil, err
		}
		all = append(all, out.Shards...)
		if aws.ToString(out.NextToken) == "" {
			return all, nil
		}
		// With a NextToken the stream must not be named again.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

func (s *Source) where() string {
	if s.o.Endpoint != "" {
		return " at " + s.o.Endpoint
	}
	if s.o.Region != "" {
		return " in " + s.o.Region
	}
	return ""
}

// setStream names the stream in a request, by ARN or by name.
func (s *Source) setStream(name, arn **string) {
	if isARN(s.o.Stream) {
		*arn = aws.String(s.o.Stream)
	} else {
		*name = aws.String(s.o.Stream)
	}
}

func isARN(stream string) bool { return strings.HasPrefix(stream, "arn:") }

// read polls one shard until its end, handing what it fetches to ReadBatch through s.ch.
func (s *Source) read(sh *shard) {
	defer s.wg.Done()
	ctx := s.ctx
	var (
		iter  *string
		bo    backoff
		limit = int32(s.o.Limit)
	)
	for {
		if iter == nil {
			it, err := s.iterator(ctx, sh)
			if err != nil {
				if !s.handle(ctx, sh, err, &bo, "get shard iterator") {
					return
				}
				continue
			}
			iter = it
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		out, err := s.client.GetRecords(cctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: &limit})
		cancel()
		if err != nil {
			if classify(err) == errKindExpired {
				iter = nil // a new one after the last record read
				continue
			}
			if !s.handle(ctx, sh, err, &bo, "get records") {
				return
			}
			continue
		}
		bo.reset()
		behind := aws.ToInt64(out.MillisBehindLatest)
		sh.behind.Store(behind)
		end := out.NextShardIterator == nil
		if len(out.Records) > 0 || end {
			s.mu.Lock()
			if len(out.Records) > 0 {
				sh.lastRead = aws.ToString(out.Records[len(out.Records)-1].SequenceNumber)
			}
			if end {
				sh.state = stateEnded // before ReadBatch can see the end and finish it
				sh.behind.Store(0)
			}
			s.mu.Unlock()
			select {
			case s.ch <- &chunk{sh: sh, recs: out.Records, end: end}:
			case <-ctx.Done():
				return
			}
			if end {
				return
			}
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 || behind == 0 && len(out.Records) < int(limit) {
			if !sleep(ctx, s.o.PollInterval) {
				return
			}
		}
	}
}

// iterator gets a shard iterator after the last record read, or at the shard's start when
// none was.
func (s *Source) iterator(ctx context.Context, sh *shard) (*string, error) {
	s.mu.Lock()
	from := sh.from
	if sh.lastRead != "" {
		from = iterFrom{kind: types.ShardIteratorTypeAfterSequenceNumber, seq: sh.lastRead}
	} else if from.kind == types.ShardIteratorTypeLatest {
		sh.from.since = time.Now().UnixMilli()
	}
	s.mu.Unlock()
	in := &kinesis.GetShardIteratorInput{ShardId: aws.String(sh.id), ShardIteratorType: from.kind}
	s.setStream(&in.StreamName, &in.StreamARN)
	switch from.kind {
	case types.ShardIteratorTypeAfterSequenceNumber:
		in.StartingSequenceNumber = aws.String(from.seq)
	case types.ShardIteratorTypeAtTimestamp:
		in.Timestamp = aws.Time(time.UnixMilli(from.since))
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	out, err := s.client.GetShardIterator(cctx, in)
	if err != nil {
		if classify(err) == errKindFatal && from.kind == types.ShardIteratorTypeAfterSequenceNumber {
			return nil, fmt.Errorf("%w (resuming shard %s after sequence number %s: a checkpoint of another stream?)", err, sh.id, from.seq)
		}
		return nil, err
	}
	if out.ShardIterator == nil {
		return nil, fmt.Errorf("kinesis returned no iterator for shard %s", sh.id)
	}
	return out.ShardIterator, nil
}

// handle deals with a reader's error: it waits and reports true when the reader should try
// again, or ends the reader (false), failing the source when no retry can help.
func (s *Source) handle(ctx context.Context, sh *shard, err error, bo *backoff, what string) bool {
	if ctx.Err() != nil {
		return false
	}
	switch classify(err) {
	case errKindGone:
		s.o.Logger.Warn("kinesis: shard not found, probably trimmed past the retention period; it is read again if it is listed again",
			"stream", s.o.Stream, "shard", sh.id, "err", err)
		s.mu.Lock()
		sh.state = stateGone
		s.mu.Unlock()
		select { // children waiting for it may start once it is no longer listed
		case s.wake <- struct{}{}:
		default:
		}
		return false
	case errKindFatal:
		s.fail(fmt.Errorf("kinesis stream %s%s, shard %s: %s: %w", s.o.Stream, s.where(), sh.id, what, err))
		return false
	case errKindThrottled:
		if bo.attempt == 3 {
			s.o.Logger.Warn("kinesis: throttled; backing off", "stream", s.o.Stream, "shard", sh.id, "err", err)
		}
	default:
		if bo.attempt == 0 {
			s.o.Logger.Warn("kinesis: request failed; retrying with backoff", "stream", s.o.Stream, "shard", sh.id, "op", what, "err", err)
		}
	}
	return bo.wait(ctx)
}
