package parquet

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
	pq "github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"
)

// columnChunk describes how one column chunk of a Parquet file was written.
type columnChunk struct {
	codec      compress.Compression
	dictionary bool // it has a dictionary page
	plainPages bool // some data pages are plain-encoded
	dictPages  bool // some data pages hold dictionary indices
}

// columnChunks returns the column chunks of the first row group of a Parquet file, by path.
func columnChunks(t *testing.T, b []byte) map[string]columnChunk {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	md := rdr.MetaData().RowGroup(0)
	out := map[string]columnChunk{}
	for c := range md.NumColumns() {
		cc, err := md.ColumnChunk(c)
		if err != nil {
			t.Fatal(err)
		}
		ch := columnChunk{codec: cc.Compression(), dictionary: cc.HasDictionaryPage()}
		for _, e := range cc.EncodingStats() {
			if e.PageType != 0 && e.PageType != 3 { // data pages, versions 1 and 2
				continue
			}
			switch e.Encoding {
			case pq.Encodings.Plain:
				ch.plainPages = true
			case pq.Encodings.RLEDict, pq.Encodings.PlainDict:
				ch.dictPages = true
			}
		}
		out[cc.PathInSchema().String()] = ch
	}
	return out
}

// TestDictionaryFallsBackOnUniqueValues checks that a string column whose first chunk of
// rows is nearly all distinct values is written plain from the second chunk on, while the
// repeating columns keep their dictionaries, and that the rows read back unchanged.
func TestDictionaryFallsBackOnUniqueValues(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	s, err := New(Options{Dest: Dir{Root: out}, SpoolDir: filepath.Join(dir, "spool"), Features: testFeatures})
	if err != nil {
		t.Fatal(err)
	}
	events := testEvents(3*batchRows, base, 1<<30)
	for i, ev := range events {
		ev.Tx.CardID = fmt.Sprintf("card-%08d", i)    // unique
		ev.Tx.AccountID = fmt.Sprintf("acct-%d", i%2) // two values
	}
	writeAll(t, s, events, 4096)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files := readDir(t, out)
	if len(files) != 1 {
		t.Fatalf("%d files, want 1", len(files))
	}
	for _, b := range files {
		rows, _ := readParquet(t, b, len(testFeatures))
		checkRows(t, rows, events, len(testFeatures))
		cols := columnChunks(t, b)
		if c := cols["card_id"]; !c.dictionary || !c.dictPages || !c.plainPages {
			t.Errorf("card_id: %+v, want a dictionary for the first chunk of rows and plain pages after it", c)
		}
		for _, name := range []string{"account_id", "merchant_id", "channel", "decision", "ledger", "reasons.list.element", "currency"} {
			if c := cols[name]; !c.dictionary || c.plainPages {
				t.Errorf("%s: %+v, want dictionary-encoded pages only", name, c)
			}
		}
	}
}

func TestCompression(t *testing.T) {
	for _, tc := range []struct {
		c    Compression
		want compress.Compression
	}{
		{"", compress.Codecs.Zstd},
		{CompressionZstd, compress.Codecs.Zstd},
		{CompressionSnappy, compress.Codecs.Snappy},
		{CompressionNone, compress.Codecs.Uncompressed},
	} {
		t.Run(string(tc.c), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			s, err := New(Options{Dest: Dir{Root: out}, SpoolDir: filepath.Join(dir, "spool"), Features: testFeatures, Compression: tc.c})
			if err != nil {
				t.Fatal(err)
			}
			events := testEvents(3000, base, 1<<30)
			writeAll(t, s, events, 1000)
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			var rows []gotRow
			for _, b := range readDir(t, out) {
				r, _ := readParquet(t, b, len(testFeatures))
				rows = append(rows, r...)
				for name, c := range columnChunks(t, b) {
					if c.codec != tc.want {
						t.Errorf("%s compressed with %v, want %v", name, c.codec, tc.want)
					}
				}
			}
			checkRows(t, rows, events, len(testFeatures))
		})
	}
	_, err := New(Options{Dest: Dir{Root: t.TempDir()}, SpoolDir: t.TempDir(), Compression: "gzip"})
	if err == nil || !strings.Contains(err.Error(), `unknown compression "gzip"`) {
		t.Errorf("New with gzip: %v, want an unknown compression error", err)
	}
}

// TestBufferPoolSameFiles checks that pages built in pooled buffers, reused from row group to
// row group and file to file, are the bytes pages built in fresh ones are.
func TestBufferPoolSameFiles(t *testing.T) {
	events := testEvents(24000, base, 8000)
	write := func(mem memory.Allocator) map[string][]byte {
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		s, err := New(Options{Dest: Dir{Root: out}, SpoolDir: filepath.Join(dir, "spool"), Features: testFeatures,
			RowGroupBytes: 16 << 10, Allocator: mem})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, events, 512)
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		return readDir(t, out)
	}
	got, want := write(nil), write(memory.DefaultAllocator)
	if len(got) != len(want) || len(got) != 3 {
		t.Fatalf("%d files with the pool, %d without, want 3", len(got), len(want))
	}
	for k, b := range want {
		if !bytes.Equal(got[k], b) {
			t.Errorf("%s differs with pooled buffers", k)
		}
	}
}

func TestBufferPool(t *testing.T) {
	p := newBufferPool(1 << 20)
	b := p.Allocate(3000)
	if len(b) != 3000 || cap(b) != 4096 {
		t.Fatalf("Allocate(3000): len %d cap %d, want 3000 and 4096", len(b), cap(b))
	}
	for i := range b {
		b[i] = 0xaa
	}
	// Growing within the size class keeps the buffer and its bytes.
	g := p.Reallocate(4000, b)
	if &g[0] != &b[0] || len(g) != 4000 || g[2999] != 0xaa {
		t.Fatalf("Reallocate within the class moved or lost the bytes")
	}
	// Growing past it copies into the next class and keeps the old buffer for later.
	h := p.Reallocate(5000, g)
	if cap(h) != 8192 || h[0] != 0xaa || h[2999] != 0xaa {
		t.Fatalf("Reallocate(5000): cap %d, bytes lost", cap(h))
	}
	again := p.Allocate(4096)
	if &again[:1][0] != &b[0] {
		t.Errorf("a freed buffer was not reused")
	}
	for i, v := range again {
		if v != 0 {
			t.Fatalf("reused buffer not zeroed at %d", i)
		}
	}
	// What the pool keeps is bounded.
	for range 1000 {
		p.Free(make([]byte, 0, 64<<10))
	}
	if p.kept > 1<<20 {
		t.Errorf("pool keeps %d bytes, more than its bound of %d", p.kept, 1<<20)
	}
	// Small and odd-sized buffers are left to the garbage collector.
	p.Free(make([]byte, 100))
	p.Free(make([]byte, 3000))
	if k := len(p.free[minClass]); k != 0 {
		t.Errorf("%d small buffers kept", k)
	}
}
