package pipeline

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// groupSource serves the lines of the stream partitions it owns, as a NATS source with
// partitions does: a line's partition is PartitionOf(card, parts), its position its index
// + 1 (a stream sequence).
type groupSource struct {
	lines [][]byte
	parts int
	owned map[int]bool
	batch int
	next  int            // index of the next line to look at
	floor map[int]uint64 // per partition: positions covered by restored state
	seeks []map[int]uint64
}

func newGroupSource(lines [][]byte, parts int, owned ...int) *groupSource {
	s := &groupSource{lines: lines, parts: parts, owned: map[int]bool{}, batch: 5, floor: map[int]uint64{}}
	for _, p := range owned {
		s.owned[p] = true
	}
	return s
}

func (s *groupSource) Name() string { return "groups" }
func (s *groupSource) Close() error { return nil }

func (s *groupSource) partOf(i int) int {
	var tx struct {
		Card string `json:"card_id"`
	}
	json.Unmarshal(s.lines[i], &tx)
	return int(PartitionOf(tx.Card, uint32(s.parts)))
}

func (s *groupSource) ReadBatch(context.Context) ([]Message, AckFunc, error) {
	var msgs []Message
	for s.next < len(s.lines) && len(msgs) < s.batch {
		i := s.next
		s.next++
		p := s.partOf(i)
		if !s.owned[p] || uint64(i+1) <= s.floor[p] {
			continue
		}
		msgs = append(msgs, Message{Data: s.lines[i], Pos: int64(i + 1), Partition: p})
	}
	if len(msgs) == 0 && s.next >= len(s.lines) {
		return nil, nil, ErrEndOfInput
	}
	return msgs, func(context.Context, error) error { return nil }, nil
}

func (s *groupSource) Position() ([]byte, error) { return json.Marshal(s.next) }
func (s *groupSource) Seek(b []byte) error       { return json.Unmarshal(b, &s.next) }

func (s *groupSource) GroupPositions() (map[int]uint64, error) {
	pos := map[int]uint64{}
	for p := range s.owned {
		pos[p] = max(uint64(s.next), s.floor[p])
	}
	return pos, nil
}

func (s *groupSource) SeekGroups(pos map[int]uint64) error {
	s.seeks = append(s.seeks, pos)
	low := uint64(len(s.lines))
	for p := range s.owned {
		s.floor[p] = pos[p]
		low = min(low, pos[p])
	}
	s.next = int(low)
	return nil
}

func groupEngine(t *testing.T, store CheckpointStore, peers []CheckpointStore, sink *fileLikeSink, groups ...int) *Engine {
	t.Helper()
	schema := NewFeatureSchema()
	schema.Declare("card_count")
	sink.names = schema.Names()
	e, err := NewEngine(EngineOptions{
		Config:      EngineConfig{Groups: groups, KeepFeatures: true, CheckpointEvery: 1, QueueBatches: 2},
		Schema:      schema,
		Scorers:     []ScorerFactory{&snapFactory{}},
		Sinks:       []Sink{sink},
		Checkpoints: store,
		Peers:       peers,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestGroupsTakeOver: two instances share a four-partition stream, each checkpointing its
// partitions; one instance then owns all four, takes each partition's state from the
// checkpoint that covers it, and decides the rest of the stream exactly as one engine
// that read everything would.
func TestGroupsTakeOver(t *testing.T) {
	ctx := context.Background()
	lines := manyLines(2000)
	half := lines[:1100]

	// The reference: one engine owning every partition, over everything.
	refSink := &fileLikeSink{}
	ref := groupEngine(t, nil, nil, refSink, 0, 1, 2, 3)
	if err := ref.Run(ctx, newGroupSource(lines, 4, 0, 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, l := range refSink.lines {
		want[l[:strings.Index(l, ",")]] = l
	}

	root, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sub := func(name string) CheckpointStore {
		s, err := root.Sub(name)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Instances 0/2 and 1/2 over the first part, each with its own output file.
	files := []*fileLikeSink{{}, {}}
	for i, owned := range [][]int{{0, 2}, {1, 3}} {
		e := groupEngine(t, sub(InstanceStoreName(i)), nil, files[i], owned...)
		if _, err := e.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.Run(ctx, newGroupSource(half, 4, owned...)); err != nil {
			t.Fatal(err)
		}
	}
	names, err := root.Subs(ctx)
	if err != nil || strings.Join(names, ",") != "instance-0,instance-1" {
		t.Fatalf("instance stores %v (%v)", names, err)
	}

	// Instance 0/1 takes everything over, writing on in instance 0's file.
	sink := files[0]
	before := len(sink.lines)
	e := groupEngine(t, sub(InstanceStoreName(0)), []CheckpointStore{sub(InstanceStoreName(1))}, sink, 0, 1, 2, 3)
	if _, err := e.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	for g := range 4 {
		st, ok := e.groups[g]
		if !ok || st.pos != uint64(len(half)) || !strings.Contains(st.from, InstanceStoreName(g%2)) {
			t.Fatalf("partition %d restored from %+v, want instance-%d at %d", g, st, g%2, len(half))
		}
	}
	src := newGroupSource(lines, 4, 0, 1, 2, 3)
	if err := e.Run(ctx, src); err != nil {
		t.Fatal(err)
	}
	if len(src.seeks) != 1 || len(src.seeks[0]) != 4 {
		t.Fatalf("SeekGroups calls %v", src.seeks)
	}
	var got int
	for _, l := range sink.lines[before:] {
		id := l[:strings.Index(l, ",")]
		if l != want[id] {
			t.Fatalf("after the takeover: %s\nwant %s", l, want[id])
		}
		got++
	}
	if got != len(lines)-len(half) {
		t.Fatalf("%d decisions after the takeover, want %d", got, len(lines)-len(half))
	}

	// A checkpoint of an instance that owned no partitions cannot resume one that does.
	plain, err := NewDirStore(filepath.Join(t.TempDir(), "plain"))
	if err != nil {
		t.Fatal(err)
	}
	pe := newCheckpointEngine(t, plain, &fileLikeSink{}, 2)
	pe.Restore(ctx)
	if err := pe.Run(ctx, &posSource{sliceSource: sliceSource{lines: half, batch: 9}}); err != nil {
		t.Fatal(err)
	}
	if _, err := groupEngine(t, plain, nil, &fileLikeSink{}, 0, 1).Restore(ctx); err == nil || !strings.Contains(err.Error(), "did not own stream partitions") {
		t.Fatalf("restore of a scaled instance from a plain checkpoint: %v", err)
	}
}
