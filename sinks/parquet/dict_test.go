package parquet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
	pq "github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
)

// TestDictionaryEncoding checks that the sink's own dictionary encoding of the string
// columns writes the very bytes arrow's column writers write with their dictionary encoder
// (same dictionaries, indices, page cuts, statistics and fallbacks to plain), over row groups
// small enough to cut several times and dictionaries that outgrow their page limit.
func TestDictionaryEncoding(t *testing.T) {
	events, features := benchEvents(30_000)
	for i, ev := range events {
		ev.Seq = uint64(i)
		// Long, distinct card and account ids: their dictionaries outgrow the 1 MiB page
		// limit within the larger row group, and the writer falls back to plain encoding.
		ev.Tx.CardID += "-0123456789abcdef0123456789abcdef"
		ev.Tx.AccountID += "-0123456789abcdef0123456789abcdef"
		if i%13 == 0 {
			ev.Tx.CardID = "" // empty strings are values, not nulls
		}
		if i%7 == 0 {
			ev.Tx.CustomerID = ""
			ev.Tx.Country = ""
			ev.Decision.Reasons = nil
		}
	}
	for _, ev := range testEvents(5000, base, 200_000) {
		ev.Err = nil
		events = append(events, ev)
	}
	for i, ev := range events {
		ev.Seq = uint64(i)
		ev.Tx.TS = base.UnixMilli()
		if ev.Features != nil {
			ev.Features = append(ev.Features, make([]float64, len(features))...)[:len(features)]
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "0-x"+spoolExt)
	sf := &spoolFile{path: path, header: spoolHeader{Version: 1, Key: "k.parquet", Features: features}}
	for i := 0; i < len(events); i += 3000 {
		for _, ev := range events[i:min(i+3000, len(events))] {
			sf.pending = appendRow(sf.pending, ev, len(features))
			sf.pendRows++
		}
		if err := sf.flush(dir); err != nil {
			t.Fatal(err)
		}
	}
	sf.f.Close()
	run := func(viaWriter bool, rowGroup int64) []byte {
		writerDict = viaWriter
		defer func() { writerDict = false }()
		sr, err := openSpool(path)
		if err != nil {
			t.Fatal(err)
		}
		defer sr.Close()
		var out bytes.Buffer
		cv := converter{rowGroupBytes: rowGroup, mem: memory.DefaultAllocator}
		rows, err := cv.convert(sr, &out)
		if err != nil {
			t.Fatal(err)
		}
		if rows != int64(len(events)) {
			t.Fatalf("%d rows, want %d", rows, len(events))
		}
		return out.Bytes()
	}
	for _, rowGroup := range []int64{64 << 10, 4 << 20} {
		got, want := run(false, rowGroup), run(true, rowGroup)
		// The pages byte for byte; the footers as metadata, since arrow lists the encodings
		// of a column chunk's pages in map order.
		if g, w := pages(got), pages(want); !bytes.Equal(g, w) {
			i := 0
			for i < min(len(g), len(w)) && g[i] == w[i] {
				i++
			}
			t.Fatalf("row groups of %d bytes: pages differ from the column writer's from byte %d", rowGroup, i)
		}
		if g, w := footer(t, got), footer(t, want); !slices.Equal(g, w) {
			for i := range min(len(g), len(w)) {
				if g[i] != w[i] {
					t.Errorf("row groups of %d bytes:\ngot  %s\nwant %s", rowGroup, g[i], w[i])
				}
			}
			t.Fatalf("row groups of %d bytes: footers differ", rowGroup)
		}
		rdr, err := file.NewParquetReader(bytes.NewReader(got))
		if err != nil {
			t.Fatal(err)
		}
		dict, fallback := 0, 0
		for g := range rdr.NumRowGroups() {
			md := rdr.MetaData().RowGroup(g)
			for c := range md.NumColumns() {
				cc, err := md.ColumnChunk(c)
				if err != nil {
					t.Fatal(err)
				}
				if cc.HasDictionaryPage() {
					dict++
					for _, e := range cc.EncodingStats() {
						// A data page (page types 0 and 3) in plain encoding: the
						// dictionary outgrew its page and the writer fell back.
						if e.Encoding == pq.Encodings.Plain && (e.PageType == 0 || e.PageType == 3) {
							fallback++
							break
						}
					}
				}
			}
		}
		rdr.Close()
		if rdr.NumRowGroups() < 2 && rowGroup < 1<<20 || dict != 14*rdr.NumRowGroups() || rowGroup > 1<<20 && fallback == 0 {
			t.Errorf("row groups of %d bytes: %d row groups, %d dictionary-encoded column chunks, %d fell back to plain", rowGroup, rdr.NumRowGroups(), dict, fallback)
		}
		t.Logf("row groups of %d bytes: %d row groups, %d dictionary column chunks, %d fell back to plain", rowGroup, rdr.NumRowGroups(), dict, fallback)
	}
}

// pages returns a Parquet file without its footer.
func pages(b []byte) []byte {
	if len(b) < 8 {
		return b
	}
	n := int(binary.LittleEndian.Uint32(b[len(b)-8:]))
	return b[:max(0, len(b)-8-n)]
}

// footer describes every column chunk of a Parquet file.
func footer(t *testing.T, b []byte) []string {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	var out []string
	for g := range rdr.NumRowGroups() {
		md := rdr.MetaData().RowGroup(g)
		out = append(out, fmt.Sprintf("row group %d: %d rows, %d bytes", g, md.NumRows(), md.TotalByteSize()))
		for c := range md.NumColumns() {
			cc, err := md.ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			var es []string
			for _, e := range cc.EncodingStats() {
				es = append(es, fmt.Sprintf("%v/%v", e.PageType, e.Encoding))
			}
			sort.Strings(es)
			st := ""
			if s, _ := cc.Statistics(); s != nil {
				e, _ := s.Encode()
				st = fmt.Sprintf("values %d, nulls %d, min %q, max %q", s.NumValues(), s.NullCount(), e.Min, e.Max)
			}
			out = append(out, fmt.Sprintf("row group %d %s: %d values, %d/%d bytes, encodings %v %v, dictionary at %d, data at %d, %s", g, cc.PathInSchema(),
				cc.NumValues(), cc.TotalCompressedSize(), cc.TotalUncompressedSize(), cc.Encodings(), es, cc.DictionaryPageOffset(), cc.DataPageOffset(), st))
		}
	}
	return out
}
