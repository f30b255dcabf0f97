package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// BenchmarkVerify verifies a log of realistic records (decisions without features, about
// 330 bytes a line) held in memory, and reports records/s.
func BenchmarkVerify(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "audit.ndjson")
	writeLog(b, path, stream("tx", 0, n), 1000, Options{})
	log, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(log)))
	b.ResetTimer()
	for b.Loop() {
		res, err := Verify(bytes.NewReader(log))
		if err != nil || res.Records != n {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkWrite writes realistic decisions through the Sink API in batches of 1000, each
// flushed: "fsync" with a real fsync per batch (the disk's speed), "nosync" the encoding,
// chaining and write alone.
func BenchmarkWrite(b *testing.B) {
	evs := stream("tx", 0, 1000)
	for _, sync := range []bool{true, false} {
		name := "nosync"
		if sync {
			name = "fsync"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "audit.ndjson"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			if !sync {
				s.sync = func(*os.File) error { return nil }
			}
			ctx := context.Background()
			batch := make([]*pipeline.Event, len(evs))
			copy(batch, evs)
			for b.Loop() {
				if err := s.WriteBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
				if err := s.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(evs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
