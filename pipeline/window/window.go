package window

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// BucketWidth is the span of event time folded into one coarse bucket once a key has more
// than Config.MaxEvents events. Buckets are aligned to whole hours of Unix time.
const BucketWidth = time.Hour

// DefaultMaxEvents is the per-key cap of exactly buffered events used when
// Config.MaxEvents is zero.
const DefaultMaxEvents = 256

// Limits on a Config, checked by Config.Validate and by UnmarshalBinary.
const (
	// MaxDurations is the largest number of windows a Store computes.
	MaxDurations = 64
	// MaxMaxEvents is the largest allowed Config.MaxEvents.
	MaxMaxEvents = 1 << 20
)

const (
	bucketMs = int64(BucketWidth / time.Millisecond)
	// maxDurationMs is the longest duration (and TTL) in milliseconds that still fits a
	// time.Duration.
	maxDurationMs = int64(math.MaxInt64 / int64(time.Millisecond))
	// maxFree is how many evicted series a Store keeps for reuse.
	maxFree = 256
	// maxFreeBuckets is the largest bucket buffer kept with a reused series.
	maxFreeBuckets = 64
)

// ErrInvalidConfig is wrapped by the errors of Config.Validate.
var ErrInvalidConfig = errors.New("window: invalid config")

// Event is one observation of a key: event time in Unix milliseconds, an amount in integer
// minor units (never float), and a 64-bit hash of a categorical value (e.g. merchant id)
// for distinct counts (0 = none).
type Event struct {
	TS       int64
	Amount   int64
	Distinct uint64
}

// Stats are the aggregates of the events in the window (ts-d, ts], the current event
// included. Max is 0 when Count is 0. Distinct counts the different non-zero
// Event.Distinct values (see the package documentation for its bound once a key overflows).
type Stats struct {
	Count    int64
	Sum      int64
	Max      int64
	Distinct int64
}

// Mean returns Sum/Count, or 0 when the window is empty.
func (s Stats) Mean() float64 {
	if s.Count == 0 {
		return 0
	}
	return float64(s.Sum) / float64(s.Count)
}

// Config sets the windows and the memory bounds of a Store. The zero value means the
// defaults.
type Config struct {
	// Durations are the windows to compute, in the order Observe and Peek report them.
	// Each must be a positive whole number of milliseconds. Default: 1h, 24h, 7d, 30d.
	Durations []time.Duration
	// MaxEvents caps the events buffered exactly per key; older ones are folded into
	// hourly buckets. Default DefaultMaxEvents.
	MaxEvents int
	// TTL evicts a key whose newest event is at least this much older than the watermark
	// passed to Expire (event time). Default: the longest of Durations.
	TTL time.Duration
}

// DefaultDurations returns the default windows: 1h, 24h, 7d and 30d.
func DefaultDurations() []time.Duration {
	return []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}
}

// withDefaults returns c with zero fields set to their defaults and its own copy of
// Durations.
func (c Config) withDefaults() Config {
	if len(c.Durations) == 0 {
		c.Durations = DefaultDurations()
	} else {
		c.Durations = slices.Clone(c.Durations)
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.TTL == 0 {
		c.TTL = slices.Max(c.Durations)
	}
	return c
}

// Validate reports whether c, with its zero fields defaulted, is usable by NewStore.
// Errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	if len(c.Durations) > MaxDurations {
		return fmt.Errorf("%w: %d durations, at most %d", ErrInvalidConfig, len(c.Durations), MaxDurations)
	}
	for _, d := range c.Durations {
		if d <= 0 || d%time.Millisecond != 0 {
			return fmt.Errorf("%w: duration %v is not a positive whole number of milliseconds", ErrInvalidConfig, d)
		}
	}
	if c.MaxEvents < 1 || c.MaxEvents > MaxMaxEvents {
		return fmt.Errorf("%w: max events %d not in [1, %d]", ErrInvalidConfig, c.MaxEvents, MaxMaxEvents)
	}
	if c.TTL <= 0 || c.TTL%time.Millisecond != 0 {
		return fmt.Errorf("%w: ttl %v is not a positive whole number of milliseconds", ErrInvalidConfig, c.TTL)
	}
	return nil
}

// equal reports whether two defaulted configs are the same.
func (c Config) equal(o Config) bool {
	return slices.Equal(c.Durations, o.Durations) && c.MaxEvents == o.MaxEvents && c.TTL == o.TTL
}

// String formats c as "durations=1h0m0s,24h0m0s max_events=256 ttl=24h0m0s".
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("durations=")
	for i, d := range c.Durations {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(d.String())
	}
	fmt.Fprintf(&b, " max_events=%d ttl=%v", c.MaxEvents, c.TTL)
	return b.String()
}

// series is the state of one key: its newest events exactly, in time order (equal
// timestamps in arrival order), and older ones in hourly buckets, also in time order.
// Every bucketed event is no later than every exact event.
type series struct {
	ev  ring[Event]
	bk  buckets
	key string    // the key, as in Store.keys
	ik  InlineKey // its bytes, to confirm a lookup in Store.index without reading key
	pos int32     // the series' place in Store.list
	// later has one bit per slot of ev.buf while the buffer has at most laterBits slots:
	// set when a later exact event of the key has the same non-zero Distinct value. A
	// window that ends at or after the newest event holds exactly the distinct values of
	// its events whose bit is clear, so it is counted in the walk that sums it, without a
	// hash set. The bits are exact for every event inside the longest window ending at the
	// newest event; older ones no in-order window reaches again.
	later [laterBits / 64]uint64
}

// laterBits is the largest buffer whose events have Distinct bits (the default MaxEvents);
// keys with larger buffers count distinct values with the store's hash set.
const laterBits = 256

// hasLater reports the Distinct bit of the event in slot j.
func (sr *series) hasLater(j int) bool { return sr.later[j>>6]>>(j&63)&1 != 0 }

// setLater sets the Distinct bit of the event in slot j.
func (sr *series) setLater(j int) { sr.later[j>>6] |= 1 << (j & 63) }

// clearLater clears the Distinct bit of the event in slot j, if it has one.
func (sr *series) clearLater(j int) {
	if j < laterBits {
		sr.later[j>>6] &^= 1 << (j & 63)
	}
}

// bitsOK reports whether sr's buffer is small enough to have Distinct bits.
func (sr *series) bitsOK() bool { return len(sr.ev.buf) <= laterBits }

// markLater recomputes every Distinct bit of sr, after its buffer was reallocated or an event
// was inserted before later ones; set is scratch space.
func (sr *series) markLater(set *distinctSet) {
	sr.later = [laterBits / 64]uint64{}
	if !sr.bitsOK() {
		return
	}
	set.begin(sr.ev.n)
	for i := sr.ev.n - 1; i >= 0; i-- {
		j := sr.ev.phys(i)
		if d := sr.ev.buf[j].Distinct; d != 0 && !set.add(d) {
			sr.setLater(j)
		}
	}
}

// newest returns the latest event time of a non-empty series.
func (sr *series) newest() int64 { return sr.ev.at(sr.ev.n - 1).TS }

// upper returns the number of exact events with TS <= t (the index of the first one after t).
func (sr *series) upper(t int64) int {
	n := sr.ev.n
	if n == 0 || sr.ev.at(n-1).TS <= t {
		return n
	}
	lo, hi := 0, n-1 // the answer is in [lo, hi]
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if sr.ev.at(m).TS <= t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Store holds keyed sliding windows over event time. One goroutine owns a Store: it is not
// safe for concurrent use (not even Peek, which uses the Store's scratch space).
// Create it with NewStore; a zero Store is usable too and takes the default Config on
// first use, or the snapshot's Config in UnmarshalBinary.
type Store struct {
	cfg        Config
	durMs      []int64 // durations in ms, ascending
	order      []int   // order[k] is the index in cfg.Durations of durMs[k]
	maxDurMs   int64
	ttlMs      int64
	maxEvents  int
	maxBuckets int

	keys    map[string]*series // for iteration and snapshots; lookups use index
	index   Index              // key → position in list
	list    []*series          // the series by position; nil where free
	freePos []int32            // free positions of list
	// newestAt[pos] is the newest event time of list[pos], so that Expire and EvictOldest
	// scan one array instead of visiting every series.
	newestAt  []int64
	free      []*series
	minNewest int64 // no key's newest event is earlier than this
	set       distinctSet
	// hashDistinct counts every window's distinct values with the hash set, never with the
	// Distinct bits (for tests that compare the two).
	hashDistinct bool
}

// NewStore returns an empty Store for cfg, its zero fields defaulted. It panics if
// cfg.Validate fails: validate configuration from users first.
func NewStore(cfg Config) *Store {
	s := &Store{}
	s.init(cfg)
	return s
}

// init sets the configuration and empties the store.
func (s *Store) init(cfg Config) {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	*s = Store{cfg: cfg, maxEvents: cfg.MaxEvents, ttlMs: cfg.TTL.Milliseconds()}
	s.order = make([]int, len(cfg.Durations))
	for i := range s.order {
		s.order[i] = i
	}
	slices.SortStableFunc(s.order, func(a, b int) int {
		return cmp.Compare(cfg.Durations[a], cfg.Durations[b])
	})
	s.durMs = make([]int64, len(s.order))
	for k, i := range s.order {
		s.durMs[k] = cfg.Durations[i].Milliseconds()
	}
	s.maxDurMs = s.durMs[len(s.durMs)-1]
	s.maxBuckets = int((s.maxDurMs+bucketMs-1)/bucketMs) + 1
	s.keys = make(map[string]*series)
	s.minNewest = math.MaxInt64
}

// Config returns the store's configuration, with defaults filled in.
func (s *Store) Config() Config {
	s.ensure()
	c := s.cfg
	c.Durations = slices.Clone(c.Durations)
	return c
}

// ensure gives a zero Store the default configuration.
func (s *Store) ensure() {
	if s.keys == nil {
		s.init(Config{})
	}
}

// Len returns the number of keys held.
func (s *Store) Len() int { return len(s.keys) }

// sized returns out resliced (or reallocated, if too small) to one Stats per duration.
func (s *Store) sized(out []Stats) []Stats {
	n := len(s.durMs)
	if cap(out) < n {
		return make([]Stats, n)
	}
	return out[:n]
}

// Observe adds ev to key's series and fills out[i] with the stats of window Durations[i]
// ending at ev.TS, this event included, returning out[:len(Durations)] (out is reallocated
// only if too small). It also returns the previous event of this key: the latest one with
// TS <= ev.TS that arrived before this one, hadPrev=false if none is buffered exactly.
//
// An event earlier than the key's newest is inserted in time order; its stats are those of
// the window ending at its own TS. Observe allocates only when a key is new or its buffers
// grow toward their caps.
func (s *Store) Observe(key string, ev Event, out []Stats) (stats []Stats, prev Event, hadPrev bool) {
	s.ensure()
	out = s.sized(out)
	h := s.index.Hash(key)
	sr := s.find(h, key)
	if sr == nil {
		sr = s.newSeries()
		// A copy: the caller's key may share memory with a large input buffer.
		s.add(h, strings.Clone(key), sr)
		s.minNewest = min(s.minNewest, ev.TS)
	}
	hi := sr.upper(ev.TS)
	if hi > 0 {
		prev, hadPrev = *sr.ev.at(hi - 1), true
	}
	if hi == sr.ev.n && sr.bitsOK() && !s.hashDistinct {
		// In order: the windows hold the newest events, whose Distinct bits are exact.
		if same := s.computeNewest(sr, ev.TS, &ev, out); same >= 0 {
			sr.setLater(same) // the previous event of ev's value now has a later one
		}
	} else {
		s.compute(sr, ev.TS, hi, &ev, out)
	}
	s.insert(sr, ev, hi)
	s.newestAt[sr.pos] = sr.newest()
	return out, prev, hadPrev
}

// Peek fills out with the stats of each window ending at ts, (ts-d, ts], from the events
// held for key, without adding one; unknown keys have empty windows. It never allocates
// when out is large enough.
func (s *Store) Peek(key string, ts int64, out []Stats) []Stats {
	s.ensure()
	out = s.sized(out)
	sr := s.find(s.index.Hash(key), key)
	if sr == nil {
		clear(out)
		return out
	}
	if hi := sr.upper(ts); hi < sr.ev.n || !sr.bitsOK() || s.hashDistinct {
		s.compute(sr, ts, hi, nil, out)
	} else {
		s.computeNewest(sr, ts, nil, out)
	}
	return out
}

// Expire evicts every key whose newest event is at or before watermark-TTL (idle for at
// least TTL of event time) and returns how many it evicted. It costs O(1) when no key is
// due, and one pass over all keys otherwise: call it when the watermark has moved on by a
// useful step (say a minute of event time), not for every event.
func (s *Store) Expire(watermark int64) int {
	if len(s.keys) == 0 {
		return 0
	}
	cutoff := subSat(watermark, s.ttlMs)
	if cutoff < s.minNewest {
		return 0
	}
	return s.evictUpTo(cutoff)
}

// find returns the series of key, whose hash is h, or nil.
func (s *Store) find(h uint64, key string) *series {
	i, ok := s.index.Find(h, func(i int32) bool { sr := s.list[i]; return sr.ik.Is(key, sr.key) })
	if !ok {
		return nil
	}
	return s.list[i]
}

// add files sr under key, whose hash is h.
func (s *Store) add(h uint64, key string, sr *series) {
	sr.key = key
	sr.ik.Set(key)
	if n := len(s.freePos); n > 0 {
		sr.pos = s.freePos[n-1]
		s.freePos = s.freePos[:n-1]
		s.list[sr.pos] = sr
	} else {
		sr.pos = int32(len(s.list))
		s.list = append(s.list, sr)
		s.newestAt = append(s.newestAt, 0)
	}
	if sr.ev.n > 0 {
		s.newestAt[sr.pos] = sr.newest()
	}
	s.index.Insert(h, sr.pos)
	s.keys[key] = sr
}

// remove forgets the series sr of key.
func (s *Store) remove(key string, sr *series) {
	delete(s.keys, key)
	s.index.Delete(s.index.Hash(key), sr.pos)
	s.list[sr.pos] = nil
	s.freePos = append(s.freePos, sr.pos)
}

// newSeries returns an empty series, reusing an evicted one if it can.
func (s *Store) newSeries() *series {
	if n := len(s.free); n > 0 {
		sr := s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1]
		return sr
	}
	return &series{}
}

// release keeps an evicted series for reuse.
func (s *Store) release(sr *series) {
	if len(s.free) >= maxFree {
		return
	}
	sr.ev.reset()
	sr.bk.reset(maxFreeBuckets)
	sr.key, sr.ik, sr.pos = "", InlineKey{}, 0
	sr.later = [laterBits / 64]uint64{}
	s.free = append(s.free, sr)
}

// subSat returns a-b for b >= 0, saturating at math.MinInt64.
func subSat(a, b int64) int64 {
	if d := a - b; d <= a {
		return d
	}
	return math.MinInt64
}

// compute fills out with the windows ending at t over sr's events, hi being sr.upper(t).
// cur, if not nil, is an event at t counted in every window before those held.
//
// It walks backward once from the newest exact event at or before t, emitting each window
// (shortest first) when the walk passes its start, and adds the buckets that lie entirely
// in that window from their running totals.
func (s *Store) compute(sr *series, t int64, hi int, cur *Event, out []Stats) {
	var cnt, sum, mx, dist int64
	set := &s.set
	set.begin(hi + 1)
	if cur != nil {
		cnt, sum, mx = 1, cur.Amount, cur.Amount
		if cur.Distinct != 0 && set.add(cur.Distinct) {
			dist++
		}
	}
	buf := sr.ev.buf
	i := hi - 1 // logical index of the next exact event to take
	j := 0      // its physical index
	if i >= 0 {
		j = sr.ev.phys(i)
	}
	bhi := sr.bk.upper(t) // buckets [0, bhi) end at or before t
	lim := bhi            // the next window's buckets start before lim
	for k, d := range s.durMs {
		lower := subSat(t, d)
		for ; i >= 0; i-- {
			e := &buf[j]
			if e.TS <= lower {
				break
			}
			if cnt == 0 || e.Amount > mx {
				mx = e.Amount
			}
			cnt++
			sum += e.Amount
			if e.Distinct != 0 && set.add(e.Distinct) {
				dist++
			}
			if j--; j < 0 {
				j = len(buf) - 1
			}
		}
		st := Stats{Count: cnt, Sum: sum, Max: mx, Distinct: dist}
		lim = sr.bk.addTo(&st, lower, lim, bhi)
		out[s.order[k]] = st
	}
}

// computeNewest is compute for a window ending at or after sr's newest event (t >=
// newest, so every exact event is at or before t), counting distinct values with the Distinct
// bits instead of a hash set. cur, if not nil, is an event at t counted in every window
// before those held; computeNewest returns the slot of the newest held event with cur's
// non-zero Distinct value inside the longest window, whose bit cur will set, or -1.
func (s *Store) computeNewest(sr *series, t int64, cur *Event, out []Stats) (same int) {
	var cnt, sum, mx, dist int64
	var want uint64 // cur's value, until its previous occurrence is found
	same = -1
	if cur != nil {
		cnt, sum, mx = 1, cur.Amount, cur.Amount
		if cur.Distinct != 0 {
			dist, want = 1, cur.Distinct
		}
	}
	buf := sr.ev.buf
	i := sr.ev.n - 1 // logical index of the next exact event to take
	j := 0           // its physical index
	if i >= 0 {
		j = sr.ev.phys(i)
	}
	bhi := sr.bk.upper(t) // every bucket, as they end before the oldest exact event
	lim := bhi
	for k, d := range s.durMs {
		lower := subSat(t, d)
		for ; i >= 0; i-- {
			e := &buf[j]
			if e.TS <= lower {
				break
			}
			if cnt == 0 || e.Amount > mx {
				mx = e.Amount
			}
			cnt++
			sum += e.Amount
			if e.Distinct != 0 {
				if e.Distinct == want { // cur is a later event of this value
					same, want = j, 0
				} else if !sr.hasLater(j) {
					dist++
				}
			}
			if j--; j < 0 {
				j = len(buf) - 1
			}
		}
		st := Stats{Count: cnt, Sum: sum, Max: mx, Distinct: dist}
		lim = sr.bk.addTo(&st, lower, lim, bhi)
		out[s.order[k]] = st
	}
	return same
}

// insert adds ev to sr at logical position p (sr.upper(ev.TS)), folding the oldest exact
// event into a bucket when the buffer is full, and drops buckets that left every window.
// It keeps the Distinct bits: the new event's is clear when it is the newest, and they are
// all recomputed when it is not or when the buffer grows.
func (s *Store) insert(sr *series, ev Event, p int) {
	newest := ev.TS
	if sr.ev.n > 0 {
		newest = max(newest, sr.newest())
	}
	appended := p == sr.ev.n
	if sr.ev.n < s.maxEvents {
		size := len(sr.ev.buf)
		sr.ev.reserve(s.maxEvents)
		sr.ev.insert(p, ev)
		if appended && size == len(sr.ev.buf) {
			sr.clearLater(sr.ev.phys(p))
		} else {
			sr.markLater(&s.set)
		}
	} else if p == 0 {
		// Earlier than every buffered event: it goes straight to its bucket.
		s.fold(sr, ev, newest)
	} else {
		s.fold(sr, sr.ev.popFront(), newest)
		sr.ev.insert(p-1, ev)
		if appended {
			sr.clearLater(sr.ev.phys(p - 1))
		} else {
			sr.markLater(&s.set)
		}
	}
	if sr.bk.n() > 0 {
		sr.bk.dropUpTo(subSat(newest, s.maxDurMs))
	}
}

// fold moves e out of the exact buffer into its hourly bucket, or drops it if it is at or
// before newest minus the longest duration, where no window ending at or after newest
// can hold it.
func (s *Store) fold(sr *series, e Event, newest int64) {
	horizon := subSat(newest, s.maxDurMs)
	if e.TS <= horizon {
		return
	}
	sr.bk.fold(e, horizon, s.maxBuckets)
}

// distinctSet is an open-addressing hash set of uint64 that is emptied in O(1) by bumping a
// generation number, so counting distinct values over a window allocates nothing once the
// table has grown to twice the largest window's event count.
type distinctSet struct {
	slots []slot
	gen   uint32
	shift uint8
}

type slot struct {
	h   uint64
	gen uint32
}

// begin empties the set and makes room for n values at a load of at most one half.
func (d *distinctSet) begin(n int) {
	if 2*n > len(d.slots) {
		size := 16
		for size < 2*n {
			size *= 2
		}
		d.slots = make([]slot, size)
		d.shift = uint8(64 - bits.Len(uint(size-1)))
		d.gen = 0
	}
	d.gen++
	if d.gen == 0 { // wrapped: stale slots could look current
		clear(d.slots)
		d.gen = 1
	}
}

// add inserts h and reports whether it was new.
func (d *distinctSet) add(h uint64) bool {
	mask := uint64(len(d.slots) - 1)
	i := (h * 0x9E3779B97F4A7C15) >> d.shift
	for {
		sl := &d.slots[i]
		if sl.gen != d.gen {
			sl.h, sl.gen = h, d.gen
			return true
		}
		if sl.h == h {
			return false
		}
		i = (i + 1) & mask
	}
}

// EvictOldest evicts the keys whose newest events are the oldest until at most keep keys
// remain, and returns how many it evicted. Keys with equal newest times at the cut are all
// evicted, so fewer than keep may remain. It sorts the keys' newest times, so callers run it
// rarely: when a bound is exceeded, evicting a margin below it.
func (s *Store) EvictOldest(keep int) int {
	excess := len(s.keys) - max(keep, 0)
	if excess <= 0 {
		return 0
	}
	newest := make([]int64, 0, len(s.keys))
	for pos, sr := range s.list {
		if sr != nil {
			newest = append(newest, s.newestAt[pos])
		}
	}
	slices.Sort(newest)
	cutoff := newest[excess-1]
	return s.evictUpTo(cutoff)
}

// evictUpTo evicts every key whose newest event is at or before cutoff and returns how
// many it evicted.
func (s *Store) evictUpTo(cutoff int64) int {
	evicted := 0
	lowest := int64(math.MaxInt64)
	for pos, sr := range s.list {
		if sr == nil {
			continue
		}
		nw := s.newestAt[pos]
		if nw <= cutoff {
			s.remove(sr.key, sr)
			s.release(sr)
			evicted++
			continue
		}
		lowest = min(lowest, nw)
	}
	s.minNewest = lowest
	return evicted
}
