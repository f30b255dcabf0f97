package nats

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/window"
	"github.com/fraudpipe/fraudpipe/scorers/enrich"
	"github.com/fraudpipe/fraudpipe/scorers/rules"
	"github.com/fraudpipe/fraudpipe/scorers/velocity"
	filesink "github.com/fraudpipe/fraudpipe/sinks/file"
	"github.com/fraudpipe/fraudpipe/sources/sourcetest"
)

// watched wraps a Source, counting the messages it hands on and, when failAfter is set,
// failing once it has handed on that many: a process dying without a final checkpoint.
type watched struct {
	*Source
	read      atomic.Int64
	first     atomic.Int64 // stream sequence of the first message handed on
	last      atomic.Int64 // highest stream sequence handed on
	failAfter int64
}

var errKilled = errors.New("killed")

func (w *watched) ReadBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	if w.failAfter > 0 && w.read.Load() >= w.failAfter {
		return nil, nil, errKilled
	}
	msgs, ack, err := w.Source.ReadBatch(ctx)
	if len(msgs) > 0 {
		w.first.CompareAndSwap(0, msgs[0].Pos)
		w.read.Add(int64(len(msgs)))
		w.last.Store(msgs[len(msgs)-1].Pos)
	}
	return msgs, ack, err
}

// run builds an engine with the velocity features, the built-in rules and a decisions
// file, resumes it from the newest checkpoint in store, and runs it over a new source until
// stop says so (then cancels it) or the run fails.
func runEngine(t *testing.T, store pipeline.CheckpointStore, out string, src *watched, end int64, stop func() bool) (pipeline.Stats, error) {
	t.Helper()
	// The source must resume just after the newest checkpoint's position.
	var want int64 = 1
	if c, err := store.Latest(context.Background()); err == nil {
		var p position
		if err := json.Unmarshal(c.Files["source.pos"], &p); err != nil {
			t.Fatalf("checkpoint source position %q: %v", c.Files["source.pos"], err)
		}
		want = int64(p.Seq) + 1
	}
	defer func() {
		got := src.first.Load()
		t.Logf("run from stream sequence %d to %d (%d messages)", got, src.last.Load(), src.read.Load())
		if want > end {
			want = 0 // the checkpoint covers everything published: nothing to read
		}
		if got != want {
			t.Errorf("the run began at stream sequence %d, want %d", got, want)
		}
	}()
	if want > end {
		stop = func() bool { return true }
	}
	schema := pipeline.NewFeatureSchema()
	vel, err := velocity.New(velocity.Config{Windows: window.Config{Durations: window.DefaultDurations()}}, schema)
	if err != nil {
		t.Fatal(err)
	}
	en, err := enrich.New(enrich.Config{}, schema, nil) // the built-in rules read its features
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Default(schema)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := filesink.Create(out, filesink.Options{Kind: filesink.Decisions})
	if err != nil {
		t.Fatal(err)
	}
	e, err := pipeline.NewEngine(pipeline.EngineOptions{
		Config:      pipeline.EngineConfig{Partitions: 2, QueueBatches: 4, CheckpointEvery: 20 * time.Millisecond},
		Schema:      schema,
		Scorers:     []pipeline.ScorerFactory{en, vel, rs},
		Sinks:       []pipeline.Sink{sink},
		Checkpoints: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	runErr := sourcetest.RunEngine(t, e, src, stop, 90*time.Second)
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if d := e.Stats().Duplicates; d != 0 {
		t.Errorf("the engine saw %d transactions again", d)
	}
	return e.Stats(), runErr
}

// TestEngineResumesFromCheckpoints runs the real engine over the stream four times:
// stopped mid-stream, killed without a final checkpoint, stopped again, then to the end,
// each run resuming from the newest checkpoint. Every
// transaction is decided exactly once in the decisions file, and the consumer ends
// acknowledged up to the last message.
func TestEngineResumesFromCheckpoints(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{Partitions: 3})
	const n = 6000
	lines := genLines(n, 60)
	publishLines(t, js, lines[:n/2], true)

	dir := t.TempDir()
	store, err := pipeline.NewDirStore(filepath.Join(dir, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "decisions.ndjson")
	o := Options{FetchBatch: 128, AckWait: time.Hour}

	// 1: stopped mid-stream: drains, takes a final checkpoint, commits it.
	src := &watched{Source: open(t, nc, o)}
	st, err := runEngine(t, store, out, src, n/2, func() bool { return src.read.Load() >= 500 })
	if err != nil {
		t.Fatalf("run 1: %v", err)
	}
	if st.Checkpoints == 0 {
		t.Fatal("run 1 wrote no checkpoint")
	}
	if f := consumerInfo(t, js, DefaultDurable).AckFloor.Stream; f == 0 {
		t.Error("run 1 committed nothing")
	}

	// 2: more arrives while it runs; it dies without a final checkpoint.
	src = &watched{Source: open(t, nc, o), failAfter: 1000}
	publishLines(t, js, lines[n/2:], true)
	if _, err := runEngine(t, store, out, src, n, func() bool { return false }); !errors.Is(err, errKilled) {
		t.Fatalf("run 2: %v, want the injected failure", err)
	}

	// 3: stopped again, further on.
	src = &watched{Source: open(t, nc, o)}
	if _, err := runEngine(t, store, out, src, n, func() bool { return src.read.Load() >= 500 }); err != nil {
		t.Fatalf("run 3: %v", err)
	}

	// 4: to the end.
	src = &watched{Source: open(t, nc, o)}
	if _, err := runEngine(t, store, out, src, n, func() bool { return src.last.Load() >= n }); err != nil {
		t.Fatalf("run 4: %v", err)
	}

	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d struct {
			ID       string `json:"id"`
			Decision string `json:"decision"`
		}
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil || d.Decision == "" {
			t.Fatalf("decision line %q: %v", sc.Text(), err)
		}
		seen[d.ID]++
	}
	for i := range n {
		if id := fmt.Sprintf("tx-%06d", i); seen[id] != 1 {
			t.Fatalf("%s decided %d times, want once (%d ids decided)", id, seen[id], len(seen))
		}
	}
	if len(seen) != n {
		t.Errorf("%d ids decided, want %d", len(seen), n)
	}
	if info := consumerInfo(t, js, DefaultDurable); info.AckFloor.Stream != n || info.NumAckPending != 0 {
		t.Errorf("ack floor %d with %d pending at the end, want %d and 0", info.AckFloor.Stream, info.NumAckPending, n)
	}
}
