package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// fetchWait is how long ReadBatch waits for a first request before it returns an empty
// batch, so the engine keeps its watermark and checkpoints moving while traffic is idle.
const fetchWait = 200 * time.Millisecond

// SourceName is the source name the API's transactions carry in dead letters and metrics.
const SourceName = "http-api"

// Name identifies the API in dead letters and metrics.
func (s *Server) Name() string { return SourceName }

var noAck pipeline.AckFunc = func(context.Context, error) error { return nil }

// ReadBatch hands the engine the transactions waiting for a decision: it waits up to
// 200 ms for the first, then takes every other one already waiting, up to BatchSize. It
// returns pipeline.ErrEndOfInput once the server is shut down or closed. When ctx is
// cancelled (the engine stops reading), requests still waiting are answered 503 at once.
//
// ReadBatch is called by one goroutine, the engine's reader.
func (s *Server) ReadBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	if ctx != s.readCtx {
		s.readCtx = ctx // a new engine run
		s.stopped.Store(false)
		context.AfterFunc(ctx, func() { s.stopReading("the decision engine is stopping") })
	}
	if s.ended.Load() {
		s.stopReading("the server is shutting down")
		return nil, nil, pipeline.ErrEndOfInput
	}
	s.fetchTimer.Reset(fetchWait)
	calls := s.batchCalls[:0]
	for len(calls) == 0 {
		select {
		case c := <-s.queue:
			if c.state.CompareAndSwap(stateQueued, stateTaken) {
				calls = append(calls, c)
			}
		case <-ctx.Done():
			s.fetchTimer.Stop()
			return nil, nil, ctx.Err()
		case <-s.endCh:
			s.fetchTimer.Stop()
			s.stopReading("the server is shutting down")
			return nil, nil, pipeline.ErrEndOfInput
		case <-s.fetchTimer.C:
			return nil, nil, nil
		}
	}
	s.fetchTimer.Stop()
more:
	for len(calls) < s.opts.BatchSize {
		select {
		case c := <-s.queue:
			if c.state.CompareAndSwap(stateQueued, stateTaken) {
				calls = append(calls, c)
			}
		default:
			break more
		}
	}
	s.batchPos = s.reg.take(calls, s.batchPos[:0])
	msgs := make([]pipeline.Message, len(calls))
	for i, c := range calls {
		msgs[i] = pipeline.Message{Data: c.data, Pos: s.batchPos[i]}
	}
	clear(calls)
	s.batchCalls = calls[:0]
	return msgs, noAck, nil
}

// Respond answers the requests of a batch the engine decided: a decision is cached by
// transaction id and sent as the answer; a duplicate_id refusal of an id no longer cached
// (decided before a restart, or evicted) is answered 409; any other refusal 400. The
// events are not kept.
//
// Respond is called by one goroutine, the engine's sink stage.
func (s *Server) Respond(events []pipeline.Event) {
	calls := s.reg.untake(events, s.respCalls[:0])
	cache := append(s.respCache[:0], make([]bool, len(calls))...)
	for i, c := range calls {
		if c == nil {
			continue
		}
		ev := &events[i]
		switch {
		case ev.Err == nil:
			c.status = http.StatusOK
			// Encoded into a reused buffer, then copied at its size: the answer is cached.
			s.respBuf = pipeline.AppendDecisionJSON(s.respBuf[:0], ev, s.opts.FeatureNames)
			c.answer = bytes.Clone(s.respBuf)
			cache[i] = true
		case ev.Err.Code == pipeline.ReasonDuplicateID:
			if b := s.reg.lookup(c.id); b != nil {
				c.status, c.answer = http.StatusOK, b
			} else {
				c.status = http.StatusConflict
				c.err = &apiError{"already decided", pipeline.ReasonDuplicateID,
					"transaction " + c.id + " was decided before and its decision is no longer cached; it is not decided again"}
			}
		default:
			c.status = http.StatusBadRequest
			c.err = &apiError{"invalid transaction", ev.Err.Code, ev.Err.Detail}
		}
	}
	s.reg.complete(calls, cache)
	clear(calls)
	s.respCalls, s.respCache = calls[:0], cache[:0]
}

// position is the API's source position: there is nothing to rewind to, since a request is
// acknowledged only by its answer and a client retries what was not answered.
type position struct {
	API bool `json:"api"`
}

// Position returns {"api":true}, so that the engine's checkpoints of state work with the
// API as their source.
func (s *Server) Position() ([]byte, error) { return []byte(`{"api":true}`), nil }

// Seek accepts a position of the API. Nothing is replayed: requests that were not answered
// before the restart were never acknowledged, and their clients send them again.
func (s *Server) Seek(pos []byte) error {
	var p position
	if err := json.Unmarshal(pos, &p); err != nil || !p.API {
		return fmt.Errorf("the checkpoint was taken reading another source (position %.60q), not the HTTP API: start from no checkpoint or from one of the API", pos)
	}
	return nil
}

// stopReading marks the engine as no longer reading: requests waiting in the queue are
// answered 503, and new ones are refused with 503 at once.
func (s *Server) stopReading(why string) {
	s.stopped.Store(true)
	e := &apiError{"not decided", ReasonUnavailable, why + "; retry with the same id"}
	for {
		select {
		case c := <-s.queue:
			s.reg.abandon(c, http.StatusServiceUnavailable, e)
		default:
			return
		}
	}
}
