package terminal

import "math/bits"

// idTable maps the hash of a transaction id to where its transaction is held: an
// open-addressing table in one flat array, with Robin Hood linear probing (an entry
// displaces the ones nearer their home slot, so every probe run is short and a lookup of
// an absent id stops early) and backward-shift deletion (no tombstones). Every transaction
// within the horizon has a slot, so the table is large and mostly out of cache: a lookup
// touches one or two adjacent cache lines, where a Go map of this size reads a directory, a
// table header, a control word and a slot. It holds no pointer, so the garbage collector
// never scans it.
type idTable struct {
	slots []idSlot
	n     int   // slots in use
	shift uint8 // 64 - log2(len(slots))
}

// idSlot is one entry of an idTable.
type idSlot struct {
	h     uint64 // the transaction id's hash
	ts    int64
	t     int32
	fraud bool
	used  bool
}

func (s *idSlot) ref() ref { return ref{ts: s.ts, t: s.t, fraud: s.fraud} }

func newSlot(h uint64, r ref) idSlot {
	return idSlot{h: h, ts: r.ts, t: r.t, fraud: r.fraud, used: true}
}

// minIDSlots is the smallest table.
const minIDSlots = 1024

// len returns the number of ids held.
func (t *idTable) len() int { return t.n }

// home returns the slot where h's probe starts.
func (t *idTable) home(h uint64) int {
	return int((h * 0x9E3779B97F4A7C15) >> t.shift)
}

// dist returns how far slot i is from the home of the entry it holds.
func (t *idTable) dist(i int) int {
	return (i - t.home(t.slots[i].h)) & (len(t.slots) - 1)
}

// find returns the slot holding h and true, or false.
func (t *idTable) find(h uint64) (int, bool) {
	if t.n == 0 {
		return 0, false
	}
	mask := len(t.slots) - 1
	i := t.home(h)
	for d := 0; ; d++ {
		s := &t.slots[i]
		if !s.used || t.dist(i) < d {
			return i, false // h would have displaced this entry: it is not held
		}
		if s.h == h {
			return i, true
		}
		i = (i + 1) & mask
	}
}

// get returns the ref of h.
func (t *idTable) get(h uint64) (ref, bool) {
	i, ok := t.find(h)
	if !ok {
		return ref{}, false
	}
	return t.slots[i].ref(), true
}

// reserve makes room for one more id, keeping the load at three quarters or less.
func (t *idTable) reserve() {
	if 4*(t.n+1) <= 3*len(t.slots) {
		return
	}
	size := max(2*len(t.slots), minIDSlots)
	old := t.slots
	t.slots = make([]idSlot, size)
	t.shift = uint8(64 - bits.Len(uint(size-1)))
	t.n = 0
	for i := range old {
		if s := &old[i]; s.used {
			t.add(*s)
		}
	}
}

// add inserts s, whose id is not held; there must be room (see reserve).
func (t *idTable) add(s idSlot) {
	mask := len(t.slots) - 1
	i := t.home(s.h)
	for d := 0; ; d++ {
		if !t.slots[i].used {
			t.slots[i] = s
			t.n++
			return
		}
		if od := t.dist(i); od < d {
			s, t.slots[i] = t.slots[i], s // take the place of the entry nearer its home
			d = od
		}
		i = (i + 1) & mask
	}
}

// put sets the ref of h, adding h if it is new.
func (t *idTable) put(h uint64, r ref) {
	if i, ok := t.find(h); ok {
		t.slots[i] = newSlot(h, r)
		return
	}
	t.reserve()
	t.add(newSlot(h, r))
}

// delete removes h if it is held. The entries after it in its probe run move back one
// slot, so no tombstone is left behind.
func (t *idTable) delete(h uint64) {
	i, ok := t.find(h)
	if !ok {
		return
	}
	mask := len(t.slots) - 1
	for {
		j := (i + 1) & mask
		if !t.slots[j].used || t.dist(j) == 0 {
			break
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = idSlot{}
	t.n--
}

// reset empties the table, giving its memory back.
func (t *idTable) reset() { *t = idTable{} }
