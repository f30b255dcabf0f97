package kinesis

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	filesink "github.com/fraudpipe/fraudpipe/sinks/file"
	"github.com/fraudpipe/fraudpipe/sources/sourcetest"
)

func validLines(from, to, cards int) [][]byte {
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	var ls [][]byte
	for i := from; i < to; i++ {
		ls = append(ls, fmt.Appendf(nil, `{"id":"tx-%06d","ts":%q,"card_id":"card-%d","account_id":"acct-%d","merchant_id":"m-%d","amount":"%d.%02d","currency":"EUR"}`,
			i, t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i%cards, i%cards, i%17, 1+i%500, i%100))
	}
	return ls
}

// watched wraps a Source, noting the ids it hands on and, when failAfter is set, failing
// once it has handed on that many: a process dying without a final checkpoint.
type watched struct {
	*Source
	read      atomic.Int64
	failAfter int64
	mu        *sync.Mutex
	ids       map[string]bool // across runs
}

var errKilled = errors.New("killed")

func (w *watched) ReadBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	if w.failAfter > 0 && w.read.Load() >= w.failAfter {
		return nil, nil, errKilled
	}
	msgs, ack, err := w.Source.ReadBatch(ctx)
	w.read.Add(int64(len(msgs)))
	w.mu.Lock()
	for _, m := range msgs {
		var tx struct{ ID string }
		_ = json.Unmarshal(m.Data, &tx)
		w.ids[tx.ID] = true
	}
	w.mu.Unlock()
	return msgs, ack, err
}

func (w *watched) seen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

func runEngine(t *testing.T, store pipeline.CheckpointStore, out string, src *watched, stop func() bool) (pipeline.Stats, error) {
	t.Helper()
	sink, err := filesink.Create(out, filesink.Options{Kind: filesink.Decisions})
	if err != nil {
		t.Fatal(err)
	}
	e, err := pipeline.NewEngine(pipeline.EngineOptions{
		Config:      pipeline.EngineConfig{Partitions: 2, CheckpointEvery: 20 * time.Millisecond},
		Schema:      pipeline.NewFeatureSchema(),
		Sinks:       []pipeline.Sink{sink},
		Checkpoints: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	runErr := sourcetest.RunEngine(t, e, src, stop, 40*time.Second)
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	return e.Stats(), runErr
}

// TestEngineResumesThroughReshard runs the real engine over the stream three times:
// stopped mid-stream, killed without a final checkpoint after a reshard, then to the end.
// Every transaction is decided exactly once in the decisions file.
func TestEngineResumesThroughReshard(t *testing.T) {
	e := startEmulator(t)
	e.createStream(t, "tx", 3)
	const n, cards = 3000, 50
	put(t, e, "tx", validLines(0, n/2, cards))

	dir := t.TempDir()
	store, err := pipeline.NewDirStore(filepath.Join(dir, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "decisions.ndjson")
	o := Options{BatchSize: 100, Limit: 100, ShardRefresh: 100 * time.Millisecond}
	var mu sync.Mutex
	ids := map[string]bool{}
	newSrc := func(failAfter int64) *watched {
		return &watched{Source: openSource(t, e, "tx", o), failAfter: failAfter, mu: &mu, ids: ids}
	}

	// 1: stopped mid-stream: drains, takes a final checkpoint.
	src := newSrc(0)
	st, err := runEngine(t, store, out, src, func() bool { return src.read.Load() >= n/4 })
	if err != nil {
		t.Fatalf("run 1: %v", err)
	}
	if st.Checkpoints == 0 {
		t.Fatal("run 1 wrote no checkpoint")
	}

	// 2: the stream is resharded and more arrives; the run dies without a final checkpoint.
	e.split(t, "tx", "shardId-000000000001")
	e.merge(t, "tx", "shardId-000000000000", "shardId-000000000003")
	put(t, e, "tx", validLines(n/2, n, cards))
	src = newSrc(n / 4)
	if _, err := runEngine(t, store, out, src, func() bool { return false }); !errors.Is(err, errKilled) {
		t.Fatalf("run 2: %v, want the injected failure", err)
	}

	// 3: to the end.
	src = newSrc(0)
	if _, err := runEngine(t, store, out, src, func() bool { return src.seen() >= n }); err != nil {
		t.Fatalf("run 3: %v", err)
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
}
