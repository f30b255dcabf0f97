package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
)

// TestRoundTrip writes a realistic stream through the Sink API and checks every record:
// the layout, the decision bytes as the decisions file writes them, the chain, and that
// Verify agrees with the head the sink reports.
func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	evs := stream("tx", 0, 500)
	s, err := Open(path, Options{Features: features})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, evs, 37)
	records, head := s.Head()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := splitLines(b)
	if len(lines) != len(evs) || records != int64(len(evs)) {
		t.Fatalf("%d lines, Head says %d records; want %d", len(lines), records, len(evs))
	}
	prev := strings.Repeat("0", 64)
	for i, line := range lines {
		line = bytes.TrimSuffix(line, []byte{'\n'})
		var rec struct {
			N        int64           `json:"n"`
			Prev     string          `json:"prev"`
			Decision json.RawMessage `json:"decision"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, line)
		}
		want := pipeline.AppendDecisionJSON(nil, decided("tx", i), features)
		if rec.N != int64(i+1) || rec.Prev != prev || !bytes.Equal(rec.Decision, want) {
			t.Fatalf("line %d: n %d prev %s decision\n%s\nwant n %d prev %s decision\n%s", i+1, rec.N, rec.Prev, rec.Decision, i+1, prev, want)
		}
		sum := sha256.Sum256(line)
		prev = hex.EncodeToString(sum[:])
	}
	res := mustVerify(t, b)
	if res.Records != int64(len(evs)) || res.Head != prev || res.Head != head {
		t.Errorf("Verify: %+v; want %d records, head %s (sink: %s)", res, len(evs), prev, head)
	}
	res, err = VerifyHead(bytes.NewReader(b), strings.ToUpper(head))
	if err != nil || res.HeadAt != int64(len(evs)) {
		t.Errorf("VerifyHead(its own head) = %+v, %v", res, err)
	}
}

// TestBatchingDoesNotChangeBytes: the log depends on the decisions alone, not on how the
// engine batched and flushed them.
func TestBatchingDoesNotChangeBytes(t *testing.T) {
	dir := t.TempDir()
	evs := stream("tx", 0, 300)
	var got [][]byte
	for _, per := range []int{1, 7, 300} {
		path := filepath.Join(dir, "audit.ndjson"+string(rune('a'+len(got))))
		writeLog(t, path, evs, per, Options{})
		b, _ := os.ReadFile(path)
		got = append(got, b)
	}
	for i := 1; i < len(got); i++ {
		if !bytes.Equal(got[0], got[i]) {
			t.Errorf("batching %d gave different bytes", i)
		}
	}
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T, _ pipeline.Sink) sinktest.Instance {
		path := filepath.Join(t.TempDir(), "audit.ndjson")
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return sinktest.Instance{Sink: s, Delivered: func() []string {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := Verify(f); err != nil {
				t.Fatalf("the log the suite wrote does not verify: %v", err)
			}
			f.Seek(0, io.SeekStart)
			var ids []string
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var r struct{ Decision struct{ ID string } }
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, r.Decision.ID)
			}
			return ids
		}}
	})
}

// TestFlushSyncs: Flush writes the records and fsyncs the file before it returns, so
// another reader sees them before Close; nothing reaches the file before Flush.
func TestFlushSyncs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var synced []int64 // file size at each fsync
	s.sync = func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		synced = append(synced, fi.Size())
		return f.Sync()
	}
	ctx := context.Background()
	if err := s.WriteBatch(ctx, stream("tx", 0, 10)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Fatalf("%d bytes in the file before Flush", len(b))
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path) // a second open file: what the kernel holds
	if err != nil {
		t.Fatal(err)
	}
	if res := mustVerify(t, b); res.Records != 10 {
		t.Fatalf("%d records after Flush, want 10", res.Records)
	}
	if len(synced) != 1 || synced[0] != int64(len(b)) {
		t.Errorf("fsyncs at sizes %v; want one, after all %d bytes were written", synced, len(b))
	}
	if err := s.Flush(ctx); err != nil || len(synced) != 1 {
		t.Errorf("an empty Flush: %v, %d fsyncs", err, len(synced))
	}
}

// TestFailedSyncIsSticky: after a failed fsync the file's content is unknown, so the sink
// refuses to go on until a restart restores a checkpoint.
func TestFailedSyncIsSticky(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	s.sync = func(*os.File) error { return errors.New("input/output error") }
	ctx := context.Background()
	s.WriteBatch(ctx, stream("tx", 0, 3))
	if err := s.Flush(ctx); err == nil || !strings.Contains(err.Error(), "restart from the last checkpoint") {
		t.Fatalf("Flush with a failing fsync: %v", err)
	}
	if err := s.WriteBatch(ctx, stream("tx", 3, 4)); err == nil {
		t.Error("WriteBatch after a failed fsync succeeded")
	}
	if _, err := s.Snapshot(); err == nil {
		t.Error("Snapshot after a failed fsync succeeded")
	}
}

// TestCrashRestore: a run takes a checkpoint, writes and flushes more, then dies (with a
// torn write at the end). The resumed run restores the checkpoint and writes the same
// decisions again: the file is byte for byte what an uninterrupted run writes.
func TestCrashRestore(t *testing.T) {
	dir := t.TempDir()
	evs := stream("tx", 0, 400)
	want := filepath.Join(dir, "uninterrupted.ndjson")
	writeLog(t, want, evs, 50, Options{Features: features})

	path := filepath.Join(dir, "audit.ndjson")
	s, err := Open(path, Options{Features: features})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, evs[:150], 50)
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, evs[150:260], 50) // after the checkpoint: replayed on recovery
	if err := s.WriteBatch(context.Background(), evs[260:280]); err != nil {
		t.Fatal(err)
	}
	// The process dies: buffered records are lost, a write in progress is torn.
	s.f.WriteAt([]byte(`{"n":261,"prev":"0a1b`), s.size)
	s.f.Close()

	s2, err := Open(path, Options{Features: features})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Restore(snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if n, _ := s2.Head(); n != 150 {
		t.Errorf("after Restore the log has %d records, want 150", n)
	}
	writeAll(t, s2, evs[150:], 33)
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	wantB, _ := os.ReadFile(want)
	if !bytes.Equal(got, wantB) {
		t.Fatalf("the resumed log (%d bytes) differs from the uninterrupted one (%d bytes)", len(got), len(wantB))
	}
	mustVerify(t, got)
}

// TestRestoreEmpty: a checkpoint taken before the first record resumes an empty log.
func TestRestoreEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	s, _ := Open(path, Options{})
	snap, _ := s.Snapshot()
	writeAll(t, s, stream("tx", 0, 20), 20)
	s.f.Close()
	s2, _ := Open(path, Options{})
	if err := s2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s2, stream("tx", 0, 5), 5)
	s2.Close(context.Background())
	b, _ := os.ReadFile(path)
	if res := mustVerify(t, b); res.Records != 5 {
		t.Errorf("%d records, want 5", res.Records)
	}
}

// TestRestoreRefuses: a checkpoint that does not match the file is refused, with a reason.
func TestRestoreRefuses(t *testing.T) {
	checkpointed := func(t *testing.T) (string, []byte) {
		path := filepath.Join(t.TempDir(), "audit.ndjson")
		s, _ := Open(path, Options{})
		writeAll(t, s, stream("tx", 0, 40), 10)
		snap, _ := s.Snapshot()
		writeAll(t, s, stream("tx", 40, 50), 10)
		s.Close(context.Background())
		return path, snap
	}
	tests := []struct {
		name   string
		change func(t *testing.T, path string, snap []byte) []byte
		want   string
	}{
		{"file cut below the checkpoint", func(t *testing.T, path string, snap []byte) []byte {
			os.Truncate(path, 100)
			return snap
		}, "less than the"},
		{"record before the checkpoint altered", func(t *testing.T, path string, snap []byte) []byte {
			b, _ := os.ReadFile(path)
			lines := splitLines(b)
			lines[39] = bytes.Replace(lines[39], []byte(`"ts":"2026`), []byte(`"ts":"2025`), 1)
			os.WriteFile(path, joinLines(lines), 0o640)
			return snap
		}, "does not match the checkpoint"},
		{"file replaced by another log", func(t *testing.T, path string, snap []byte) []byte {
			os.Remove(path)
			writeLog(t, path, stream("other", 0, 60), 60, Options{})
			return snap
		}, "does not match the checkpoint"},
		{"another sink's snapshot", func(t *testing.T, path string, snap []byte) []byte {
			return []byte{0x8a, 0x01}
		}, "corrupt snapshot"},
		{"truncated snapshot", func(t *testing.T, path string, snap []byte) []byte {
			return snap[:len(snap)-1]
		}, "corrupt snapshot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, snap := checkpointed(t)
			snap = tt.change(t, path, snap)
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			err = s.Restore(snap)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Restore: %v; want an error saying %q", err, tt.want)
			}
		})
	}
}

// TestExistingLogRefused: a fresh run (no checkpoint) never overwrites a log that holds
// records; it says what to do.
func TestExistingLogRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	writeLog(t, path, stream("tx", 0, 10), 10, Options{})
	before, _ := os.ReadFile(path)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = s.WriteBatch(ctx, stream("tx", 10, 12))
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "audit log "+path+" exists") || !strings.Contains(err.Error(), "append") {
		t.Fatalf("WriteBatch on an existing log: %v", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Errorf("Flush with nothing written: %v", err)
	}
	// A checkpoint must not record the log as this run's (empty) output: restoring it
	// would cut the log.
	if _, err := s.Snapshot(); !errors.Is(err, ErrExists) {
		t.Errorf("Snapshot of a log nobody resumed: %v; want ErrExists", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close with nothing written: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("the existing log was changed")
	}
}

// TestAppend continues an existing log's chain in a run without a checkpoint.
func TestAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	writeLog(t, path, stream("tx", 0, 120), 40, Options{Features: features})
	writeLog(t, path, stream("tx", 120, 200), 40, Options{Append: true, Features: features})
	b, _ := os.ReadFile(path)
	want := logBytes(t, 200)
	if !bytes.Equal(b, want) {
		t.Error("a log written in two appended runs differs from one written in one run")
	}
	// Append to an empty or missing file starts a chain.
	empty := filepath.Join(t.TempDir(), "new.ndjson")
	writeLog(t, empty, stream("tx", 0, 3), 3, Options{Append: true})
	b, _ = os.ReadFile(empty)
	if res := mustVerify(t, b); res.Records != 3 {
		t.Errorf("%d records, want 3", res.Records)
	}
}

// TestAppendTornTail: a run that died during a flush left half a record; Append cuts it
// off, says so, and continues the chain from the last whole record.
func TestAppendTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	writeLog(t, path, stream("tx", 0, 50), 50, Options{})
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"n":51,"prev":"6d`)
	f.Close()
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	writeLog(t, path, stream("tx", 50, 60), 10, Options{Append: true, Logger: log})
	if !strings.Contains(logged.String(), "incomplete record") {
		t.Errorf("the repair was not logged: %q", logged.String())
	}
	b, _ := os.ReadFile(path)
	if res := mustVerify(t, b); res.Records != 60 {
		t.Errorf("%d records, want 60", res.Records)
	}
}

// TestAppendRefusesDamagedTail: Append never chains onto a log whose end was altered.
func TestAppendRefusesDamagedTail(t *testing.T) {
	tests := []struct {
		name   string
		change func(lines [][]byte) [][]byte
		want   string
	}{
		{"record before the last altered", func(l [][]byte) [][]byte {
			l[len(l)-2] = bytes.Replace(l[len(l)-2], []byte(`"ledger":"`), []byte(`"ledger":"X`), 1)
			return l
		}, "do not chain"},
		{"last record not JSON", func(l [][]byte) [][]byte {
			l[len(l)-1] = []byte("garbage\n")
			return l
		}, "last record is damaged"},
		{"record removed at the end", func(l [][]byte) [][]byte {
			return append(l[:len(l)-2], l[len(l)-1])
		}, "do not chain"},
		{"a lone record that is not the first", func(l [][]byte) [][]byte {
			return l[5:6]
		}, "not a first record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.ndjson")
			b := logBytes(t, 30)
			os.WriteFile(path, joinLines(tt.change(splitLines(b))), 0o640)
			_, err := Open(path, Options{Append: true})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open with Append: %v; want an error saying %q", err, tt.want)
			}
		})
	}
}

// TestLongRecordsTail: the tail check reads back further than its first chunk when the
// records are long.
func TestLongRecordsTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	names := make([]string, 3000) // about 60 KiB of features per record
	for i := range names {
		names[i] = "feature_with_a_long_name_" + strings.Repeat("x", 5) + string(rune('a'+i%26))
	}
	evs := stream("tx", 0, 6)
	for _, ev := range evs {
		ev.Features = make([]float64, len(names))
		for i := range ev.Features {
			ev.Features[i] = float64(i) / 3
		}
	}
	writeLog(t, path, evs[:4], 2, Options{Features: names})
	writeLog(t, path, evs[4:], 2, Options{Features: names, Append: true})
	b, _ := os.ReadFile(path)
	if res := mustVerify(t, b); res.Records != 6 {
		t.Errorf("%d records, want 6", res.Records)
	}
}
