package httpapi

import (
	"sync"
	"sync/atomic"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// A call is one transaction waiting for its decision. Requests for the same id share the
// one call that entered the engine. The call's state moves from queued to taken (handed to
// the engine, which will answer it) or to abandoned (never read: its requests gave up or
// the engine stopped).
type call struct {
	id    string
	data  []byte
	state atomic.Int32
	done  chan struct{} // closed once status and answer are set
	// status and answer (a decision) or err are written once, before done is closed.
	status int
	answer []byte
	err    *apiError
}

const (
	stateQueued int32 = iota
	stateTaken
	stateAbandoned
)

func newCall(id string, data []byte) *call {
	return &call{id: id, data: data, done: make(chan struct{})}
}

// fail sets an error answer and wakes every request waiting for it.
func (c *call) fail(status int, e *apiError) {
	c.status, c.err = status, e
	close(c.done)
}

// registry holds the answered decisions by transaction id (a bounded two-generation cache),
// the calls in flight by id, and the calls the engine has taken by source position.
type registry struct {
	mu       sync.Mutex
	cur      map[string][]byte
	prev     map[string][]byte
	genSize  int // entries per generation: the cache holds at most 2×genSize
	inflight map[string]*call
	taken    map[int64]*call
	nextPos  int64
	joined   int64 // requests that joined a call in flight, for tests
}

func newRegistry(capacity int) *registry {
	g := max(1, capacity/2)
	return &registry{
		cur: make(map[string][]byte), prev: make(map[string][]byte), genSize: g,
		inflight: make(map[string]*call), taken: make(map[int64]*call),
	}
}

// lookup returns the cached decision of id, or nil.
func (r *registry) lookup(id string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.getLocked(id)
}

func (r *registry) getLocked(id string) []byte {
	if b, ok := r.cur[id]; ok {
		return b
	}
	if b, ok := r.prev[id]; ok {
		r.putLocked(id, b) // recently asked for: keep it through the next rotation
		return b
	}
	return nil
}

func (r *registry) putLocked(id string, answer []byte) {
	if len(r.cur) >= r.genSize {
		r.prev, r.cur = r.cur, make(map[string][]byte, r.genSize/4)
	}
	r.cur[id] = answer
}

// join returns the cached decision of id, or the call in flight for it, or a new call the
// caller owns and must queue (owner true).
func (r *registry) join(id string, data []byte) (cached []byte, c *call, owner bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.getLocked(id); b != nil {
		return b, nil, false
	}
	if c := r.inflight[id]; c != nil {
		r.joined++
		return nil, c, false
	}
	c = newCall(id, data)
	r.inflight[id] = c
	return nil, c, true
}

// abandon ends a call that the engine never took: its waiters get status and answer, and
// the id may enter the engine again. It reports false when the engine took the call first.
func (r *registry) abandon(c *call, status int, e *apiError) bool {
	if !c.state.CompareAndSwap(stateQueued, stateAbandoned) {
		return false
	}
	r.mu.Lock()
	if r.inflight[c.id] == c {
		delete(r.inflight, c.id)
	}
	r.mu.Unlock()
	c.fail(status, e)
	return true
}

// take records calls handed to the engine and returns their positions.
func (r *registry) take(calls []*call, pos []int64) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range calls {
		r.nextPos++
		r.taken[r.nextPos] = c
		pos = append(pos, r.nextPos)
	}
	return pos
}

// untake returns the calls of the API's events, in order, forgetting them; an event of
// another source, or at a position that is not a taken call, gives nil.
func (r *registry) untake(events []pipeline.Event, into []*call) []*call {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range events {
		var c *call
		if ev := &events[i]; ev.Source == SourceName {
			if c = r.taken[ev.Pos]; c != nil {
				delete(r.taken, ev.Pos)
			}
		}
		into = append(into, c)
	}
	return into
}

// complete stores the answers of decided calls (cache true) and ends every call of the
// batch, waking their waiters.
func (r *registry) complete(calls []*call, cache []bool) {
	r.mu.Lock()
	for i, c := range calls {
		if c == nil {
			continue
		}
		if cache[i] {
			r.putLocked(c.id, c.answer)
		}
		if r.inflight[c.id] == c {
			delete(r.inflight, c.id)
		}
	}
	r.mu.Unlock()
	for _, c := range calls {
		if c != nil {
			close(c.done)
		}
	}
}

// failTaken ends every call the engine took and has not answered.
func (r *registry) failTaken(status int, e *apiError) {
	r.mu.Lock()
	var calls []*call
	for p, c := range r.taken {
		calls = append(calls, c)
		delete(r.taken, p)
		if r.inflight[c.id] == c {
			delete(r.inflight, c.id)
		}
	}
	r.mu.Unlock()
	for _, c := range calls {
		c.fail(status, e)
	}
}

// counts reports the calls in flight and taken and the requests that joined one, for tests.
func (r *registry) counts() (inflight, taken int, joined int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inflight), len(r.taken), r.joined
}
