package remote

import (
	"sync"
	"time"
)

// BreakerState is a circuit breaker's state; its number is the value of the
// fraudpipe_remote_breaker_state gauge.
type BreakerState int32

// Breaker states.
const (
	// Closed lets every call through and counts failures.
	Closed BreakerState = iota
	// Open refuses every call until the cool-down has passed.
	Open
	// HalfOpen lets one trial call through: its success closes the breaker, its failure
	// opens it again for another cool-down.
	HalfOpen
)

var stateNames = [...]string{"closed", "open", "half_open"}

// String returns the state's name as written in logs and metric labels.
func (s BreakerState) String() string { return stateNames[s] }

// BreakerConfig says when the breaker opens and for how long.
type BreakerConfig struct {
	// Failures is how many consecutive failed calls open the breaker; default 5.
	Failures int
	// FailureRatio opens the breaker when at least this share of the calls of the last
	// Window failed, once MinCalls calls were made in it; 0 turns the ratio off.
	FailureRatio float64
	// Window is the time over which FailureRatio is measured; default 10s.
	Window time.Duration
	// MinCalls is the fewest calls in Window for FailureRatio to count; default 20.
	MinCalls int
	// OpenFor is the cool-down: how long the breaker stays open before it lets a trial
	// call through; default 5s.
	OpenFor time.Duration
}

// Breaker defaults.
const (
	DefaultBreakerFailures = 5
	DefaultBreakerWindow   = 10 * time.Second
	DefaultBreakerMinCalls = 20
	DefaultBreakerOpenFor  = 5 * time.Second
)

func (c *BreakerConfig) defaults() {
	if c.Failures <= 0 {
		c.Failures = DefaultBreakerFailures
	}
	if c.Window <= 0 {
		c.Window = DefaultBreakerWindow
	}
	if c.MinCalls <= 0 {
		c.MinCalls = DefaultBreakerMinCalls
	}
	if c.OpenFor <= 0 {
		c.OpenFor = DefaultBreakerOpenFor
	}
}

// windowBuckets is how many buckets the failure-ratio window is measured in: the ratio
// forgets old calls a tenth of the window at a time.
const windowBuckets = 10

type bucket struct {
	n        int64 // the bucket's number: time since the epoch / bucket width
	ok, fail int
}

// breaker is a circuit breaker shared by every partition of a scorer: the model server's
// health is one thing, whichever partition finds out first.
type breaker struct {
	cfg BreakerConfig

	mu       sync.Mutex
	state    BreakerState
	failures int       // consecutive failures while closed
	openedAt time.Time // when it last opened
	probing  bool      // half-open: the trial call is in flight
	buckets  [windowBuckets]bucket
	width    time.Duration
	// onChange is called, under mu, when the state changes.
	onChange func(from, to BreakerState)
}

func newBreaker(cfg BreakerConfig, onChange func(from, to BreakerState)) *breaker {
	cfg.defaults()
	w := cfg.Window / windowBuckets
	if w <= 0 {
		w = 1
	}
	return &breaker{cfg: cfg, width: w, onChange: onChange}
}

// allow says whether a call may go out now, and whether it is the half-open breaker's
// trial call. A call allowed must be followed by exactly one record with the same probe.
func (b *breaker) allow(now time.Time) (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true, false
	case Open:
		if now.Sub(b.openedAt) < b.cfg.OpenFor {
			return false, false
		}
		b.set(HalfOpen)
		b.probing = true
		return true, true
	default: // HalfOpen
		if b.probing {
			return false, false
		}
		b.probing = true
		return true, true
	}
}

// record reports the outcome of a call that allow let through.
func (b *breaker) record(now time.Time, ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
		if ok {
			b.reset()
			b.set(Closed)
		} else {
			b.trip(now)
		}
		return
	}
	if b.state != Closed {
		// A call let through before another partition's failures opened the breaker:
		// only the trial call decides what happens next.
		return
	}
	n := now.UnixNano() / int64(b.width)
	bk := &b.buckets[n%windowBuckets]
	if bk.n != n {
		*bk = bucket{n: n}
	}
	if ok {
		b.failures = 0
		bk.ok++
		return
	}
	b.failures++
	bk.fail++
	if b.failures >= b.cfg.Failures {
		b.trip(now)
		return
	}
	if b.cfg.FailureRatio > 0 {
		calls, fails := 0, 0
		for i := range b.buckets {
			if x := &b.buckets[i]; x.n > n-windowBuckets {
				calls += x.ok + x.fail
				fails += x.fail
			}
		}
		if calls >= b.cfg.MinCalls && float64(fails) >= b.cfg.FailureRatio*float64(calls) {
			b.trip(now)
		}
	}
}

func (b *breaker) trip(now time.Time) {
	b.reset()
	b.openedAt = now
	b.set(Open)
}

func (b *breaker) reset() {
	b.failures = 0
	b.buckets = [windowBuckets]bucket{}
}

func (b *breaker) set(s BreakerState) {
	if s == b.state {
		return
	}
	from := b.state
	b.state = s
	if b.onChange != nil {
		b.onChange(from, s)
	}
}

// current returns the state.
func (b *breaker) current() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
