package enrich

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

type event struct {
	tx   pipeline.Transaction
	late bool
}

// stream generates a reproducible stream: cards moving between cities, devices, IPs,
// customers and merchants, a little out of order, a few events late.
func stream(seed uint64, n, cards int) []event {
	rng := rand.New(rand.NewPCG(seed, 7))
	cities := [][2]float64{paris, london, berlin, {40.7128, -74.0060}, {35.6762, 139.6503}, {-33.8688, 151.2093}}
	countries := []string{"FR", "GB", "DE", "US", "JP", "AU"}
	ts := int64(1_795_000_000_000)
	out := make([]event, n)
	for i := range out {
		ts += int64(rng.IntN(120_000))
		c := rng.IntN(cards)
		tx := pipeline.Transaction{
			ID: fmt.Sprint("tx-", i), TS: ts - int64(rng.IntN(3)*60_000), CardID: fmt.Sprint("c-", c),
			AccountID: "a", MerchantID: fmt.Sprint("m-", rng.IntN(4)), Amount: 100, CustomerID: fmt.Sprint("cu-", c%3),
		}
		if rng.IntN(4) > 0 {
			k := rng.IntN(len(cities))
			tx.Lat, tx.Lon, tx.HasGeo = cities[k][0]+rng.Float64()/10, cities[k][1]+rng.Float64()/10, true
			tx.Country = countries[k]
		}
		if rng.IntN(3) > 0 {
			tx.DeviceID = fmt.Sprint("d-", c, "-", rng.IntN(12))
		}
		if rng.IntN(2) == 0 {
			tx.IP = fmt.Sprintf("198.51.%d.%d", 99+rng.IntN(3), rng.IntN(256))
		}
		out[i] = event{tx: tx, late: rng.IntN(50) == 0}
	}
	return out
}

// features runs events through r and returns every feature vector, flattened.
func (r *rig) features(events []event) []float64 {
	var out []float64
	e := &pipeline.Eval{Features: make([]float64, r.schema.Len())}
	for i := range events {
		e.Tx, e.Late = &events[i].tx, events[i].late
		clear(e.Features)
		r.s.Score(e)
		out = append(out, e.Features...)
	}
	return out
}

func sameBits(t *testing.T, what string, a, b []float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d values and %d", what, len(a), len(b))
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			t.Fatalf("%s: value %d differs: %v and %v", what, i, a[i], b[i])
		}
	}
}

func TestDeterministic(t *testing.T) {
	cfg := refConfig(t)
	cfg.TTL, cfg.MaxCards = 5*time.Hour, 180
	events := stream(1, 20000, 250)
	a := newRig(t, cfg).features(events)
	b := newRig(t, cfg).features(events)
	sameBits(t, "two runs", a, b)
}

func TestSnapshotRoundTrip(t *testing.T) {
	cfg := refConfig(t)
	cfg.TTL, cfg.MaxCards = 5*time.Hour, 180 // cards expire, and evictions happen too
	events := stream(2, 20000, 250)
	half := len(events) / 2
	whole := newRig(t, cfg).features(events)

	first := newRig(t, cfg)
	first.features(events[:half])
	snap, err := first.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	st := first.f.Stats()
	if st.Cards == 0 || st.EvictedCards == 0 || st.ExpiredCards == 0 {
		t.Fatalf("the stream exercises too little: %+v", st)
	}

	second := newRig(t, cfg)
	second.score(txn(t, "stale", "2026-11-25T10:00:00Z", at(paris)), false) // replaced by Restore
	if err := second.s.Restore(snap); err != nil {
		t.Fatal(err)
	}
	again, _ := second.s.Snapshot()
	if !bytes.Equal(snap, again) {
		t.Fatal("a restored state snapshots differently")
	}
	if got := second.f.Stats().Cards; got != st.Cards {
		t.Errorf("%d cards restored, %d snapshotted", got, st.Cards)
	}
	rest := second.features(events[half:])
	sameBits(t, "after a restore", whole[half*second.schema.Len():], rest)

	// An empty state round-trips too.
	empty := newRig(t, cfg)
	b, _ := empty.s.Snapshot()
	if err := newRig(t, cfg).s.Restore(b); err != nil {
		t.Errorf("empty snapshot: %v", err)
	}
}

func TestRestoreRefusesCorruptSnapshots(t *testing.T) {
	r := newRig(t, Config{})
	r.features(stream(3, 500, 20))
	snap, _ := r.s.Snapshot()
	for n := range len(snap) {
		if err := newRig(t, Config{}).s.Restore(snap[:n]); err == nil {
			t.Fatalf("a snapshot cut at %d of %d bytes restored", n, len(snap))
		}
	}
	if err := r.s.Restore(append(bytes.Clone(snap), 0)); !errors.Is(err, errCorrupt) {
		t.Errorf("trailing byte: %v", err)
	}
	bad := bytes.Clone(snap)
	bad[0] = 9
	if err := r.s.Restore(bad); err == nil || !strings.Contains(err.Error(), "snapshot version 9") {
		t.Errorf("another version: %v", err)
	}
	// A failed restore leaves the state as it was.
	if again, _ := r.s.Snapshot(); !bytes.Equal(again, snap) {
		t.Error("a failed restore changed the state")
	}
}

func FuzzRestore(f *testing.F) {
	r := newRig(f, Config{})
	r.features(stream(4, 200, 10))
	snap, _ := r.s.Snapshot()
	f.Add(snap)
	f.Add([]byte{snapshotVersion, 0, 0, 0})
	f.Add([]byte{snapshotVersion, 0, 0, 1, 1, 'c', 0, 3, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newScorer(r.f)
		if err := s.Restore(data); err != nil {
			return
		}
		b, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		s2 := newScorer(r.f)
		if err := s2.Restore(b); err != nil {
			t.Fatalf("a snapshot of a restored state does not restore: %v", err)
		}
		if b2, _ := s2.Snapshot(); !bytes.Equal(b, b2) {
			t.Fatal("snapshot not stable across a round trip")
		}
	})
}
