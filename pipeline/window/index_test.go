package window

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIndexAgainstMap runs random inserts, deletes and lookups on an Index and a map. Half
// the keys get a forced hash collision, so that Find must tell them apart by their keys.
func TestIndexAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var x Index
	want := map[string]int32{}
	keys := map[int32]string{} // value → key, the caller's state
	hash := func(k string) uint64 {
		if k[len(k)-1]%2 == 0 {
			return 42 // a collision for every such key
		}
		return x.Hash(k)
	}
	next := int32(0)
	for step := range 100_000 {
		k := fmt.Sprint("k", r.IntN(500))
		h := hash(k)
		v, ok := x.Find(h, func(v int32) bool { return keys[v] == k })
		wv, wok := want[k]
		if ok != wok || v != wv {
			t.Fatalf("step %d: Find(%s) = %d, %v, want %d, %v", step, k, v, ok, wv, wok)
		}
		switch {
		case !ok && r.IntN(2) == 0:
			x.Insert(h, next)
			want[k], keys[next] = next, k
			next++
		case ok && r.IntN(3) == 0:
			if !x.Delete(h, v) {
				t.Fatalf("step %d: Delete(%s) found nothing", step, k)
			}
			delete(want, k)
			delete(keys, v)
		}
		if x.Len() != len(want) {
			t.Fatalf("step %d: Len %d, want %d", step, x.Len(), len(want))
		}
	}
}

func TestInlineKey(t *testing.T) {
	long := "a-card-id-longer-than-the-inline-bytes"
	for _, c := range []struct {
		set, try string
		want     bool
	}{
		{"card-1", "card-1", true},
		{"card-1", "card-12", false},
		{"card-12", "card-1", false},
		{"", "", true},
		{"", "x", false},
		{long, long, true},
		{long, long[:22], false},
		{long[:22], long[:22], true},
	} {
		var k InlineKey
		k.Set(c.set)
		if got := k.Is(c.try, c.set); got != c.want {
			t.Errorf("key %q: Is(%q) = %v, want %v", c.set, c.try, got, c.want)
		}
	}
}
