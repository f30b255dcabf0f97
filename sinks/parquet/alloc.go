package parquet

import (
	"math/bits"
	"sync"
)

// Arrow's column writers take every page buffer, encoder buffer and level buffer from the
// writer's allocator, grow them by reallocation (a new buffer and a copy each time) and
// release them when the page is written. With Go's allocator that is garbage at the rate of
// the data itself, and most of the sink's garbage collection. bufferPool keeps released
// buffers, by power-of-two size class, for the next page: once the first row group has
// been written, pages reuse the buffers of the pages before them, and a buffer that grows
// within its class grows in place.
type bufferPool struct {
	mu   sync.Mutex
	free [maxClass + 1][][]byte
	kept int // bytes held in free
	max  int // most bytes free may hold
}

const (
	minClass = 10 // 1 KiB: smaller buffers come from make, and go back to the garbage collector
	maxClass = 26 // 64 MiB: larger ones too
)

// newBufferPool returns a pool that keeps at most max bytes of released buffers.
func newBufferPool(max int) *bufferPool { return &bufferPool{max: max} }

func class(n int) int {
	if n <= 1<<minClass {
		return minClass
	}
	return bits.Len(uint(n - 1))
}

// Allocate returns a zeroed buffer of size bytes, as arrow's allocators do.
func (p *bufferPool) Allocate(size int) []byte {
	c := class(size)
	if c > maxClass || size < 1<<minClass/2 {
		return make([]byte, size)
	}
	p.mu.Lock()
	if k := len(p.free[c]); k > 0 {
		b := p.free[c][k-1]
		p.free[c][k-1] = nil
		p.free[c] = p.free[c][:k-1]
		p.kept -= cap(b)
		p.mu.Unlock()
		b = b[:size]
		clear(b)
		return b
	}
	p.mu.Unlock()
	return make([]byte, size, 1<<c)
}

// Reallocate returns b resized to size bytes, in place when its capacity allows. Bytes past
// b's old length are not zeroed when b grows in place: arrow's buffers write before they read
// what they reserve (the Go allocator copies into a new buffer whose tail is zero, but no
// column writer relies on that).
func (p *bufferPool) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		return b[:size]
	}
	nb := p.Allocate(size)
	copy(nb, b)
	p.Free(b)
	return nb
}

// Free keeps b for a later Allocate of its class, if the pool has room.
func (p *bufferPool) Free(b []byte) {
	c := cap(b)
	if c < 1<<minClass || c > 1<<maxClass || c&(c-1) != 0 {
		return
	}
	p.mu.Lock()
	if p.kept+c <= p.max {
		k := bits.Len(uint(c)) - 1
		p.free[k] = append(p.free[k], b[:0])
		p.kept += c
	}
	p.mu.Unlock()
}

// poolSlack is what the pool keeps beyond one row group: the column writers' page,
// encoder and level buffers.
const poolSlack = 16 << 20
