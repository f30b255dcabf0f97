package file

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

func decided(id string, outcome pipeline.Outcome, reasons ...string) *pipeline.Event {
	ev := &pipeline.Event{Features: []float64{1.5, 3}}
	ev.Tx.ID, ev.Tx.TSText = id, "2026-11-25T10:00:00Z"
	ev.Decision = pipeline.Decision{Outcome: outcome, Reasons: reasons, Ledger: pipeline.LedgerPosted, Rules: "sha256:abc", Score: 0.25, HasScore: true}
	return ev
}

func TestDecisionsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.ndjson")
	s, err := Create(path, Options{Kind: Decisions, Features: []string{"f1", "f2"}, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.WriteBatch(ctx, []*pipeline.Event{decided("a", pipeline.Approve), decided(`q"uote`, pipeline.Decline, "rule:x")}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("%d bytes in the file before Flush", len(b))
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Flush returns only when the batch is in the file: readable before Close.
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines in the file after WriteBatch, want 2", len(lines))
	}
	want := `{"id":"a","ts":"2026-11-25T10:00:00Z","decision":"approve","score":0.25,"reasons":[],"ledger":"posted","rules":"sha256:abc","features":{"f1":1.5,"f2":3}}`
	if lines[0] != want {
		t.Errorf("got  %s\nwant %s", lines[0], want)
	}
	var d struct {
		ID       string
		Decision string
		Reasons  []string
	}
	if err := json.Unmarshal([]byte(lines[1]), &d); err != nil || d.ID != `q"uote` || d.Decision != "decline" || d.Reasons[0] != "rule:x" {
		t.Errorf("second line %s: %+v %v", lines[1], d, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDeadLettersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead.ndjson")
	s, err := Create(path, Options{Kind: DeadLetters})
	if err != nil {
		t.Fatal(err)
	}
	bad := &pipeline.Event{Raw: []byte("{\"id\":\xff}"), Source: "in.ndjson", Pos: 42, Err: &pipeline.DecodeError{Code: "invalid_json", Detail: "string is not valid UTF-8"}}
	if err := s.WriteBatch(context.Background(), []*pipeline.Event{bad}); err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
	b, _ := os.ReadFile(path)
	var dl map[string]any
	if err := json.Unmarshal(b, &dl); err != nil {
		t.Fatal(err)
	}
	if dl["raw_base64"] != "eyJpZCI6/30=" || dl["reason"] != "invalid_json: string is not valid UTF-8" || dl["source"] != "in.ndjson" || dl["offset"] != 42.0 {
		t.Errorf("dead letter %s", b)
	}
}

func TestWriteErrorIsReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.ndjson")
	s, _ := Create(path, Options{})
	s.f.Close() // the disk goes away under the sink
	err := s.WriteBatch(context.Background(), []*pipeline.Event{decided("a", pipeline.Approve)})
	if err == nil {
		err = s.Flush(context.Background())
	}
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("WriteBatch on a closed file: %v", err)
	}
}

// TestRestoreCutsBack checks that a sink resumed from a checkpoint drops what was written
// after it, and that a fresh run replaces an old file.
func TestRestoreCutsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.ndjson")
	ctx := context.Background()
	s, _ := Create(path, Options{})
	s.WriteBatch(ctx, []*pipeline.Event{decided("a", pipeline.Approve)})
	s.Flush(ctx)
	snap, _ := s.Snapshot()
	s.WriteBatch(ctx, []*pipeline.Event{decided("b", pipeline.Approve)})
	s.Flush(ctx) // written after the checkpoint, then the process dies
	s.f.Close()

	r, _ := Create(path, Options{})
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	r.WriteBatch(ctx, []*pipeline.Event{decided("b", pipeline.Approve)})
	r.Close(ctx)
	b, _ := os.ReadFile(path)
	if got := strings.Count(string(b), "\n"); got != 2 || !strings.Contains(string(b), `"id":"a"`) {
		t.Errorf("after restore: %s", b)
	}

	fresh, _ := Create(path, Options{})
	fresh.WriteBatch(ctx, []*pipeline.Event{decided("c", pipeline.Approve)})
	fresh.Close(ctx)
	if b, _ := os.ReadFile(path); strings.Count(string(b), "\n") != 1 {
		t.Errorf("a fresh run kept the old output: %s", b)
	}
}

// TestSnapshotCountsEveryByte writes more than the write buffer holds between flushes, so
// part of it reaches the file before Flush; the snapshot must still be the file's size.
func TestSnapshotCountsEveryByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.ndjson")
	ctx := context.Background()
	s, _ := Create(path, Options{})
	var evs []*pipeline.Event
	for i := range 20000 {
		evs = append(evs, decided(fmt.Sprintf("tx-%06d", i), pipeline.Review, "rule:a", "rule:b"))
	}
	for range 3 {
		if err := s.WriteBatch(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	s.Flush(ctx)
	snap, _ := s.Snapshot()
	size, _ := binary.Varint(snap)
	fi, _ := os.Stat(path)
	if size != fi.Size() {
		t.Errorf("snapshot says %d bytes, the file holds %d", size, fi.Size())
	}
	s.Close(ctx)
}
