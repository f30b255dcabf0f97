package window

import (
	"hash/maphash"
	"math/bits"
)

// Index maps string keys (cards, terminals) to int32 values, the positions of their state in
// the caller's own arrays. It is an open-addressing table in one flat array of 16-byte
// slots, with Robin Hood linear probing and backward-shift deletion, holding each key's hash
// and value but not the key: the caller confirms a candidate against the state it already
// has to read (see Find), so a lookup costs one cache line of the table and none of the
// key's bytes, where a Go map reads a table header, a control word, a slot and the key. It
// holds no pointer, so the garbage collector never scans it. The zero Index is empty and
// ready; it is not safe for concurrent use.
type Index struct {
	slots  []indexSlot
	n      int
	shift  uint8 // 64 - log2(len(slots))
	seed   maphash.Seed
	seeded bool
}

type indexSlot struct {
	h    uint64
	v    int32
	used bool
}

const minIndexSlots = 64

// Hash returns the hash of key that Find, Insert and Delete take. It is fixed for the life
// of the Index and differs between Indexes.
func (x *Index) Hash(key string) uint64 {
	if !x.seeded {
		x.seed, x.seeded = maphash.MakeSeed(), true
	}
	return maphash.String(x.seed, key)
}

// Len returns the number of keys held.
func (x *Index) Len() int { return x.n }

func (x *Index) home(h uint64) int { return int((h * 0x9E3779B97F4A7C15) >> x.shift) }

func (x *Index) dist(i int) int { return (i - x.home(x.slots[i].h)) & (len(x.slots) - 1) }

// Find returns the value of the key whose hash is h: among the values held with hash h
// (almost always one), the one for which is reports true. is must compare the key with the
// one stored with the value's state.
func (x *Index) Find(h uint64, is func(v int32) bool) (int32, bool) {
	if x.n == 0 {
		return 0, false
	}
	mask := len(x.slots) - 1
	i := x.home(h)
	for d := 0; ; d++ {
		s := &x.slots[i]
		if !s.used || x.dist(i) < d {
			return 0, false
		}
		if s.h == h && is(s.v) {
			return s.v, true
		}
		i = (i + 1) & mask
	}
}

// Insert adds value v for a key of hash h that is not held.
func (x *Index) Insert(h uint64, v int32) {
	if 4*(x.n+1) > 3*len(x.slots) {
		x.grow()
	}
	x.add(indexSlot{h: h, v: v, used: true})
}

func (x *Index) add(s indexSlot) {
	mask := len(x.slots) - 1
	i := x.home(s.h)
	for d := 0; ; d++ {
		if !x.slots[i].used {
			x.slots[i] = s
			x.n++
			return
		}
		if od := x.dist(i); od < d {
			s, x.slots[i] = x.slots[i], s
			d = od
		}
		i = (i + 1) & mask
	}
}

func (x *Index) grow() {
	size := max(2*len(x.slots), minIndexSlots)
	old := x.slots
	x.slots = make([]indexSlot, size)
	x.shift = uint8(64 - bits.Len(uint(size-1)))
	x.n = 0
	for i := range old {
		if old[i].used {
			x.add(old[i])
		}
	}
}

// Delete removes value v, held for a key of hash h, and reports whether it was held.
func (x *Index) Delete(h uint64, v int32) bool {
	if x.n == 0 {
		return false
	}
	mask := len(x.slots) - 1
	i := x.home(h)
	for d := 0; ; d++ {
		s := &x.slots[i]
		if !s.used || x.dist(i) < d {
			return false
		}
		if s.h == h && s.v == v {
			break
		}
		i = (i + 1) & mask
	}
	for {
		j := (i + 1) & mask
		if !x.slots[j].used || x.dist(j) == 0 {
			break
		}
		x.slots[i] = x.slots[j]
		i = j
	}
	x.slots[i] = indexSlot{}
	x.n--
	return true
}

// Reset empties the index, giving its memory back.
func (x *Index) Reset() {
	seed, seeded := x.seed, x.seeded
	*x = Index{seed: seed, seeded: seeded}
}

// InlineKey keeps a short key's bytes inside the state that holds it, so that confirming a
// lookup (Index.Find) reads no memory beyond that state. Longer keys are compared through
// the string the caller keeps.
type InlineKey struct {
	b [inlineKeyLen]byte
	n uint8 // length, or inlineKeyLen+1 when the key is longer
}

const inlineKeyLen = 22

// Set remembers key.
func (k *InlineKey) Set(key string) {
	if len(key) > inlineKeyLen {
		k.n = inlineKeyLen + 1
		return
	}
	k.n = uint8(copy(k.b[:], key))
}

// Is reports whether key is the key remembered, full being that key as a string (read only
// for a key longer than the inline bytes).
func (k *InlineKey) Is(key, full string) bool {
	if k.n > inlineKeyLen {
		return key == full
	}
	return int(k.n) == len(key) && string(k.b[:k.n]) == key
}
