package httpapi

import (
	"math"
	"sync"
	"time"
)

// maxClients bounds the buckets kept at once. Past it, idle buckets are forgotten first,
// then arbitrary ones: a forgotten client starts again with a full bucket.
const maxClients = 100_000

// limiter is a token bucket per client: each holds up to burst tokens, refilled at rate per
// second; a request takes one.
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: time.Now, buckets: make(map[string]*bucket)}
}

// fullAfter is how long an untouched bucket takes to fill again: after it, a bucket is
// indistinguishable from a new one and may be forgotten.
func (l *limiter) fullAfter() time.Duration {
	return time.Duration(l.burst / l.rate * float64(time.Second))
}

// allow takes a token from client's bucket. When none is left it returns false and how
// long until one is.
func (l *limiter) allow(client string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > max(time.Minute, l.fullAfter()) || len(l.buckets) >= maxClients {
		l.sweep(now)
	}
	b, ok := l.buckets[client]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[client] = b
	} else if dt := now.Sub(b.last); dt > 0 {
		b.tokens = math.Min(l.burst, b.tokens+dt.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep forgets buckets that have refilled, and arbitrary ones if still too many remain.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	full := l.fullAfter()
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxClients*9/10 {
			break
		}
		delete(l.buckets, k)
	}
}

// retryAfterSeconds is the Retry-After value for a wait: whole seconds, at least 1.
func retryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}
