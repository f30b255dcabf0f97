package nats

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// TestPartitionsAndSeekGroups: a source given partitions reads only theirs, reports each
// one's position, and after SeekGroups resumes each partition after its own position, so
// partitions checkpointed at different points by different instances can be read by one.
func TestPartitionsAndSeekGroups(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{Partitions: 4})
	lines := genLines(3000, 60)
	publishLines(t, js, lines, true)

	// What each partition holds, from a consumer of the whole stream.
	all := readN(t, open(t, nc, Options{Durable: "all"}), len(lines))
	byPart := map[int][]pipeline.Message{}
	for _, m := range all {
		byPart[m.Partition] = append(byPart[m.Partition], m)
		var tx struct {
			Card string `json:"card_id"`
		}
		if err := json.Unmarshal(m.Data, &tx); err != nil {
			t.Fatal(err)
		}
		// JetStream's partition(n, ...) mapping and the engine's PartitionOf agree on keys
		// that are subject tokens as they are.
		if p := int(pipeline.PartitionOf(tx.Card, 4)); p != m.Partition {
			t.Fatalf("card %s: JetStream put it on partition %d, PartitionOf says %d", tx.Card, m.Partition, p)
		}
	}
	last := all[len(all)-1].Pos

	a := open(t, nc, Options{Durable: "a", Partitions: []int{1, 3}})
	got := readN(t, a, len(byPart[1])+len(byPart[3]))
	for _, m := range got {
		if m.Partition != 1 && m.Partition != 3 {
			t.Fatalf("source of partitions 1 and 3 got partition %d", m.Partition)
		}
	}
	pos, err := a.GroupPositions()
	if err != nil {
		t.Fatal(err)
	}
	if top := uint64(got[len(got)-1].Pos); len(pos) != 2 || pos[1] != top || pos[3] != top {
		t.Fatalf("positions %v, want 1 and 3 at %d", pos, top)
	}

	// Another instance takes all four partitions over: 1 was checkpointed half-way, 3 at
	// its end, 0 at a quarter, 2 never.
	half := uint64(byPart[1][len(byPart[1])/2].Pos)
	quarter := uint64(byPart[0][len(byPart[0])/4].Pos)
	b := open(t, nc, Options{Durable: "b", Partitions: []int{0, 1, 2, 3}})
	if err := b.SeekGroups(map[int]uint64{0: quarter, 1: half, 3: uint64(last)}); err != nil {
		t.Fatal(err)
	}
	var want []int64
	for _, m := range all {
		switch {
		case m.Partition == 0 && uint64(m.Pos) <= quarter,
			m.Partition == 1 && uint64(m.Pos) <= half,
			m.Partition == 3:
			continue
		}
		want = append(want, m.Pos)
	}
	got = readN(t, b, len(want))
	for i, m := range got {
		if m.Pos != want[i] {
			t.Fatalf("message %d at sequence %d, want %d", i, m.Pos, want[i])
		}
	}
	pos, err = b.GroupPositions()
	if err != nil {
		t.Fatal(err)
	}
	for p := range 4 {
		if pos[p] != uint64(last) {
			t.Errorf("partition %d at %d after reading everything, want %d", p, pos[p], last)
		}
	}

	// Partitions that do not exist, or both partitions and filters, are refused.
	if _, err := Open(context.Background(), Options{Conn: nc, Durable: "c", Partitions: []int{4}}); err == nil || !strings.Contains(err.Error(), "partition 4 does not exist") {
		t.Errorf("partition 4 of 4: %v", err)
	}
	if _, err := Open(context.Background(), Options{Conn: nc, Durable: "c", Partitions: []int{1}, FilterSubjects: []string{"txn.1"}}); err == nil {
		t.Error("partitions and filter subjects together were accepted")
	}
}

// TestLegacyPartitionedStream: a stream of an earlier release, which stored each message on
// txn.<p>.<card>, is accepted as it is by EnsureStream and read by partition.
func TestLegacyPartitionedStream(t *testing.T) {
	_, nc, js := testServer(t)
	o := StreamOptions{Partitions: 4}
	if _, err := js.CreateStream(context.Background(), legacyConfig(o)); err != nil {
		t.Fatal(err)
	}
	st := ensure(t, js, o)
	if d := st.CachedInfo().Config.SubjectTransform.Destination; !strings.HasSuffix(d, ".{{wildcard(1)}}") {
		t.Fatalf("EnsureStream changed the transform of an existing stream to %s", d)
	}
	lines := genLines(800, 40)
	publishLines(t, js, lines, true)
	all := readN(t, open(t, nc, Options{Durable: "all"}), len(lines))
	var want int
	for _, m := range all {
		if m.Partition == 2 {
			want++
		}
	}
	got := readN(t, open(t, nc, Options{Durable: "two", Partitions: []int{2}}), want)
	for _, m := range got {
		if m.Partition != 2 {
			t.Fatalf("partition %d from a source of partition 2", m.Partition)
		}
	}
	if _, err := EnsureStream(context.Background(), js, StreamOptions{Partitions: 8}); err == nil {
		t.Error("an earlier release's stream of 4 partitions was accepted for 8")
	}
}
