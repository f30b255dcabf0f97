package window

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestDistinctBitsMatchHashSet runs random streams (in order with bursts of equal times,
// late events, peeks before and after the newest event, snapshots, expiry and eviction)
// through a store that counts distinct values with its Distinct bits and one that always
// uses the hash set: every answer must be the same.
func TestDistinctBitsMatchHashSet(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 9))
			maxEvents := []int{1, 3, 17, 64, 255, 256, 300}[r.IntN(7)]
			cfg := Config{Durations: randomDurations(r), MaxEvents: maxEvents, TTL: 6 * time.Hour}
			lateProb := []float64{0, 0.01, 0.2}[r.IntN(3)]
			st := stream{keys: 1 + r.IntN(5), maxGap: time.Duration(1+r.IntN(10)) * time.Minute,
				lateProb: lateProb, maxLate: 2 * time.Hour, distinct: 1 + r.IntN(40)}
			fast, slow := NewStore(cfg), NewStore(cfg)
			slow.hashDistinct = true
			var a, b []Stats
			for i, stp := range st.gen(r, 3000) {
				sa, pa, oka := fast.Observe(stp.key, stp.ev, a)
				sb, pb, okb := slow.Observe(stp.key, stp.ev, b)
				a, b = sa, sb
				if !slices.Equal(sa, sb) || pa != pb || oka != okb {
					t.Fatalf("step %d %s %+v: bits give %v %v %v, hash set %v %v %v", i, stp.key, stp.ev, sa, pa, oka, sb, pb, okb)
				}
				key := fmt.Sprintf("k%d", r.IntN(st.keys))
				pt := stp.ev.TS + r.Int64N(3*3600_000) - 3600_000
				a, b = fast.Peek(key, pt, a), slow.Peek(key, pt, b)
				if !slices.Equal(a, b) {
					t.Fatalf("step %d: peek %s at %d: bits give %v, hash set %v", i, key, pt, a, b)
				}
				switch r.IntN(300) {
				case 0:
					data, err := fast.MarshalBinary()
					if err != nil {
						t.Fatal(err)
					}
					fast = NewStore(cfg)
					if err := fast.UnmarshalBinary(data); err != nil {
						t.Fatalf("step %d: restore: %v", i, err)
					}
				case 1:
					if fast.Expire(stp.ev.TS) != slow.Expire(stp.ev.TS) {
						t.Fatalf("step %d: the stores expired different keys", i)
					}
				case 2:
					if fast.EvictOldest(1) != slow.EvictOldest(1) {
						t.Fatalf("step %d: the stores evicted different keys", i)
					}
				}
			}
		})
	}
}
