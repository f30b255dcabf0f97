package remote

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// call makes one call through b at now with the given outcome; it fails the test if b
// refuses it.
func call(t *testing.T, b *breaker, now time.Time, ok bool) {
	t.Helper()
	allowed, probe := b.allow(now)
	if !allowed {
		t.Fatalf("breaker (%v) refused a call at %v", b.current(), now.Sub(t0))
	}
	b.record(now, ok, probe)
}

func refuses(b *breaker, now time.Time) bool {
	ok, _ := b.allow(now)
	return !ok
}

func TestBreakerConsecutiveFailures(t *testing.T) {
	var changes []string
	b := newBreaker(BreakerConfig{Failures: 3, OpenFor: 10 * time.Second}, func(from, to BreakerState) {
		changes = append(changes, from.String()+">"+to.String())
	})
	now := t0
	// A success in between resets the count.
	for _, ok := range []bool{false, false, true, false, false} {
		call(t, b, now, ok)
	}
	if b.current() != Closed {
		t.Fatalf("state %v after 2 consecutive failures, want closed", b.current())
	}
	call(t, b, now, false)
	if b.current() != Open || !refuses(b, now.Add(10*time.Second-1)) {
		t.Fatalf("state %v after 3 consecutive failures, want open and refusing", b.current())
	}
	// Half-open: one trial call, the others refused until it is recorded.
	now = now.Add(10 * time.Second)
	ok, probe := b.allow(now)
	if !ok || !probe {
		t.Fatalf("allow after the cool-down = %v, %v; want the trial call", ok, probe)
	}
	if b.current() != HalfOpen || !refuses(b, now) || !refuses(b, now.Add(time.Hour)) {
		t.Fatal("half-open breaker let a second call through")
	}
	b.record(now, true, probe)
	if b.current() != Closed {
		t.Fatalf("state %v after a successful trial, want closed", b.current())
	}
	call(t, b, now, true)
	want := []string{"closed>open", "open>half_open", "half_open>closed"}
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Errorf("changes %v, want %v", changes, want)
		}
	}
}

// TestBreakerStaleCall: a call let through while the breaker was closed that ends while it
// is open or half-open changes nothing; only the trial call decides.
func TestBreakerStaleCall(t *testing.T) {
	b := newBreaker(BreakerConfig{Failures: 1, OpenFor: time.Minute}, nil)
	_, stale1 := b.allow(t0) // two calls go out while closed and answer late
	_, stale2 := b.allow(t0)
	call(t, b, t0, false) // another partition's failure opens the breaker
	b.record(t0, true, stale1)
	if b.current() != Open {
		t.Fatalf("a stale success while open: state %v, want open", b.current())
	}
	now := t0.Add(time.Minute)
	ok, probe := b.allow(now)
	if !ok || !probe {
		t.Fatal("no trial call")
	}
	b.record(now, true, stale2) // a stale success while half-open
	if b.current() != HalfOpen || !refuses(b, now) {
		t.Fatalf("a stale success while half-open: state %v, want half-open with the trial in flight", b.current())
	}
	b.record(now, false, probe)
	if b.current() != Open {
		t.Fatalf("failed trial: state %v, want open", b.current())
	}
}

func TestBreakerFailureRatio(t *testing.T) {
	b := newBreaker(BreakerConfig{Failures: 100, FailureRatio: 0.5, MinCalls: 4, Window: 10 * time.Second, OpenFor: time.Second}, nil)
	// Two failures, then a quiet window: they are forgotten.
	call(t, b, t0, false)
	call(t, b, t0, false)
	now := t0.Add(11 * time.Second)
	call(t, b, now, true)
	call(t, b, now, false)
	call(t, b, now, true)
	if b.current() != Closed {
		t.Fatal("opened on failures older than the window")
	}
	call(t, b, now, true) // 4 calls, 1 failure: 25%
	if b.current() != Closed {
		t.Fatal("opened at 25% failures")
	}
	call(t, b, now, false) // 5 calls, 2 failures: 40%
	if b.current() != Closed {
		t.Fatal("opened at 40% failures")
	}
	call(t, b, now.Add(time.Second), false) // 6 calls, 3 failures: 50%
	if b.current() != Open {
		t.Fatalf("state %v at 50%% failures, want open", b.current())
	}
}

func TestBreakerRatioNeedsMinCalls(t *testing.T) {
	b := newBreaker(BreakerConfig{Failures: 100, FailureRatio: 0.1, MinCalls: 20}, nil)
	for i := range 19 {
		call(t, b, t0, i%2 == 0)
	}
	if b.current() != Closed {
		t.Fatal("opened before MinCalls calls")
	}
	call(t, b, t0, false)
	if b.current() != Open {
		t.Fatal("not open at 20 calls, half failed")
	}
}

func TestBreakerFailedTrialReopens(t *testing.T) {
	b := newBreaker(BreakerConfig{Failures: 1, OpenFor: time.Minute}, nil)
	call(t, b, t0, false)
	now := t0.Add(time.Minute)
	call(t, b, now, false) // the trial call fails
	if b.current() != Open || !refuses(b, now.Add(time.Minute-1)) || refuses(b, now.Add(time.Minute)) {
		t.Error("a failed trial call did not start a new cool-down")
	}
}
