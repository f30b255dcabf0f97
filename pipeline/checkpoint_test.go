package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDirStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Latest(ctx); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("empty store: %v", err)
	}
	for id := uint64(1); id <= 4; id++ {
		if err := s.Write(ctx, Manifest{ID: id, Partitions: 2, NextSeq: id * 10}, map[string][]byte{"a": []byte(fmt.Sprint("state ", id))}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Latest(ctx)
	if err != nil || c.Manifest.ID != 4 || string(c.Files["a"]) != "state 4" || c.Manifest.Version != CheckpointVersion {
		t.Fatalf("latest: %+v %v", c, err)
	}
	// A damaged file in the newest checkpoint: the one before it is used.
	os.WriteFile(filepath.Join(dir, chkDirName(4), "a"), []byte("state 5"), 0o644)
	if c, err = s.Latest(ctx); err != nil || c.Manifest.ID != 3 {
		t.Fatalf("after damage: %+v %v", c, err)
	}
	// A checkpoint whose manifest was never written is incomplete.
	os.Remove(filepath.Join(dir, chkDirName(3), manifestName))
	if c, err = s.Latest(ctx); err != nil || c.Manifest.ID != 2 {
		t.Fatalf("after incomplete: %+v %v", c, err)
	}
	if err := s.Prune(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.ids(); !slices.Equal(ids, []uint64{4, 3}) {
		t.Errorf("after prune: %v", ids)
	}
	if _, err := s.Latest(ctx); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("no intact checkpoint left, got %v", err)
	}
}

// posSource is a sliceSource that can rewind, and can be made to fail after some batches,
// as a process that dies would.
type posSource struct {
	sliceSource
	failAfter int // batches; 0 never
	batches   int
}

func (p *posSource) Position() ([]byte, error) { return json.Marshal(p.next) }
func (p *posSource) Seek(b []byte) error       { return json.Unmarshal(b, &p.next) }
func (p *posSource) ReadBatch(ctx context.Context) ([]Message, AckFunc, error) {
	p.batches++
	if p.failAfter > 0 && p.batches > p.failAfter {
		return nil, nil, errors.New("killed")
	}
	return p.sliceSource.ReadBatch(ctx)
}

// snapScorer is countFactory's scorer with snapshots.
type snapFactory struct{ countFactory }

func (f *snapFactory) NewScorer(int) (Scorer, error) {
	return &snapScorer{countScorer{seen: map[string]int{}}}, nil
}

type snapScorer struct{ countScorer }

func (s *snapScorer) Snapshot() ([]byte, error) { return json.Marshal(s.seen) }
func (s *snapScorer) Restore(b []byte) error    { return json.Unmarshal(b, &s.seen) }

// fileLikeSink keeps lines and cuts them back on restore, as the file sink does.
type fileLikeSink struct {
	collectSink
	flushed int
}

func (f *fileLikeSink) Flush(context.Context) error { f.flushed = len(f.lines); return nil }
func (f *fileLikeSink) Snapshot() ([]byte, error)   { return json.Marshal(f.flushed) }
func (f *fileLikeSink) Restore(b []byte) error {
	if err := json.Unmarshal(b, &f.flushed); err != nil {
		return err
	}
	f.lines = f.lines[:f.flushed]
	return nil
}

func newCheckpointEngine(t *testing.T, store CheckpointStore, sink *fileLikeSink, partitions int) *Engine {
	t.Helper()
	schema := NewFeatureSchema()
	schema.Declare("card_count")
	sink.names = schema.Names()
	e, err := NewEngine(EngineOptions{
		Config:      EngineConfig{Partitions: partitions, KeepFeatures: true, CheckpointEvery: 1, QueueBatches: 2},
		Schema:      schema,
		Scorers:     []ScorerFactory{&snapFactory{}},
		Sinks:       []Sink{sink},
		Checkpoints: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCrashAndResume kills the input at several points; each restart resumes from the
// newest checkpoint, and the output ends equal to that of a run that never stopped:
// no decision lost, none twice, every card's count as if nothing happened.
func TestCrashAndResume(t *testing.T) {
	lines := manyLines(3000)
	want := runEngine(t, lines, EngineConfig{Partitions: 3, KeepFeatures: true}, nil).decisions

	ctx := context.Background()
	store, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sink := &fileLikeSink{}
	crashes := 0
	for _, failAfter := range []int{40, 55, 60, 0} {
		e := newCheckpointEngine(t, store, sink, 0)
		if _, err := e.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		src := &posSource{sliceSource: sliceSource{lines: lines, batch: 13}, failAfter: failAfter}
		err := e.Run(ctx, src)
		if failAfter > 0 {
			if err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("run %d: %v, want the source's failure", crashes, err)
			}
			crashes++
			// What was written after the last checkpoint is lost with the process.
			sink.lines = sink.lines[:sink.flushed]
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Stats().Checkpoints == 0 {
			t.Error("no checkpoint written")
		}
	}
	if len(sink.lines) != len(want) {
		t.Fatalf("%d decisions after %d crashes, want %d", len(sink.lines), crashes, len(want))
	}
	for i := range want {
		if sink.lines[i] != want[i] {
			t.Fatalf("decision %d after crashes:\n%s\nwant\n%s", i, sink.lines[i], want[i])
		}
	}
}

// TestCheckpointPinsPartitions resumes with the partition count of the checkpoint, and
// refuses a config that asks for another.
func TestCheckpointPinsPartitions(t *testing.T) {
	ctx := context.Background()
	store, _ := NewDirStore(t.TempDir())
	sink := &fileLikeSink{}
	e := newCheckpointEngine(t, store, sink, 5)
	if err := e.Run(ctx, &posSource{sliceSource: sliceSource{lines: manyLines(100), batch: 10}}); err != nil {
		t.Fatal(err)
	}
	auto := newCheckpointEngine(t, store, sink, 0)
	if m, err := auto.Restore(ctx); err != nil || m.Partitions != 5 || auto.cfg.Partitions != 5 {
		t.Fatalf("restore with automatic partitions: %+v %v", m, err)
	}
	other := newCheckpointEngine(t, store, sink, 3)
	if _, err := other.Restore(ctx); err == nil || !strings.Contains(err.Error(), "set engine.partitions to 5") {
		t.Fatalf("restore with 3 partitions: %v", err)
	}
}

func TestCheckpointNeedsARewindableSource(t *testing.T) {
	store, _ := NewDirStore(t.TempDir())
	e := newCheckpointEngine(t, store, &fileLikeSink{}, 1)
	err := e.Run(context.Background(), &sliceSource{lines: manyLines(10), batch: 5})
	if err == nil || !strings.Contains(err.Error(), "cannot rewind") {
		t.Fatalf("Run with a source without positions: %v", err)
	}
}

// TestLateEvents flags events more than the allowed lateness behind the watermark, decides
// them, and leaves state untouched; events within the bound update state.
func TestLateEvents(t *testing.T) {
	at := func(id, ts string) []byte {
		return fmt.Appendf(nil, `{"id":%q,"ts":%q,"card_id":"c","account_id":"a","merchant_id":"m","amount":"1.00","currency":"EUR"}`, id, ts)
	}
	lines := [][]byte{
		at("1", "2026-11-25T12:00:00Z"),
		at("2", "2026-11-25T11:59:50Z"), // 10s behind the newest: on time
		at("3", "2026-11-25T11:50:00Z"), // 9m30s behind the watermark (11:59:30) > 5m: late
		at("4", "2026-11-25T11:57:00Z"), // 2m30s behind the watermark: within the lateness
	}
	res := runEngine(t, lines, EngineConfig{MaxOutOfOrderness: 30e9, AllowedLateness: 300e9, KeepFeatures: true}, nil)
	if res.stats.Late != 1 || !strings.Contains(res.decisions[2], `"late":true`) {
		t.Fatalf("late: %d\n%s", res.stats.Late, strings.Join(res.decisions, "\n"))
	}
	// The late one did not count: the fourth is the card's third counted transaction.
	if !strings.Contains(res.decisions[3], `"card_count":3`) || strings.Contains(res.decisions[3], "late") {
		t.Errorf("after a late event: %s", res.decisions[3])
	}
	if want := int64(1795607970000); res.stats.Watermark != want {
		t.Errorf("watermark %d, want %d", res.stats.Watermark, want)
	}
}
