package window

import (
	"runtime"
	"testing"
)

// fillStore builds a store of nkeys cards with perKey events each, spread over 30 days as a
// payment stream would leave them.
func fillStore(nkeys, perKey int) *Store {
	st := newBenchStream(nkeys, int64(30*24*3600_000)/int64(nkeys*perKey))
	s := NewStore(Config{})
	out := make([]Stats, 4)
	for range nkeys * perKey {
		k, ev := st.next()
		s.Observe(k, ev, out)
	}
	return s
}

// BenchmarkBytesPerKey reports the heap a store holds per active card, for cards with 10
// buffered events (about five payments a day over two days, or a quiet month).
func BenchmarkBytesPerKey(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := fillStore(100_000, 10)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(s.Len()), "bytes/key")
		runtime.KeepAlive(s)
	}
}

// BenchmarkRestore1M measures restoring a snapshot of one million cards with 10 events
// each, what a restart after a crash does per partition state.
func BenchmarkRestore1M(b *testing.B) {
	s := fillStore(1_000_000, 10)
	snap, err := s.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(snap))/float64(s.Len()), "snapshot-bytes/key")
	b.SetBytes(int64(len(snap)))
	for b.Loop() {
		r := NewStore(Config{})
		if err := r.UnmarshalBinary(snap); err != nil {
			b.Fatal(err)
		}
		if r.Len() != s.Len() {
			b.Fatalf("restored %d keys of %d", r.Len(), s.Len())
		}
	}
}

func TestEvictOldest(t *testing.T) {
	s := NewStore(Config{})
	out := make([]Stats, 4)
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		s.Observe(k, Event{TS: int64(1000 * (i + 1)), Amount: 1}, out)
	}
	s.Observe("a", Event{TS: 9000, Amount: 1}, out) // a is now the most recent
	if n := s.EvictOldest(3); n != 2 || s.Len() != 3 {
		t.Fatalf("evicted %d, %d left", n, s.Len())
	}
	for k, want := range map[string]int64{"a": 2, "d": 1, "e": 1, "b": 0, "c": 0} {
		if got := s.Peek(k, 10_000, out)[0].Count; got != want {
			t.Errorf("%s: count %d, want %d", k, got, want)
		}
	}
	if n := s.EvictOldest(10); n != 0 {
		t.Errorf("evicted %d under the bound", n)
	}
}
