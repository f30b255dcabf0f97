package window

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// filledStore returns a store with several keys, some overflowed into buckets, some with
// late and equal-time events.
func filledStore(t testing.TB, seed uint64) *Store { return filledStoreN(seed, 8, 3000) }

// filledStoreN is filledStore with n events over the given number of keys.
func filledStoreN(seed uint64, keys, n int) *Store {
	r := rand.New(rand.NewPCG(seed, 3))
	s := NewStore(Config{Durations: []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour}, MaxEvents: 16, TTL: 48 * time.Hour})
	st := stream{keys: keys, maxGap: 2 * time.Minute, lateProb: 0.1, maxLate: 2 * time.Hour, negProb: 0.05, distinct: 12}
	for _, stp := range st.gen(r, n) {
		s.Observe(stp.key, stp.ev, nil)
	}
	return s
}

func mustMarshal(t testing.TB, s *Store) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withCRC returns body followed by its CRC32-C, as a snapshot ends.
func withCRC(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(slices.Clone(body), crc32.Checksum(body, castagnoli))
}

func TestSnapshotRoundTrip(t *testing.T) {
	for seed := range uint64(5) {
		s := filledStore(t, seed)
		data := mustMarshal(t, s)
		var restored Store // a zero Store takes the snapshot's config
		if err := restored.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		if !restored.Config().equal(s.Config()) || restored.Len() != s.Len() {
			t.Fatalf("restored config %v len %d, want %v len %d", restored.Config(), restored.Len(), s.Config(), s.Len())
		}
		if again := mustMarshal(t, &restored); !bytes.Equal(again, data) {
			t.Fatal("snapshot of the restored store differs")
		}
		// The same future gives the same answers.
		r := rand.New(rand.NewPCG(seed, 4))
		st := stream{keys: 10, maxGap: 3 * time.Minute, lateProb: 0.2, maxLate: 3 * time.Hour, negProb: 0.05, distinct: 12}
		var a, b []Stats
		for i, stp := range st.gen(r, 2000) {
			stp.ev.TS += 2 * 24 * 3600_000 // after the filled history (which starts at the same time)
			var pa, pb Event
			var oka, okb bool
			a, pa, oka = s.Observe(stp.key, stp.ev, a)
			b, pb, okb = restored.Observe(stp.key, stp.ev, b)
			if !slices.Equal(a, b) || pa != pb || oka != okb {
				t.Fatalf("seed %d step %d: restored %v %v %v, original %v %v %v", seed, i, b, pb, okb, a, pa, oka)
			}
			if i%100 == 0 {
				wm := stp.ev.TS - 30*3600_000
				if x, y := s.Expire(wm), restored.Expire(wm); x != y {
					t.Fatalf("Expire: restored %d, original %d", y, x)
				}
			}
		}
		if !bytes.Equal(mustMarshal(t, s), mustMarshal(t, &restored)) {
			t.Fatal("states diverged")
		}
	}
}

func TestSnapshotDeterministic(t *testing.T) {
	a, b := filledStore(t, 9), filledStore(t, 9)
	if !bytes.Equal(mustMarshal(t, a), mustMarshal(t, b)) {
		t.Fatal("equal states gave different snapshots")
	}
	out, err := a.AppendBinary([]byte("prefix"))
	if err != nil || !bytes.Equal(out[6:], mustMarshal(t, a)) || string(out[:6]) != "prefix" {
		t.Fatal("AppendBinary does not append the snapshot")
	}
}

func TestSnapshotConfigMismatch(t *testing.T) {
	s := filledStore(t, 1)
	data := mustMarshal(t, s)
	other := NewStore(Config{Durations: []time.Duration{time.Hour}, MaxEvents: 16, TTL: 48 * time.Hour})
	other.Observe("x", Event{TS: 1, Amount: 1}, nil)
	before := mustMarshal(t, other)
	err := other.UnmarshalBinary(data)
	if !errors.Is(err, ErrConfigMismatch) {
		t.Fatalf("err = %v, want ErrConfigMismatch", err)
	}
	if !bytes.Equal(before, mustMarshal(t, other)) {
		t.Fatal("a failed UnmarshalBinary changed the store")
	}
	// A store with the same config accepts it and drops its own state.
	same := NewStore(s.Config())
	same.Observe("stale", Event{TS: 1}, nil)
	if err := same.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if same.Len() != s.Len() || same.keys["stale"] != nil {
		t.Fatal("restore kept state that was not in the snapshot")
	}
}

func TestSnapshotTruncatedAndFlipped(t *testing.T) {
	s := filledStore(t, 2)
	data := mustMarshal(t, s)
	var target Store
	for n := range len(data) {
		if err := target.UnmarshalBinary(data[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: err = %v", n, len(data), err)
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	for range 2000 {
		c := slices.Clone(data)
		i := r.IntN(len(c))
		c[i] ^= 1 << r.IntN(8)
		if err := target.UnmarshalBinary(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit flipped at byte %d: err = %v", i, err)
		}
	}
	if target.Len() != 0 || target.keys != nil {
		t.Fatal("failed restores changed the store")
	}
	if err := target.UnmarshalBinary(append(slices.Clone(data), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("extra byte: err = %v", err)
	}
}

// snapBuilder writes snapshot bodies by hand, for inputs the encoder never makes.
type snapBuilder struct{ b []byte }

func newSnap(version byte) *snapBuilder {
	return &snapBuilder{b: append([]byte(snapshotMagic), version)}
}
func (w *snapBuilder) u(vs ...uint64) *snapBuilder {
	for _, v := range vs {
		w.b = binary.AppendUvarint(w.b, v)
	}
	return w
}
func (w *snapBuilder) i(vs ...int64) *snapBuilder {
	for _, v := range vs {
		w.b = binary.AppendVarint(w.b, v)
	}
	return w
}
func (w *snapBuilder) s(str string) *snapBuilder {
	w.u(uint64(len(str)))
	w.b = append(w.b, str...)
	return w
}

// cfg writes durations 1h and 3h, 4 max events, ttl 3h.
func (w *snapBuilder) cfg() *snapBuilder { return w.u(2, 3600_000, 3*3600_000, 4, 3*3600_000) }

// ev writes n events starting at ts, one a minute.
func (w *snapBuilder) ev(ts int64, n int) *snapBuilder {
	w.u(uint64(n))
	for k := range n {
		if k == 0 {
			w.i(ts)
		} else {
			w.u(60_000)
		}
		w.i(10).u(0)
	}
	return w
}
func (w *snapBuilder) done() []byte { return withCRC(w.b) }

func TestSnapshotInvalidContent(t *testing.T) {
	const h = 3600_000
	t0 := int64(1767607200000) // 2026-01-05T10:00:00Z, a whole hour
	good := newSnap(1).cfg().u(1).s("k").ev(t0, 4).u(1).i(t0-h).u(60_000, 2).i(20, 10).done()
	var probe Store
	if err := probe.UnmarshalBinary(good); err != nil {
		t.Fatalf("the hand-made good snapshot fails: %v", err)
	}
	cases := map[string][]byte{
		"empty":               nil,
		"short":               []byte("FPWS"),
		"bad magic":           withCRC(append([]byte("XXXX\x01"), newSnap(1).cfg().u(0).b[5:]...)),
		"version 0":           newSnap(0).cfg().u(0).done(),
		"version 2":           newSnap(2).cfg().u(0).done(),
		"no crc":              newSnap(1).cfg().u(0).b,
		"no durations":        newSnap(1).u(0, 4, h).u(0).done(),
		"too many durations":  newSnap(1).u(MaxDurations + 1).done(),
		"zero duration":       newSnap(1).u(1, 0, 4, h).u(0).done(),
		"huge duration":       newSnap(1).u(1, math.MaxUint64>>1, 4, h).u(0).done(),
		"zero max events":     newSnap(1).u(1, h, 0, h).u(0).done(),
		"huge max events":     newSnap(1).u(1, h, MaxMaxEvents+1, h).u(0).done(),
		"zero ttl":            newSnap(1).u(1, h, 4, 0).u(0).done(),
		"truncated config":    newSnap(1).u(2, h).done(),
		"huge key count":      newSnap(1).cfg().u(1 << 60).done(),
		"huge key length":     newSnap(1).cfg().u(1).u(1 << 40).done(),
		"keys out of order":   newSnap(1).cfg().u(2).s("b").ev(t0, 1).u(0).s("a").ev(t0, 1).u(0).done(),
		"duplicate keys":      newSnap(1).cfg().u(2).s("a").ev(t0, 1).u(0).s("a").ev(t0, 1).u(0).done(),
		"no events":           newSnap(1).cfg().u(1).s("k").ev(t0, 0).u(0).done(),
		"too many events":     newSnap(1).cfg().u(1).s("k").ev(t0, 5).u(0).done(),
		"event time overflow": newSnap(1).cfg().u(1).s("k").u(2).i(math.MaxInt64-5, 0).u(0, 10).i(0).u(0).u(0).done(),
		"too many buckets":    newSnap(1).cfg().u(1).s("k").ev(t0, 4).u(5).done(),
		"buckets, room left":  newSnap(1).cfg().u(1).s("k").ev(t0, 3).u(1).i(t0-h).u(0, 1).i(1, 1).done(),
		"empty bucket":        newSnap(1).cfg().u(1).s("k").ev(t0, 4).u(1).i(t0-h).u(0, 0).i(0, 0).done(),
		"bucket over 1h":      newSnap(1).cfg().u(1).s("k").ev(t0, 4).u(1).i(t0-h).u(h, 2).i(2, 1).done(),
		"bucket after exact":  newSnap(1).cfg().u(1).s("k").ev(t0, 4).u(1).i(t0+1).u(0, 1).i(1, 1).done(),
		"buckets same hour":   newSnap(1).cfg().u(1).s("k").ev(t0, 4).u(2).i(t0-h).u(0, 1).i(1, 1).u(60_000, 0, 1).i(1, 1).done(),
		"bucket span overflow": newSnap(1).cfg().u(1).s("k").ev(t0, 4).u(1).i(math.MaxInt64-1).
			u(10, 1).i(1, 1).done(),
		"trailing bytes":  append(slices.Clone(good[:len(good)-4]), 0),
		"truncated event": newSnap(1).cfg().u(1).s("k").u(2).i(t0, 10).u(0).done(),
	}
	cases["trailing bytes"] = withCRC(cases["trailing bytes"])
	for name, data := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			var s Store
			err := s.UnmarshalBinary(data)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if s.keys != nil {
				t.Fatal("a failed restore changed the store")
			}
		})
	}
}

// checkInvariants verifies what the store relies on: exact events sorted and within the
// cap, buckets sorted by hour, within one hour each and no later than any exact event.
func checkInvariants(t testing.TB, s *Store) {
	t.Helper()
	for k, sr := range s.keys {
		if sr.ev.n < 1 || sr.ev.n > s.maxEvents || sr.bk.n() > s.maxBuckets || sr.bk.n() > 0 && sr.ev.n != s.maxEvents {
			t.Fatalf("key %q: %d events, %d buckets", k, sr.ev.n, sr.bk.n())
		}
		for i := 1; i < sr.ev.n; i++ {
			if sr.ev.at(i).TS < sr.ev.at(i-1).TS {
				t.Fatalf("key %q: events out of order", k)
			}
		}
		for i := range sr.bk.n() {
			b := sr.bk.at(i)
			if b.count < 1 || b.first > b.last || hourOf(b.first) != hourOf(b.last) || b.last > sr.ev.at(0).TS {
				t.Fatalf("key %q: bad bucket %+v", k, *b)
			}
			if i > 0 && hourOf(sr.bk.at(i-1).first) >= hourOf(b.first) {
				t.Fatalf("key %q: buckets out of order", k)
			}
		}
		// the running totals and the stack of maxima answer every suffix and range
		bk := &sr.bk
		var sc, ss, sm int64 // suffix aggregates, all checked
		for a := bk.n() - 1; a >= 0; a-- {
			x := bk.at(a)
			if a == bk.n()-1 || x.max > sm {
				sm = x.max
			}
			sc, ss = sc+x.count, ss+x.sum
			if gc, gs, gm := bk.aggregate(a, bk.n()); gc != sc || gs != ss || gm != sm {
				t.Fatalf("key %q: buckets [%d,n) aggregate %d %d %d, want %d %d %d", k, a, gc, gs, gm, sc, ss, sm)
			}
		}
		for a := range min(bk.n(), 40) { // and ranges, for small ones
			var c, sum, mx int64
			for b := a; b < bk.n(); b++ {
				x := bk.at(b)
				c, sum = c+x.count, sum+x.sum
				if b == a || x.max > mx {
					mx = x.max
				}
				gc, gs, gm := bk.aggregate(a, b+1)
				if gc != c || gs != sum || gm != mx {
					t.Fatalf("key %q: buckets [%d,%d) aggregate %d %d %d, want %d %d %d", k, a, b+1, gc, gs, gm, c, sum, mx)
				}
			}
		}
		if sr.newest() < s.minNewest {
			t.Fatalf("key %q: newest %d below the store's lower bound %d", k, sr.newest(), s.minNewest)
		}
	}
}

// fuzzUnmarshal is the body of FuzzUnmarshal: no input may panic; what restores must
// re-marshal to a fixed point and keep working.
func fuzzUnmarshal(t *testing.T, data []byte) {
	var s Store
	if err := s.UnmarshalBinary(data); err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		return
	}
	checkInvariants(t, &s)
	again := mustMarshal(t, &s)
	var s2 Store
	if err := s2.UnmarshalBinary(again); err != nil {
		t.Fatalf("re-marshalled snapshot fails: %v", err)
	}
	if !bytes.Equal(mustMarshal(t, &s2), again) {
		t.Fatal("marshal is not a fixed point")
	}
	var out []Stats
	n := 0
	for k, sr := range s.keys {
		if n++; n > 8 {
			break
		}
		nw := sr.newest()
		out = s.Peek(k, nw, out)
		out, _, _ = s.Observe(k, Event{TS: nw + 1, Amount: 1, Distinct: 7}, out)
		out, _, _ = s.Observe(k, Event{TS: subSat(nw, 2*3600_000), Amount: 2}, out)
		out, _, _ = s.Observe(k, Event{TS: sr.ev.at(0).TS, Amount: 3}, out)
	}
	checkInvariants(t, &s)
	s.Expire(math.MaxInt64)
	for k, sr := range s.keys {
		if sr.newest() <= math.MaxInt64-s.ttlMs {
			t.Fatalf("Expire(MaxInt64) kept key %q", k)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	// More seeds are in testdata/fuzz/FuzzUnmarshal (see TestFuzzSeeds).
	f.Add(mustMarshal(f, NewStore(Config{})))
	f.Add(mustMarshal(f, filledStoreN(5, 3, 200)))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzUnmarshal(t, data)
		// The same bytes with a valid checksum, so that mutations reach the decoder.
		if len(data) >= 9 {
			fixed := slices.Clone(data[:len(data)-4])
			copy(fixed, snapshotMagic)
			fixed[len(snapshotMagic)] = snapshotVersion
			fuzzUnmarshal(t, withCRC(fixed))
		}
	})
}

// fuzzSeeds are the inputs written to testdata/fuzz/FuzzUnmarshal by -update; the valid
// ones must keep restoring, so a format change without a version bump is caught.
func fuzzSeeds(t *testing.T) map[string][]byte {
	small := NewStore(Config{Durations: []time.Duration{time.Hour, 3 * time.Hour}, MaxEvents: 4})
	for i := range int64(9) {
		small.Observe(fmt.Sprintf("c%d", i%2), Event{TS: 1767607200000 + i*20*60_000, Amount: 100 + i, Distinct: uint64(i % 3)}, nil)
	}
	valid := mustMarshal(t, small)
	flipped := slices.Clone(valid)
	flipped[len(flipped)/2] ^= 0x10
	return map[string][]byte{
		"valid-small":    valid,
		"valid-empty":    mustMarshal(t, NewStore(Config{})),
		"valid-overflow": mustMarshal(t, filledStoreN(11, 2, 150)),
		"truncated":      valid[:len(valid)/2],
		"bit-flipped":    flipped,
		"bad-version":    withCRC(append([]byte(snapshotMagic), 9)),
	}
}

func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzUnmarshal")
	seeds := fuzzSeeds(t)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range seeds {
			content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name := range seeds {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%v (run go test -update)", err)
		}
		body, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
		body, ok2 := strings.CutSuffix(body, ")\n")
		if !ok || !ok2 {
			t.Fatalf("%s: not a fuzz corpus file", name)
		}
		data, err := strconv.Unquote(body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var s Store
		err = s.UnmarshalBinary([]byte(data))
		if valid := strings.HasPrefix(name, "valid-"); valid != (err == nil) {
			t.Fatalf("seed %s: err = %v (if the format changed on purpose, bump the version and run -update)", name, err)
		}
	}
}
