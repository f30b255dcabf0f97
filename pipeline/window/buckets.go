package window

// bucket holds the aggregates of events folded out of a key's exact buffer, all from one
// hour of event time; first and last are the earliest and latest of their timestamps.
// cumCount and cumSum are the totals of the buckets before it, from an arbitrary base.
type bucket struct {
	first, last      int64
	count, sum, max  int64
	cumCount, cumSum int64
}

// add folds e into b (not its running totals).
func (b *bucket) add(e Event) {
	b.first = min(b.first, e.TS)
	b.last = max(b.last, e.TS)
	b.count++
	b.sum += e.Amount
	b.max = max(b.max, e.Amount)
}

// hourOf returns the start of the bucket holding time ts.
func hourOf(ts int64) int64 {
	h := ts / bucketMs
	if ts%bucketMs < 0 {
		h--
	}
	return h * bucketMs
}

// buckets are a key's hourly buckets in time order (their hours strictly increasing). So
// that a window's share of them costs O(log n), not a scan, they keep running totals of
// count and sum, and a stack of suffix maxima: the sequence numbers, ascending, of the
// buckets whose max is above that of every later bucket. The max of buckets [a, n) is the
// max of the first stacked bucket at or after a.
//
// A bucket's sequence number is seq0 plus its index; dropping the oldest bucket
// increments seq0. Appending and folding into the newest bucket (the usual cases) update
// the totals and the stack in amortized O(1); changes to older buckets (late events)
// rebuild them in O(n).
type buckets struct {
	r                ring[bucket]
	seq0             int64
	totCount, totSum int64 // running totals after the newest bucket
	maxes            ring[int64]
}

func (bs *buckets) n() int { return bs.r.n }

func (bs *buckets) at(i int) *bucket { return bs.r.at(i) }

func (bs *buckets) bySeq(seq int64) *bucket { return bs.r.at(int(seq - bs.seq0)) }

// reset empties bs, keeping its buffers unless they are larger than keep.
func (bs *buckets) reset(keep int) {
	if len(bs.r.buf) > keep {
		*bs = buckets{}
		return
	}
	bs.r.reset()
	bs.maxes.reset()
	bs.seq0, bs.totCount, bs.totSum = 0, 0, 0
}

// upper returns the number of buckets whose last event is at or before t.
func (bs *buckets) upper(t int64) int {
	n := bs.r.n
	if n == 0 || bs.r.at(n-1).last <= t {
		return n
	}
	lo, hi := 0, n-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bs.r.at(m).last <= t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// start returns the first index in [0, hi) of a bucket whose first event is after lower,
// or hi if none is.
func (bs *buckets) start(lower int64, hi int) int {
	lo := 0
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bs.r.at(m).first <= lower {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// aggregate returns the count, sum and max of buckets [a, b), a < b <= n.
func (bs *buckets) aggregate(a, b int) (count, sum, mx int64) {
	first := bs.r.at(a)
	if b == bs.r.n { // a suffix: the usual case
		count, sum = bs.totCount-first.cumCount, bs.totSum-first.cumSum
		// the first stacked sequence number at or after a's
		seq := bs.seq0 + int64(a)
		lo, hi := 0, bs.maxes.n-1 // the newest bucket is always stacked
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if *bs.maxes.at(m) < seq {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return count, sum, bs.bySeq(*bs.maxes.at(lo)).max
	}
	end := bs.r.at(b)
	count, sum = end.cumCount-first.cumCount, end.cumSum-first.cumSum
	mx = first.max
	for i := a + 1; i < b; i++ {
		mx = max(mx, bs.r.at(i).max)
	}
	return count, sum, mx
}

// push stacks bucket i, the newest one considered, unstacking the ones whose max it reaches.
func (bs *buckets) push(i, limit int) {
	m := bs.r.at(i).max
	for bs.maxes.n > 0 && bs.bySeq(*bs.maxes.at(bs.maxes.n - 1)).max <= m {
		bs.maxes.n--
	}
	bs.maxes.reserve(limit)
	bs.maxes.insert(bs.maxes.n, bs.seq0+int64(i))
}

// dropFront removes the oldest bucket.
func (bs *buckets) dropFront() {
	bs.r.popFront()
	if *bs.maxes.at(0) == bs.seq0 {
		bs.maxes.popFront()
	}
	bs.seq0++
}

// dropUpTo removes the buckets whose events are all at or before horizon.
func (bs *buckets) dropUpTo(horizon int64) {
	for bs.r.n > 0 && bs.r.at(0).last <= horizon {
		bs.dropFront()
	}
}

// rebuild recomputes the running totals and the stack of maxima from the buckets.
func (bs *buckets) rebuild(limit int) {
	bs.seq0, bs.totCount, bs.totSum = 0, 0, 0
	bs.maxes.reset()
	for i := range bs.r.n {
		b := bs.r.at(i)
		b.cumCount, b.cumSum = bs.totCount, bs.totSum
		bs.totCount += b.count
		bs.totSum += b.sum
		bs.push(i, limit)
	}
}

// fold adds e, later than horizon, to the bucket of its hour, creating it if needed; there
// are at most limit buckets.
func (bs *buckets) fold(e Event, horizon int64, limit int) {
	bs.dropUpTo(horizon)
	h := hourOf(e.TS)
	if n := bs.r.n; n > 0 {
		last := bs.r.at(n - 1)
		lh := hourOf(last.first)
		if lh == h { // into the newest bucket: the usual case
			raised := e.Amount > last.max
			last.add(e)
			bs.totCount++
			bs.totSum += e.Amount
			if raised {
				bs.maxes.n-- // the newest bucket, always on top
				bs.push(n-1, limit)
			}
			return
		}
		if lh > h { // a late event: find its place among older buckets
			pos := 0
			for hi := n - 1; pos < hi; {
				m := int(uint(pos+hi) >> 1)
				if hourOf(bs.r.at(m).first) < h {
					pos = m + 1
				} else {
					hi = m
				}
			}
			if b := bs.r.at(pos); hourOf(b.first) == h {
				b.add(e)
			} else {
				if n >= limit { // cannot happen once old buckets are dropped; keep the bound anyway
					if pos == 0 {
						return
					}
					bs.r.popFront()
					pos--
				}
				bs.r.reserve(limit)
				bs.r.insert(pos, bucket{first: e.TS, last: e.TS, count: 1, sum: e.Amount, max: e.Amount})
			}
			bs.rebuild(limit)
			return
		}
		if n >= limit { // likewise impossible
			bs.dropFront()
		}
	}
	bs.r.reserve(limit)
	bs.r.insert(bs.r.n, bucket{first: e.TS, last: e.TS, count: 1, sum: e.Amount, max: e.Amount,
		cumCount: bs.totCount, cumSum: bs.totSum})
	bs.totCount++
	bs.totSum += e.Amount
	bs.push(bs.r.n-1, limit)
}

// addTo adds to st the buckets that lie entirely in the window after lower: [a, bhi),
// where bhi is the end of the buckets before the window's end and lim the start of the
// previous, shorter window's buckets. Windows are nested, so it returns a, the next
// window's lim.
func (bs *buckets) addTo(st *Stats, lower int64, lim, bhi int) int {
	if bhi == 0 {
		return lim
	}
	a := bs.start(lower, lim)
	if a < bhi {
		bc, bsum, bmax := bs.aggregate(a, bhi)
		if st.Count == 0 || bmax > st.Max {
			st.Max = bmax
		}
		st.Count += bc
		st.Sum += bsum
	}
	return a
}
