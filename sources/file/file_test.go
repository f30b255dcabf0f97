package file

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// readAll drains a source, acknowledging each batch only after copying it, as the engine
// does once a batch is written.
func readAll(t *testing.T, s *Source) (lines []string, pos []int64, batches int) {
	t.Helper()
	for {
		msgs, ack, err := s.ReadBatch(context.Background())
		if errors.Is(err, pipeline.ErrEndOfInput) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		batches++
		for _, m := range msgs {
			lines = append(lines, string(m.Data))
			pos = append(pos, m.Pos)
		}
		ack(context.Background(), nil)
	}
}

func TestLinesAndPositions(t *testing.T) {
	input := "a\n\nbb\r\n   \nccc\nlast-without-newline"
	s, err := New("mem", io.NopCloser(strings.NewReader(input)), 2)
	if err != nil {
		t.Fatal(err)
	}
	lines, pos, batches := readAll(t, s)
	want := []string{"a", "bb", "ccc", "last-without-newline"}
	wantPos := []int64{0, 3, 11, 15}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", lines, want)
	}
	for i := range wantPos {
		if pos[i] != wantPos[i] || input[pos[i]:pos[i]+int64(len(want[i]))] != want[i] {
			t.Errorf("line %d at %d, want %d", i, pos[i], wantPos[i])
		}
	}
	if batches != 2 {
		t.Errorf("%d batches of at most 2, want 2", batches)
	}
}

func TestGzipByContent(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("one\ntwo\n"))
	zw.Close()
	path := filepath.Join(dir, "stream.ndjson") // no .gz: recognised by its bytes
	os.WriteFile(path, buf.Bytes(), 0o644)
	s, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lines, pos, _ := readAll(t, s)
	if strings.Join(lines, ",") != "one,two" || pos[1] != 4 {
		t.Errorf("lines %q at %v", lines, pos)
	}
}

func TestOversizeLineIsCutNotHeld(t *testing.T) {
	huge := strings.Repeat("x", 3*pipeline.MaxLineBytes+17)
	input := "first\n" + huge + "\nafter\n"
	s, _ := New("mem", io.NopCloser(strings.NewReader(input)), 10)
	lines, pos, _ := readAll(t, s)
	if len(lines) != 3 || lines[0] != "first" || lines[2] != "after" {
		t.Fatalf("got %d lines", len(lines))
	}
	if len(lines[1]) != pipeline.MaxLineBytes+1 {
		t.Errorf("oversize line kept %d bytes, want %d", len(lines[1]), pipeline.MaxLineBytes+1)
	}
	if pos[2] != int64(6+len(huge)+1) {
		t.Errorf("position after the oversize line %d, want %d", pos[2], 6+len(huge)+1)
	}
}

func TestBatchesStayValidUntilAcked(t *testing.T) {
	var input strings.Builder
	for i := range 1000 {
		input.WriteString(strings.Repeat(string(rune('a'+i%26)), 1+i%50) + "\n")
	}
	s, _ := New("mem", io.NopCloser(strings.NewReader(input.String())), 64)
	// Hold three batches before acknowledging any: their bytes must not change.
	var held [][]pipeline.Message
	var copies [][]string
	var acks []pipeline.AckFunc
	for range 3 {
		msgs, ack, err := s.ReadBatch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held, acks = append(held, msgs), append(acks, ack)
		var c []string
		for _, m := range msgs {
			c = append(c, string(m.Data))
		}
		copies = append(copies, c)
	}
	for b := range held {
		for i, m := range held[b] {
			if string(m.Data) != copies[b][i] {
				t.Fatalf("batch %d line %d changed before its ack", b, i)
			}
		}
		acks[b](context.Background(), nil)
	}
}

func TestOpenMissingFile(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope.ndjson"), 0)
	if err == nil || !strings.Contains(err.Error(), "nope.ndjson") {
		t.Errorf("Open of a missing file: %v", err)
	}
}
