package pipeline

import (
	"math"
	"time"
)

// watermarks derives the engine watermark from the event times of the source partitions
// (a file is one; a Kinesis stream has a shard each, a JetStream stream a subject each).
// Each partition's watermark is the newest event time it delivered minus the allowed
// out-of-orderness; the engine's is the minimum over the partitions that are not idle, so a
// slow partition holds it back and a silent one (nothing for IdleTimeout of wall-clock
// time) does not. It never goes back: a partition that returns from idleness behind it has
// its late events flagged. A partition counts from its first event on, so a source should
// deliver from every partition it has early. Only the router goroutine uses it.
type watermarks struct {
	ooo   int64 // ms
	idle  time.Duration
	now   func() time.Time
	parts map[int]*sourcePart
	wm    int64
}

type sourcePart struct {
	newest int64
	seen   time.Time
}

func newWatermarks(ooo, idle time.Duration, now func() time.Time, restored int64) *watermarks {
	if now == nil {
		now = time.Now
	}
	return &watermarks{ooo: ooo.Milliseconds(), idle: idle, now: now, parts: map[int]*sourcePart{}, wm: restored}
}

// current is the engine watermark, math.MinInt64 before any event.
func (w *watermarks) current() int64 { return w.wm }

// observe records an event of a source partition and advances the watermark.
func (w *watermarks) observe(part int, ts int64) {
	now := w.now()
	sp := w.parts[part]
	if sp == nil {
		sp = &sourcePart{newest: math.MinInt64}
		w.parts[part] = sp
	}
	sp.seen = now
	if ts <= sp.newest {
		return
	}
	sp.newest = ts
	if len(w.parts) == 1 {
		w.wm = max(w.wm, ts-w.ooo)
		return
	}
	w.advance(now)
}

// advance recomputes the watermark from the partitions that are not idle.
func (w *watermarks) advance(now time.Time) {
	low := int64(math.MaxInt64)
	for _, sp := range w.parts {
		if w.idle > 0 && now.Sub(sp.seen) > w.idle {
			continue
		}
		low = min(low, sp.newest-w.ooo)
	}
	if low != math.MaxInt64 {
		w.wm = max(w.wm, low)
	}
}

// resume records a source partition's newest event time as a checkpoint had it, as if it
// had just delivered it, and recomputes the watermark from the partitions so resumed: an
// engine that takes partitions over from other instances starts from their watermarks,
// not from its own.
func (w *watermarks) resume(newest map[int]int64) {
	if len(newest) == 0 {
		return
	}
	now := w.now()
	for part, ts := range newest {
		w.parts[part] = &sourcePart{newest: ts, seen: now}
	}
	w.wm = math.MinInt64
	w.advance(now)
}

// newest is each source partition's newest event time, for a checkpoint.
func (w *watermarks) newest() map[int]int64 {
	out := make(map[int]int64, len(w.parts))
	for part, sp := range w.parts {
		if sp.newest != math.MinInt64 {
			out[part] = sp.newest
		}
	}
	return out
}
