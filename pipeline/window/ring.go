package window

// ring is a growable circular buffer holding a sequence in logical order 0..n-1.
// It grows by doubling up to a limit given by the caller and never shrinks, so a
// series that has reached its steady size appends, pops and inserts without allocating.
type ring[T any] struct {
	buf  []T
	head int // physical index of logical element 0
	n    int // number of elements
}

// phys returns the physical index of logical index i (0 <= i < len(buf)).
func (r *ring[T]) phys(i int) int {
	j := r.head + i
	if j >= len(r.buf) {
		j -= len(r.buf)
	}
	return j
}

// at returns a pointer to logical element i.
func (r *ring[T]) at(i int) *T { return &r.buf[r.phys(i)] }

// reserve makes room for one more element, growing the buffer by doubling but not past
// limit (limit > r.n is required).
func (r *ring[T]) reserve(limit int) {
	if r.n < len(r.buf) {
		return
	}
	c := 2 * len(r.buf)
	if c < 4 {
		c = 4
	}
	if c > limit {
		c = limit
	}
	nb := make([]T, c)
	k := copy(nb, r.buf[r.head:])
	copy(nb[k:], r.buf[:r.head])
	r.buf = nb
	r.head = 0
}

// popFront removes and returns the first element.
func (r *ring[T]) popFront() T {
	v := r.buf[r.head]
	var zero T
	r.buf[r.head] = zero
	r.head++
	if r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
	return v
}

// insert puts v at logical index i (0 <= i <= n), shifting the shorter side.
// The caller must have reserved room.
func (r *ring[T]) insert(i int, v T) {
	switch {
	case i == r.n: // append: the common case
		r.buf[r.phys(r.n)] = v
	case i < r.n-i: // shift the front part one place to the left
		r.head--
		if r.head < 0 {
			r.head = len(r.buf) - 1
		}
		for k := 0; k < i; k++ {
			*r.at(k) = *r.at(k + 1)
		}
		*r.at(i) = v
	default: // shift the back part one place to the right
		for k := r.n; k > i; k-- {
			*r.at(k) = *r.at(k - 1)
		}
		*r.at(i) = v
	}
	r.n++
}

// reset empties the ring, keeping its buffer.
func (r *ring[T]) reset() {
	clear(r.buf)
	r.head, r.n = 0, 0
}
