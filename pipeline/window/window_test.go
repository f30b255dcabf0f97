package window

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const hourMs = 3600_000

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero is the defaults", Config{}, true},
		{"one duration", Config{Durations: []time.Duration{time.Minute}}, true},
		{"whole ms", Config{Durations: []time.Duration{1500 * time.Millisecond}, MaxEvents: 1, TTL: time.Millisecond}, true},
		{"negative duration", Config{Durations: []time.Duration{-time.Hour}}, false},
		{"sub-ms duration", Config{Durations: []time.Duration{time.Hour + time.Microsecond}}, false},
		{"too many durations", Config{Durations: make([]time.Duration, MaxDurations+1)}, false},
		{"negative max events", Config{MaxEvents: -1}, false},
		{"huge max events", Config{MaxEvents: MaxMaxEvents + 1}, false},
		{"negative ttl", Config{TTL: -time.Hour}, false},
		{"sub-ms ttl", Config{TTL: time.Hour + 1}, false},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v", c.name, err)
		}
	}
}

func TestNewStoreDefaultsAndPanics(t *testing.T) {
	c := NewStore(Config{}).Config()
	if !slices.Equal(c.Durations, DefaultDurations()) || c.MaxEvents != DefaultMaxEvents || c.TTL != 30*24*time.Hour {
		t.Fatalf("defaults: %v", c)
	}
	if got := NewStore(Config{Durations: []time.Duration{time.Hour, 3 * time.Hour}}).Config().TTL; got != 3*time.Hour {
		t.Fatalf("default TTL %v, want the longest duration", got)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("NewStore accepted an invalid config")
		}
	}()
	NewStore(Config{MaxEvents: -1})
}

func TestConfigIsCopied(t *testing.T) {
	durs := []time.Duration{time.Hour, 2 * time.Hour}
	s := NewStore(Config{Durations: durs})
	durs[0] = time.Minute
	c := s.Config()
	c.Durations[1] = time.Minute
	if got := s.Config().Durations; !slices.Equal(got, []time.Duration{time.Hour, 2 * time.Hour}) {
		t.Fatalf("store config changed through a caller's slice: %v", got)
	}
	if c.String() != "durations=1h0m0s,1m0s max_events=256 ttl=2h0m0s" {
		t.Fatalf("String() = %q", c.String())
	}
}

func TestZeroStore(t *testing.T) {
	var s Store
	if s.Len() != 0 || s.Expire(math.MaxInt64) != 0 {
		t.Fatal("zero store is not empty")
	}
	if out := s.Peek("k", 0, nil); len(out) != 4 || out[0] != (Stats{}) {
		t.Fatalf("Peek on a zero store = %v", out)
	}
	out, _, ok := s.Observe("k", Event{TS: 10, Amount: 5}, nil)
	if ok || len(out) != 4 || out[3] != (Stats{Count: 1, Sum: 5, Max: 5}) || s.Len() != 1 {
		t.Fatalf("Observe on a zero store = %v %v", out, ok)
	}
}

// TestDurationOrder: windows come back in the configured order, whatever it is, and
// duplicates are fine.
func TestDurationOrder(t *testing.T) {
	s := NewStore(Config{Durations: []time.Duration{24 * time.Hour, time.Hour, 3 * time.Hour, time.Hour}})
	for i, ts := range []int64{0, 2 * hourMs, 10 * hourMs, 10*hourMs + 1} {
		s.Observe("k", Event{TS: ts, Amount: int64(i + 1)}, nil)
	}
	out := s.Peek("k", 10*hourMs+1, nil)
	want := []Stats{{Count: 4, Sum: 10, Max: 4}, {Count: 2, Sum: 7, Max: 4}, {Count: 2, Sum: 7, Max: 4}, {Count: 2, Sum: 7, Max: 4}}
	if !slices.Equal(out, want) {
		t.Fatalf("got %v, want %v", out, want)
	}
	out = s.Peek("k", 12*hourMs, nil)
	want = []Stats{{Count: 4, Sum: 10, Max: 4}, {}, {Count: 2, Sum: 7, Max: 4}, {}}
	if !slices.Equal(out, want) {
		t.Fatalf("got %v, want %v", out, want)
	}
}

func TestOutReuse(t *testing.T) {
	s := NewStore(Config{Durations: []time.Duration{time.Hour, 2 * time.Hour}})
	buf := make([]Stats, 1, 8)
	out, _, _ := s.Observe("k", Event{TS: 1}, buf)
	if len(out) != 2 || &out[0] != &buf[:1][0] {
		t.Fatal("Observe did not reuse a large enough out")
	}
	out = s.Peek("k", 1, buf[:0])
	if len(out) != 2 || &out[0] != &buf[:1][0] {
		t.Fatal("Peek did not reuse a large enough out")
	}
	small := make([]Stats, 1)
	if out, _, _ := s.Observe("k", Event{TS: 2}, small); len(out) != 2 || out[0].Count != 2 {
		t.Fatalf("Observe with a small out = %v", out)
	}
	// Peek of an unknown key clears stale values.
	stale := []Stats{{Count: 9}, {Count: 9}}
	if out := s.Peek("nobody", 1, stale); out[0] != (Stats{}) || out[1] != (Stats{}) {
		t.Fatalf("Peek of an unknown key = %v", out)
	}
}

func TestStatsMean(t *testing.T) {
	if (Stats{}).Mean() != 0 || (Stats{Count: 4, Sum: 10}).Mean() != 2.5 || (Stats{Count: 3, Sum: -3}).Mean() != -1 {
		t.Fatal("Mean")
	}
}

// TestRing checks insertion anywhere, popping and growth against a slice.
func TestRing(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, limit := range []int{1, 2, 3, 5, 8, 33} {
		var rg ring[int]
		var model []int
		for step := range 5000 {
			if len(model) == limit || len(model) > 0 && r.IntN(3) == 0 {
				if got := rg.popFront(); got != model[0] {
					t.Fatalf("limit %d step %d: popFront = %d, want %d", limit, step, got, model[0])
				}
				model = model[1:]
			} else {
				i := r.IntN(len(model) + 1)
				rg.reserve(limit)
				rg.insert(i, step)
				model = slices.Insert(model, i, step)
			}
			if rg.n != len(model) || len(rg.buf) > limit {
				t.Fatalf("limit %d: n %d cap %d, want n %d", limit, rg.n, len(rg.buf), len(model))
			}
			for i, v := range model {
				if *rg.at(i) != v {
					t.Fatalf("limit %d step %d: at(%d) = %d, want %d", limit, step, i, *rg.at(i), v)
				}
			}
		}
	}
}

func TestHourOf(t *testing.T) {
	for _, c := range [][2]int64{{0, 0}, {1, 0}, {hourMs - 1, 0}, {hourMs, hourMs}, {-1, -hourMs}, {-hourMs, -hourMs}, {-hourMs - 1, -2 * hourMs}} {
		if got := hourOf(c[0]); got != c[1] {
			t.Errorf("hourOf(%d) = %d, want %d", c[0], got, c[1])
		}
	}
}

// TestExtremeTimes: windows reaching below math.MinInt64 saturate instead of wrapping.
func TestExtremeTimes(t *testing.T) {
	s := NewStore(Config{Durations: []time.Duration{time.Hour}, MaxEvents: 8})
	for _, ts := range []int64{math.MinInt64, math.MinInt64 + 1, math.MinInt64 + 2, math.MaxInt64, math.MaxInt64} {
		s.Observe("k", Event{TS: ts, Amount: 1}, nil)
	}
	// (MinInt64+5-1h, MinInt64+5] saturates to (MinInt64, MinInt64+5].
	if out := s.Peek("k", math.MinInt64+5, nil); out[0].Count != 2 {
		t.Fatalf("Peek near MinInt64 = %v", out)
	}
	if out := s.Peek("k", math.MaxInt64, nil); out[0].Count != 2 {
		t.Fatalf("Peek at MaxInt64 = %v", out)
	}
	if s.Expire(math.MinInt64) != 0 || s.Expire(math.MaxInt64) != 0 || s.Len() != 1 {
		t.Fatal("Expire at the extremes")
	}
	// Folding and dropping at the extremes does not break the store's invariants.
	s = NewStore(Config{Durations: []time.Duration{time.Hour}, MaxEvents: 1})
	for _, ts := range []int64{math.MinInt64, math.MinInt64 + 1, math.MinInt64 + hourMs, math.MaxInt64 - hourMs, math.MaxInt64, math.MinInt64} {
		s.Observe("k", Event{TS: ts, Amount: 1}, nil)
		checkInvariants(t, s)
	}
}

func TestDistinctSet(t *testing.T) {
	var d distinctSet
	d.begin(3)
	if !d.add(5) || d.add(5) || !d.add(6) || !d.add(0x8000000000000000) {
		t.Fatal("add")
	}
	d.begin(3)
	if !d.add(5) {
		t.Fatal("begin did not empty the set")
	}
	// The generation wraps: stale slots must not look current.
	d.gen = math.MaxUint32 - 1
	d.begin(3)
	d.add(7)
	d.begin(3) // gen wraps to 0 and the slots are cleared
	if d.gen != 1 || !d.add(7) || d.add(7) {
		t.Fatal("generation wrap")
	}
	// Growing keeps working; colliding values all count.
	d.begin(1000)
	for i := range uint64(1000) {
		if !d.add(i << 40) {
			t.Fatalf("value %d reported as seen", i)
		}
	}
	for i := range uint64(1000) {
		if d.add(i << 40) {
			t.Fatalf("value %d reported as new twice", i)
		}
	}
}

// TestExpireLowerBound: Expire skips work only when no key can be due, including keys
// created late with old timestamps.
func TestExpireLowerBound(t *testing.T) {
	s := NewStore(Config{Durations: []time.Duration{time.Hour}, TTL: time.Hour})
	s.Observe("a", Event{TS: 100 * hourMs}, nil)
	if n := s.Expire(101*hourMs - 1); n != 0 {
		t.Fatalf("evicted %d", n)
	}
	s.Observe("b", Event{TS: 50 * hourMs}, nil) // a new key, older than any so far
	if n := s.Expire(51 * hourMs); n != 1 || s.keys["b"] != nil {
		t.Fatalf("evicted %d, keys %v", n, s.Len())
	}
	if n := s.Expire(101 * hourMs); n != 1 || s.Len() != 0 {
		t.Fatalf("evicted %d, keys %v", n, s.Len())
	}
}

// TestReuseAfterExpire: a new key that reuses an evicted key's buffers starts empty.
func TestReuseAfterExpire(t *testing.T) {
	cfg := Config{Durations: []time.Duration{time.Hour, 24 * time.Hour}, MaxEvents: 4}
	s := NewStore(cfg)
	for i := range int64(200) {
		s.Observe("old", Event{TS: i * 10 * 60_000, Amount: 100, Distinct: uint64(i%5 + 1)}, nil)
	}
	if s.keys["old"].bk.n() == 0 {
		t.Fatal("no buckets to reuse")
	}
	if s.Expire(1000*hourMs) != 1 || len(s.free) != 1 {
		t.Fatal("old key not evicted and kept for reuse")
	}
	fresh := NewStore(cfg)
	var a, b []Stats
	for i := range int64(50) {
		ev := Event{TS: 2000*hourMs + i*7*60_000, Amount: i, Distinct: uint64(i % 3)}
		var pa, pb Event
		var oka, okb bool
		a, pa, oka = s.Observe("new", ev, a)
		b, pb, okb = fresh.Observe("new", ev, b)
		if !slices.Equal(a, b) || pa != pb || oka != okb {
			t.Fatalf("event %d: reused %v %v %v, fresh %v %v %v", i, a, pa, oka, b, pb, okb)
		}
	}
}

// TestFreeListBounded: eviction keeps a bounded number of series, and not large bucket
// buffers.
func TestFreeListBounded(t *testing.T) {
	s := NewStore(Config{Durations: []time.Duration{time.Hour, 24 * 7 * time.Hour}, MaxEvents: 1})
	for k := range maxFree + 10 {
		key := string(rune('a'+k%26)) + string(rune('a'+k/26))
		for i := range int64(100) {
			s.Observe(key, Event{TS: i * hourMs}, nil)
		}
	}
	s.Expire(math.MaxInt64)
	if len(s.free) != maxFree {
		t.Fatalf("free list has %d series, want %d", len(s.free), maxFree)
	}
	for _, sr := range s.free {
		if len(sr.bk.r.buf) > maxFreeBuckets || sr.ev.n != 0 || sr.bk.n() != 0 {
			t.Fatal("free list keeps state or a large bucket buffer")
		}
	}
}

// TestNoAllocs: in steady state Observe (exact and overflowing keys) and Peek allocate
// nothing.
func TestNoAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	s := NewStore(Config{MaxEvents: 64})
	out := make([]Stats, 4)
	keys := []string{"a", "b", "c"}
	ts := int64(0)
	warm := func(n int) {
		for i := range n {
			ts += 60_000
			s.Observe(keys[i%3], Event{TS: ts, Amount: int64(i), Distinct: uint64(i % 17)}, out)
		}
	}
	warm(3 * 24 * 60 * 31) // a month at one event a minute: buffers and buckets at their caps
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		ts += 60_000
		ev := Event{TS: ts, Amount: int64(i), Distinct: uint64(i % 17)}
		if i%10 == 0 {
			ev.TS -= 3 * hourMs // late
		}
		out, _, _ = s.Observe(keys[i%3], ev, out)
		out = s.Peek(keys[(i+1)%3], ts-hourMs, out)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Observe+Peek", allocs)
	}
}
