package window

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// model is a brute-force reference: every event of every key, sorted by time, equal
// times in arrival order.
type model struct {
	keys map[string][]Event
}

func newModel() *model { return &model{keys: map[string][]Event{}} }

// add inserts ev after every event of key at or before its time.
func (m *model) add(key string, ev Event) {
	h := m.keys[key]
	i, _ := slices.BinarySearchFunc(h, ev.TS+1, func(e Event, t int64) int { return cmp.Compare(e.TS, t) })
	m.keys[key] = slices.Insert(h, i, ev)
}

// upto returns how many events of h are at or before t.
func upto(h []Event, t int64) int {
	i, _ := slices.BinarySearchFunc(h, t+1, func(e Event, t int64) int { return cmp.Compare(e.TS, t) })
	return i
}

// window returns the events of h in (t-d, t], a copy.
func window(h []Event, t, d int64) []Event {
	return slices.Clone(h[upto(h, t-d):upto(h, t)])
}

// agg aggregates events the way Stats does.
func agg(evs []Event) Stats {
	var s Stats
	seen := map[uint64]bool{}
	for i, e := range evs {
		if i == 0 || e.Amount > s.Max {
			s.Max = e.Amount
		}
		s.Count++
		s.Sum += e.Amount
		if e.Distinct != 0 && !seen[e.Distinct] {
			seen[e.Distinct] = true
			s.Distinct++
		}
	}
	return s
}

// prevOf returns the latest event of h at or before t, the last to arrive among equals.
func prevOf(h []Event, t int64) (Event, bool) {
	if i := upto(h, t); i > 0 {
		return h[i-1], true
	}
	return Event{}, false
}

// stream describes a random test stream.
type stream struct {
	keys     int
	maxGap   time.Duration // gap between in-order events, uniform in [0, maxGap]
	lateProb float64       // probability that an event is late
	maxLate  time.Duration // how late, uniform in [0, maxLate]
	negProb  float64       // probability of a negative amount
	distinct int           // distinct values are 1..distinct, or 0 (none) one time in 8
}

type step struct {
	key string
	ev  Event
}

func (st stream) gen(r *rand.Rand, n int) []step {
	now := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).UnixMilli()
	out := make([]step, n)
	for i := range out {
		now += r.Int64N(st.maxGap.Milliseconds() + 1)
		if r.IntN(10) == 0 { // a burst: several events at the same instant
			now -= now % 1000
		}
		ts := now
		if r.Float64() < st.lateProb {
			ts -= r.Int64N(st.maxLate.Milliseconds() + 1)
		}
		amt := r.Int64N(10000)
		if r.Float64() < st.negProb {
			amt = -amt
		}
		var d uint64
		if r.IntN(8) != 0 {
			d = uint64(r.IntN(st.distinct)+1) * 0x9E3779B97F4A7C15 // spread, never 0
		}
		out[i] = step{key: fmt.Sprintf("k%d", r.IntN(st.keys)), ev: Event{TS: ts, Amount: amt, Distinct: d}}
	}
	return out
}

func randomDurations(r *rand.Rand) []time.Duration {
	all := []time.Duration{time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour, 90 * time.Minute,
		3 * time.Hour, 6 * time.Hour, 24 * time.Hour}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:1+r.IntN(4)]
}

// TestPropertyExact checks Observe, Peek and Expire against brute force when no key
// overflows: every answer must be exact, including out-of-order and equal-time events.
func TestPropertyExact(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1))
			cfg := Config{Durations: randomDurations(r), MaxEvents: 4000, TTL: time.Duration(1+r.IntN(12)) * time.Hour}
			st := stream{keys: 1 + r.IntN(6), maxGap: time.Duration(1+r.IntN(20)) * time.Minute,
				lateProb: 0.25, maxLate: 4 * time.Hour, negProb: 0.1, distinct: 1 + r.IntN(10)}
			s := NewStore(cfg)
			m := newModel()
			durs := s.Config().Durations
			var out []Stats
			for i, stp := range st.gen(r, 1500) {
				h := m.keys[stp.key]
				stats, prev, ok := s.Observe(stp.key, stp.ev, out)
				out = stats
				wantPrev, wantOK := prevOf(h, stp.ev.TS)
				if ok != wantOK || prev != wantPrev {
					t.Fatalf("step %d: prev = %v %v, want %v %v", i, prev, ok, wantPrev, wantOK)
				}
				for w, d := range durs {
					want := agg(append(window(h, stp.ev.TS, d.Milliseconds()), stp.ev))
					if stats[w] != want {
						t.Fatalf("step %d %s %+v: window %v = %+v, want %+v", i, stp.key, stp.ev, d, stats[w], want)
					}
				}
				m.add(stp.key, stp.ev)

				// A peek at a random time near the event, on a random key.
				key := fmt.Sprintf("k%d", r.IntN(st.keys+1))
				pt := stp.ev.TS + r.Int64N(6*3600_000) - 3*3600_000
				out = s.Peek(key, pt, out)
				for w, d := range durs {
					if want := agg(window(m.keys[key], pt, d.Milliseconds())); out[w] != want {
						t.Fatalf("step %d: peek %s at %d window %v = %+v, want %+v", i, key, pt, d, out[w], want)
					}
				}

				if r.IntN(50) == 0 {
					wm := stp.ev.TS - r.Int64N(3600_000)
					want := 0
					for k, h := range m.keys {
						if h[len(h)-1].TS <= wm-cfg.TTL.Milliseconds() {
							delete(m.keys, k)
							want++
						}
					}
					if got := s.Expire(wm); got != want || s.Len() != len(m.keys) {
						t.Fatalf("step %d: Expire = %d (len %d), want %d (len %d)", i, got, s.Len(), want, len(m.keys))
					}
				}
			}
		})
	}
}

// keyFacts are the past events of a key and what bounds needs to know of them.
type keyFacts struct {
	h      []Event
	newest int64
	surely int64 // events later than this are surely buffered exactly
}

func factsOf(h []Event, maxEvents int) keyFacts {
	k := keyFacts{h: h, surely: -1 << 62}
	if len(h) == 0 {
		return k
	}
	k.newest = h[len(h)-1].TS
	if len(h) >= maxEvents { // the exact buffer holds the maxEvents latest
		k.surely = h[len(h)-maxEvents].TS
	}
	return k
}

// bounds checks got against the documented error bound for the window (t-d, t] of a key
// whose past events are k (cur, if not nil, being observed at t) and longest duration maxDur. It returns how many events got missed and how
// many the bound allowed.
func bounds(t *testing.T, what func() string, k keyFacts, cur *Event, tq, d, maxDur int64, got Stats) (missed, allowed int64) {
	t.Helper()
	h, surely := k.h, k.surely
	lower := tq - d
	late := len(h) > 0 && tq < k.newest
	var horizon int64 = -1 << 62
	if late {
		horizon = k.newest - maxDur
	}
	var all, sure, exact []Event // the window; those that cannot be missed; those surely exact
	var mayMissPos, mayMissNeg int64
	for _, e := range window(h, tq, d) {
		all = append(all, e)
		if e.TS > surely {
			exact = append(exact, e)
		}
		edge := hourOf(e.TS) == hourOf(lower) || late && (hourOf(e.TS) == hourOf(tq) || e.TS <= horizon)
		if !edge {
			sure = append(sure, e)
			continue
		}
		allowed++
		if e.Amount > 0 {
			mayMissPos += e.Amount
		} else {
			mayMissNeg += e.Amount
		}
	}
	if cur != nil {
		all, sure, exact = append(all, *cur), append(sure, *cur), append(exact, *cur)
	}
	full, base := agg(all), agg(sure)
	fail := func(field string) {
		t.Helper()
		t.Fatalf("%s: %s out of bound: got %+v, full %+v, sure %+v, exact distinct %d, late=%v",
			what(), field, got, full, base, agg(exact).Distinct, late)
	}
	if got.Count < base.Count || got.Count > full.Count {
		fail("count")
	}
	if got.Sum < base.Sum+mayMissNeg || got.Sum > base.Sum+mayMissPos {
		fail("sum")
	}
	if got.Count > 0 && (got.Max > full.Max || base.Count > 0 && got.Max < base.Max) {
		fail("max")
	}
	if got.Distinct > full.Distinct || got.Distinct < agg(exact).Distinct {
		fail("distinct")
	}
	return full.Count - got.Count, allowed
}

// TestPropertyOverflow checks the documented error bound on dense random series that
// overflow MaxEvents, with late and equal-time events, and that a store restored from
// snapshots along the way answers exactly like one that never was.
func TestPropertyOverflow(t *testing.T) {
	var totalMissed, totalAllowed, worst, windows, missedWindows int64
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 2))
			cfg := Config{Durations: randomDurations(r), MaxEvents: 2 + r.IntN(40)}
			st := stream{keys: 1 + r.IntN(4), maxGap: time.Duration(1+r.IntN(6)) * time.Minute,
				lateProb: 0.15, maxLate: 3 * time.Hour, negProb: 0.05, distinct: 1 + r.IntN(20)}
			ref := NewStore(cfg)
			s := NewStore(cfg)
			m := newModel()
			c := ref.Config()
			maxDur := slices.Max(c.Durations).Milliseconds()
			var out, refOut []Stats
			for i, stp := range st.gen(r, 2000) {
				h := m.keys[stp.key]
				stats, prev, ok := s.Observe(stp.key, stp.ev, out)
				out = stats
				refStats, refPrev, refOK := ref.Observe(stp.key, stp.ev, refOut)
				refOut = refStats
				if !slices.Equal(stats, refStats) || prev != refPrev || ok != refOK {
					t.Fatalf("step %d: restored store answers %v %v %v, reference %v %v %v", i, stats, prev, ok, refStats, refPrev, refOK)
				}
				wantPrev, wantOK := prevOf(h, stp.ev.TS)
				late := len(h) > 0 && stp.ev.TS < h[len(h)-1].TS
				if ok && (prev != wantPrev) || !ok && wantOK && !late {
					t.Fatalf("step %d: prev = %v %v, want %v %v", i, prev, ok, wantPrev, wantOK)
				}
				facts := factsOf(h, c.MaxEvents)
				for w, d := range c.Durations {
					what := func() string { return fmt.Sprintf("step %d %s %+v window %v", i, stp.key, stp.ev, d) }
					missed, allowed := bounds(t, what, facts, &stp.ev, stp.ev.TS, d.Milliseconds(), maxDur, stats[w])
					windows++
					totalMissed += missed
					if missed > 0 {
						missedWindows++
					}
					worst = max(worst, missed)
					totalAllowed += allowed
				}
				m.add(stp.key, stp.ev)

				key := fmt.Sprintf("k%d", r.IntN(st.keys))
				pt := stp.ev.TS + r.Int64N(6*3600_000) - 4*3600_000
				out = s.Peek(key, pt, out)
				refOut = ref.Peek(key, pt, refOut)
				if !slices.Equal(out, refOut) {
					t.Fatalf("step %d: restored store peeks %v, reference %v", i, out, refOut)
				}
				facts = factsOf(m.keys[key], c.MaxEvents)
				for w, d := range c.Durations {
					what := func() string { return fmt.Sprintf("step %d peek %s at %d window %v", i, key, pt, d) }
					bounds(t, what, facts, nil, pt, d.Milliseconds(), maxDur, out[w])
				}

				if i%200 == 0 {
					checkInvariants(t, s)
					checkInvariants(t, ref)
				}
				if r.IntN(100) == 0 {
					data, err := s.MarshalBinary()
					if err != nil {
						t.Fatal(err)
					}
					s = NewStore(cfg)
					if err := s.UnmarshalBinary(data); err != nil {
						t.Fatalf("step %d: restore: %v", i, err)
					}
				}
			}
			a, _ := s.MarshalBinary()
			b, _ := ref.MarshalBinary()
			if string(a) != string(b) {
				t.Fatal("restored store's snapshot differs from the reference's")
			}
		})
	}
	t.Logf("overflow: %d windows, %d with missed events, %d missed of %d allowed, at most %d in one window",
		windows, missedWindows, totalMissed, totalAllowed, worst)
}

// TestBucketErrorDense measures the error on a dense in-order series (one event a minute,
// 10 per key buffered exactly): every window is exact or short by the events of the one
// bucket straddling its far end, never more.
func TestBucketErrorDense(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	cfg := Config{Durations: []time.Duration{time.Hour, 3 * time.Hour, 24 * time.Hour}, MaxEvents: 10}
	s := NewStore(cfg)
	var h []Event
	ts := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).UnixMilli()
	var out []Stats
	var worst, worstBound int64
	for i := range 3 * 24 * 60 {
		ts += 30_000 + r.Int64N(60_000)
		ev := Event{TS: ts, Amount: 1 + r.Int64N(1000), Distinct: uint64(1 + r.IntN(30))}
		out, _, _ = s.Observe("k", ev, out)
		for w, d := range cfg.Durations {
			full := agg(append(window(h, ts, d.Milliseconds()), ev))
			// The bucket straddling the far end holds at most the events of its hour.
			lower := ts - d.Milliseconds()
			var edge int64
			for _, e := range window(h, ts, d.Milliseconds()) {
				if hourOf(e.TS) == hourOf(lower) {
					edge++
				}
			}
			missed := full.Count - out[w].Count
			if missed < 0 || missed > edge {
				t.Fatalf("event %d window %v: count %d, true %d, allowed shortfall %d", i, d, out[w].Count, full.Count, edge)
			}
			if missed > worst {
				worst, worstBound = missed, edge
			}
		}
		h = append(h, ev)
	}
	if worst == 0 {
		t.Fatal("dense series never exercised the bucket error")
	}
	t.Logf("dense: worst shortfall %d events (bound in that window %d)", worst, worstBound)
}
