package parquet

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
)

// TestConformance runs the sink conformance suite. The sink's durable target is its spool
// plus the destination: a row is delivered once a Flush put it in the spool, and stays
// delivered when its file moves to the destination. Neither can be taken down from the
// test, and nothing is ever refused, so the outage and dead-letter tests skip.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T, dead pipeline.Sink) sinktest.Instance {
		dir := t.TempDir()
		spool, out := filepath.Join(dir, "spool"), filepath.Join(dir, "out")
		s, err := New(Options{Dest: Dir{Root: out}, SpoolDir: spool, RollBytes: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return sinktest.Instance{Sink: s, Delivered: func() []string { return delivered(t, spool, out) }}
	})
}

// delivered lists the transaction ids in the objects, then those in the spool (newer), each
// in file order. The spool is read first: a file removed from it before it was read is in
// the objects already, and one uploaded between the two looks is listed once.
func delivered(t *testing.T, spool, out string) []string {
	var spooled, ids []string
	logs, _ := listSpool(spool)
	for _, p := range logs {
		sr, err := openSpool(p)
		if err != nil {
			continue
		}
		var r row
		for {
			block, n, err := sr.next()
			if err != nil {
				break
			}
			d := rowDecoder{b: block}
			for range n {
				if d.next(&r, len(sr.header.Features)) != nil {
					break
				}
				spooled = append(spooled, string(r.id))
			}
		}
		sr.Close()
	}
	var objs []string
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".parquet" {
			objs = append(objs, p)
		}
		return nil
	})
	sort.Strings(objs) // names sort by the first row's sequence number
	for _, p := range objs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := readParquet(t, b, 0)
		for _, r := range rows {
			ids = append(ids, r.id)
		}
	}
	inObjects := map[string]bool{}
	for _, id := range ids {
		inObjects[id] = true
	}
	for _, id := range spooled {
		if !inObjects[id] {
			ids = append(ids, id)
		}
	}
	return ids
}
