package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// handleOne is POST /v1/transactions: one transaction, answered with its decision.
func (s *Server) handleOne(w http.ResponseWriter, r *http.Request) int {
	if mt := mediaType(r); mt != "application/json" {
		return unsupportedType(w, mt, "application/json")
	}
	body, status := readBody(w, r, s.opts.MaxBodyBytes)
	if status != 0 {
		return status
	}
	var tx pipeline.Transaction
	if err := pipeline.DecodeTransaction(body, &tx); err != nil {
		de := err.(*pipeline.DecodeError)
		return reply(w, http.StatusBadRequest, errorJSON("invalid transaction", de.Code, de.Detail))
	}
	dl := s.newDeadline(r)
	defer dl.release()
	cached, c, owner := s.submit(&dl, tx.ID, body)
	if cached != nil {
		w.Header()["Idempotent-Replayed"] = headerTrue
		return reply(w, http.StatusOK, cached)
	}
	st, answer, e := s.wait(&dl, c, owner)
	if e != nil {
		if st == http.StatusServiceUnavailable {
			w.Header()["Retry-After"] = headerOne
		}
		return reply(w, st, e.json())
	}
	if !owner {
		w.Header()["Idempotent-Replayed"] = headerTrue
	}
	return reply(w, st, answer)
}

// Header values shared by every answer that carries them (see jsonContentType).
var (
	headerTrue = []string{"true"}
	headerOne  = []string{"1"}
)

// timerPool holds the timers of requests' deadlines, so that a request waiting for its
// decision costs no timer, context or channel of its own.
var timerPool sync.Pool

// closedTimes is a channel that is always ready: a deadline that has passed.
var closedTimes = func() chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

// deadline is how long a request waits for its decisions (Options.Timeout) and whether its
// client is still there. It is used by the request's goroutine only.
type deadline struct {
	timer   *time.Timer
	expired bool
	ctx     context.Context // the request's: done when the client goes away
	gone    <-chan struct{}
}

func (s *Server) newDeadline(r *http.Request) deadline {
	t, _ := timerPool.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(s.opts.Timeout)
	} else {
		t.Reset(s.opts.Timeout)
	}
	ctx := r.Context()
	return deadline{timer: t, ctx: ctx, gone: ctx.Done()}
}

// expiry is ready once the timeout has passed, and stays ready: call expire after
// receiving from it.
func (d *deadline) expiry() <-chan time.Time {
	if d.expired {
		return closedTimes
	}
	return d.timer.C
}

func (d *deadline) expire() { d.expired = true }

// clientGone reports whether the client closed the request.
func (d *deadline) clientGone() bool { return d.ctx.Err() != nil }

func (d *deadline) release() {
	d.timer.Stop() // no stale expiry is delivered after Stop (Go 1.23 timers)
	timerPool.Put(d.timer)
	d.timer = nil
}

// handleGet is GET /v1/transactions/{id}: the cached decision of id.
func (s *Server) handleGet(w http.ResponseWriter, id string) int {
	if b := s.reg.lookup(id); b != nil {
		return reply(w, http.StatusOK, b)
	}
	return reply(w, http.StatusNotFound, errorJSON("no decision", ReasonNotFound,
		"no decision for this id is cached: it was not decided, is still being decided, or was decided long ago or before a restart"))
}

// handleBatch is POST /v1/transactions/batch: NDJSON or a JSON array of transactions,
// answered with the decisions of the valid ones and the errors of the others, in input
// order. When one valid transaction is not decided in time, the whole batch is answered
// 503: a retry of the same batch gets the decisions already made from the cache.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) int {
	mt := mediaType(r)
	if mt != "application/json" && mt != "application/x-ndjson" && mt != "application/ndjson" && mt != "application/jsonl" {
		return unsupportedType(w, mt, "application/x-ndjson or application/json (an array)")
	}
	body, status := readBody(w, r, s.opts.MaxBatchBytes)
	if status != 0 {
		return status
	}
	items, e := splitBatch(body, mt == "application/json", s.opts.MaxBatch)
	if e != nil {
		if e.reason == ReasonTooLarge {
			return reply(w, http.StatusRequestEntityTooLarge, e.json())
		}
		return reply(w, http.StatusBadRequest, e.json())
	}
	type item struct {
		cached []byte
		c      *call
		owner  bool
		err    *apiError
	}
	dl := s.newDeadline(r)
	defer dl.release()
	res := make([]item, len(items))
	var tx pipeline.Transaction
	for i, data := range items {
		if err := pipeline.DecodeTransaction(data, &tx); err != nil {
			de := err.(*pipeline.DecodeError)
			res[i].err = &apiError{"invalid transaction", de.Code, de.Detail}
			continue
		}
		res[i].cached, res[i].c, res[i].owner = s.submit(&dl, tx.ID, data)
	}
	for i := range res {
		it := &res[i]
		if it.c == nil {
			continue
		}
		st, answer, e := s.wait(&dl, it.c, it.owner)
		if st == http.StatusServiceUnavailable || dl.clientGone() {
			if e == nil {
				e = &apiError{"client gone", ReasonTimeout, "the client closed the request"}
			}
			// Give up on the rest of the batch too: what the engine did not take leaves the
			// queue, and a retry finds the rest cached.
			for j := i + 1; j < len(res); j++ {
				if res[j].owner {
					s.reg.abandon(res[j].c, http.StatusServiceUnavailable, e)
				}
			}
			w.Header()["Retry-After"] = headerOne
			return reply(w, http.StatusServiceUnavailable, e.json())
		}
		if e != nil {
			it.err = e
		} else {
			it.cached = answer
		}
	}
	out := make([]byte, 0, 64+200*len(res))
	out = append(out, `{"decisions":[`...)
	n := 0
	for _, it := range res {
		if it.err == nil {
			if n > 0 {
				out = append(out, ',')
			}
			out = append(out, it.cached...)
			n++
		}
	}
	out = append(out, `],"errors":[`...)
	n = 0
	for i, it := range res {
		if it.err != nil {
			if n > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"index":`...)
			out = strconv.AppendInt(out, int64(i), 10)
			out = append(out, `,"reason":`...)
			out = pipeline.AppendJSONString(out, it.err.reason)
			out = append(out, `,"detail":`...)
			out = pipeline.AppendJSONString(out, it.err.detail)
			out = append(out, '}')
			n++
		}
	}
	out = append(out, "]}"...)
	return reply(w, http.StatusOK, out)
}

// splitBatch cuts a batch body into its transactions: the lines of NDJSON (blank ones
// skipped), or the elements of a JSON array.
func splitBatch(body []byte, array bool, limit int) ([][]byte, *apiError) {
	tooMany := func() *apiError {
		return &apiError{"batch too large", ReasonTooLarge, "a batch holds at most " + strconv.Itoa(limit) + " transactions; split it"}
	}
	var items [][]byte
	if !array {
		for len(body) > 0 {
			line := body
			if i := bytes.IndexByte(body, '\n'); i >= 0 {
				line, body = body[:i], body[i+1:]
			} else {
				body = nil
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if len(items) == limit {
				return nil, tooMany()
			}
			items = append(items, bytes.TrimRight(line, "\r"))
		}
		return items, nil
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if t, err := d.Token(); err != nil || t != json.Delim('[') {
		return nil, &apiError{"invalid batch", pipeline.ReasonInvalidJSON,
			"an application/json batch is one JSON array of transactions; send NDJSON as application/x-ndjson"}
	}
	for d.More() {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return nil, &apiError{"invalid batch", pipeline.ReasonInvalidJSON, "element " + strconv.Itoa(len(items)) + ": " + err.Error()}
		}
		if len(items) == limit {
			return nil, tooMany()
		}
		items = append(items, raw)
	}
	if _, err := d.Token(); err != nil {
		return nil, &apiError{"invalid batch", pipeline.ReasonInvalidJSON, "the array is not closed: " + err.Error()}
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, &apiError{"invalid batch", pipeline.ReasonInvalidJSON, "data after the array"}
	}
	return items, nil
}

// submit returns the cached decision of id, or the call that will answer it; owner is set
// when this request made the call and queued it for the engine.
func (s *Server) submit(dl *deadline, id string, data []byte) (cached []byte, c *call, owner bool) {
	cached, c, owner = s.reg.join(id, data)
	if !owner {
		return cached, c, false
	}
	if s.closing.Load() || s.stopped.Load() {
		s.reg.abandon(c, http.StatusServiceUnavailable, &apiError{"not decided", ReasonUnavailable,
			"the server is shutting down; retry with the same id"})
		return nil, c, true
	}
	select {
	case s.queue <- c:
	default:
		select {
		case s.queue <- c:
		case <-dl.gone:
			s.reg.abandon(c, http.StatusServiceUnavailable, &apiError{"not decided", ReasonTimeout,
				"the client closed the request"})
			return nil, c, true
		case <-dl.expiry():
			dl.expire()
			s.reg.abandon(c, http.StatusServiceUnavailable, &apiError{"not decided", ReasonTimeout,
				"the decision engine is saturated; retry with the same id after Retry-After seconds"})
			return nil, c, true
		}
	}
	// The engine may have stopped reading while this call was queued after it drained
	// the queue: then nobody will take it.
	if s.stopped.Load() || s.ended.Load() {
		s.reg.abandon(c, http.StatusServiceUnavailable, &apiError{"not decided", ReasonUnavailable,
			"the decision engine is stopping; retry with the same id"})
	}
	return nil, c, true
}

// wait waits for call c until the request's deadline passes or its client leaves. It
// returns the decision, or the error answer and its status. The owner of a call the engine
// has not taken yet withdraws it when it gives up.
func (s *Server) wait(dl *deadline, c *call, owner bool) (int, []byte, *apiError) {
	select {
	case <-c.done:
		return c.status, c.answer, c.err
	case <-dl.gone:
	case <-dl.expiry():
		dl.expire()
	}
	e := &apiError{"not decided in time", ReasonTimeout,
		"no decision within " + s.opts.Timeout.String() + "; retry with the same id after Retry-After seconds: the transaction is decided at most once"}
	if dl.clientGone() {
		e = &apiError{"client gone", ReasonTimeout, "the client closed the request"}
	}
	if owner && s.reg.abandon(c, http.StatusServiceUnavailable, e) {
		return http.StatusServiceUnavailable, nil, e
	}
	select {
	case <-c.done: // answered meanwhile
		if c.err == nil || c.status != http.StatusServiceUnavailable {
			return c.status, c.answer, c.err
		}
	default:
	}
	return http.StatusServiceUnavailable, nil, e
}

// mediaType is the request's Content-Type without parameters, in lower case.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

func unsupportedType(w http.ResponseWriter, got, want string) int {
	if got == "" {
		got = "none"
	}
	return reply(w, http.StatusUnsupportedMediaType, errorJSON("unsupported content type", ReasonUnsupportedType,
		"Content-Type "+truncate(got, 100)+"; send "+want))
}

// readBody reads the request body, refusing one over limit with 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, int) {
	tooLarge := func() int {
		return reply(w, http.StatusRequestEntityTooLarge, errorJSON("body too large", ReasonTooLarge,
			"the body is over "+strconv.FormatInt(limit, 10)+" bytes"))
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	var b []byte
	var err error
	if r.ContentLength >= 0 { // net/http holds the body to its declared length
		b = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, b)
	} else {
		b, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, reply(w, http.StatusBadRequest, errorJSON("unreadable body", pipeline.ReasonInvalidJSON, err.Error()))
	}
	return b, 0
}
