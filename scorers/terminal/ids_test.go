package terminal

import (
	"math/rand/v2"
	"testing"
)

// TestIDTableAgainstMap runs random puts, deletes and lookups on an idTable and a map, with
// hashes drawn from a small range so that probe runs collide, wrap and shift back.
func TestIDTableAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tbl idTable
	want := map[uint64]ref{}
	for step := range 200_000 {
		h := r.Uint64N(3000)
		if r.IntN(4) == 0 {
			h *= 0x9E3779B97F4A7C15 // also hashes whose homes differ in the top bits
		}
		switch r.IntN(3) {
		case 0:
			v := ref{ts: r.Int64(), t: r.Int32(), fraud: r.IntN(2) == 0}
			tbl.put(h, v)
			want[h] = v
		case 1:
			tbl.delete(h)
			delete(want, h)
		default:
			got, ok := tbl.get(h)
			w, wok := want[h]
			if ok != wok || got != w {
				t.Fatalf("step %d: get(%d) = %+v, %v, want %+v, %v", step, h, got, ok, w, wok)
			}
		}
		if tbl.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, tbl.len(), len(want))
		}
	}
	for h, w := range want {
		if got, ok := tbl.get(h); !ok || got != w {
			t.Fatalf("get(%d) = %+v, %v, want %+v", h, got, ok, w)
		}
	}
}

// TestHintedBoundaries checks that the hinted searches give upper's answer whatever the
// hint: right, stale, past the end, far behind.
func TestHintedBoundaries(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20_000 {
		n := r.IntN(60)
		tm := &term{}
		ts := int64(0)
		for range n {
			ts += r.Int64N(5)
			tm.entries = append(tm.entries, entry{ts: ts})
			if r.IntN(3) == 0 {
				tm.frauds = append(tm.frauds, ts)
			}
		}
		for k := range hinted + 1 {
			for range 5 {
				if k < hinted {
					tm.hint[k] = int32(r.IntN(n + 10))
					tm.fhint[k] = int32(r.IntN(n + 10))
				}
				x := r.Int64N(ts+10) - 5
				if got, want := tm.upperEntries(k, x), upper(tm.entries, x); got != want {
					t.Fatalf("upperEntries(%d, %d) over %v = %d, want %d", k, x, tm.entries, got, want)
				}
				if got, want := tm.upperFrauds(k, x), upperTS(tm.frauds, x); got != want {
					t.Fatalf("upperFrauds(%d, %d) over %v = %d, want %d", k, x, tm.frauds, got, want)
				}
			}
		}
	}
}
