package window

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchStream is a steady stream over a fixed set of keys: each event goes to a random key,
// event time advances by a fixed step, one event in 20 is up to 10 minutes late, and
// amounts and merchants are random (merchants from 40 per key's pool).
type benchStream struct {
	keys   []string
	stepMs int64
	r      *rand.Rand
	now    int64
	// precomputed draws, so the loop measures the store, not the generator
	keyIdx []uint32
	amount []int64
	merch  []uint64
	lateMs []int64
	i      int
}

func newBenchStream(nkeys int, stepMs int64) *benchStream {
	st := &benchStream{stepMs: stepMs, r: rand.New(rand.NewPCG(1, 2)), now: 1767225600000} // 2026-01-01
	for k := range nkeys {
		st.keys = append(st.keys, fmt.Sprintf("card-%08d", k))
	}
	const n = 1 << 16
	for range n {
		st.keyIdx = append(st.keyIdx, uint32(st.r.IntN(nkeys)))
		st.amount = append(st.amount, 100+st.r.Int64N(50_000))
		st.merch = append(st.merch, uint64(1+st.r.IntN(40))*0x9E3779B97F4A7C15)
		late := int64(0)
		if st.r.IntN(20) == 0 {
			late = st.r.Int64N(600_000)
		}
		st.lateMs = append(st.lateMs, late)
	}
	return st
}

func (st *benchStream) next() (string, Event) {
	j := st.i & (len(st.keyIdx) - 1)
	st.i++
	st.now += st.stepMs
	k := st.keyIdx[j]
	// mix the key into the merchant so keys have different pools
	return st.keys[k], Event{TS: st.now - st.lateMs[j], Amount: st.amount[j], Distinct: st.merch[j] ^ uint64(k)<<1}
}

// benchObserve warms a store of 10k keys with the default four windows (1h, 24h, 7d, 30d)
// over 31 days of the stream, then measures Observe on the steady stream.
func benchObserve(b *testing.B, perKeyPerDay int) {
	const nkeys = 10_000
	step := int64(24*3600_000) / int64(nkeys*perKeyPerDay)
	st := newBenchStream(nkeys, step)
	s := NewStore(Config{})
	out := make([]Stats, 4)
	for range 31 * nkeys * perKeyPerDay {
		k, ev := st.next()
		out, _, _ = s.Observe(k, ev, out)
	}
	b.ReportAllocs()
	for b.Loop() {
		k, ev := st.next()
		out, _, _ = s.Observe(k, ev, out)
	}
	var evs, bks int
	for _, sr := range s.keys {
		evs += sr.ev.n
		bks += sr.bk.n()
	}
	b.ReportMetric(float64(evs)/float64(len(s.keys)), "events/key")
	b.ReportMetric(float64(bks)/float64(len(s.keys)), "buckets/key")
}

// BenchmarkObserve measures Observe on 10k keys with the default four windows.
// typical: 5 events per key per day, every window exact (about 150 events per key).
// busy: 24 events per key per day, the 256-event buffers full and about 460 hourly
// buckets per key: the most work per call the defaults allow for this rate.
func BenchmarkObserve(b *testing.B) {
	b.Run("typical-5perday", func(b *testing.B) { benchObserve(b, 5) })
	b.Run("busy-24perday", func(b *testing.B) { benchObserve(b, 24) })
}

// BenchmarkPeek measures Peek on the typical stream.
func BenchmarkPeek(b *testing.B) {
	const nkeys = 10_000
	st := newBenchStream(nkeys, int64(24*3600_000)/(nkeys*5))
	s := NewStore(Config{})
	out := make([]Stats, 4)
	for range 31 * nkeys * 5 {
		k, ev := st.next()
		out, _, _ = s.Observe(k, ev, out)
	}
	b.ReportAllocs()
	for b.Loop() {
		k, ev := st.next()
		out = s.Peek(k, ev.TS, out)
	}
}

// BenchmarkSnapshot measures MarshalBinary and UnmarshalBinary of 10k typical keys.
func BenchmarkSnapshot(b *testing.B) {
	const nkeys = 10_000
	st := newBenchStream(nkeys, int64(24*3600_000)/(nkeys*5))
	s := NewStore(Config{})
	for range 31 * nkeys * 5 {
		k, ev := st.next()
		s.Observe(k, ev, nil)
	}
	data, _ := s.MarshalBinary()
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 0, len(data))
		for b.Loop() {
			buf, _ = s.AppendBinary(buf[:0])
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var r Store
			if err := r.UnmarshalBinary(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
