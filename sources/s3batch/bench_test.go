package s3batch

import (
	"context"
	"errors"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// benchRead reads every object under the prefix b.N times and reports rows per second
// through ReadBatch, from the in-process S3 server.
func benchRead(b *testing.B, key string, data []byte, rows int) {
	c := newTestClient(b)
	put(b, c, key, data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	n := 0
	for range b.N {
		s := openSource(b, c, Options{})
		for {
			msgs, ack, err := s.ReadBatch(context.Background())
			if errors.Is(err, pipeline.ErrEndOfInput) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += len(msgs)
			ack(context.Background(), nil)
		}
		s.Close()
	}
	if n != rows*b.N {
		b.Fatalf("read %d rows, want %d", n, rows*b.N)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkNDJSON(b *testing.B) {
	const rows = 50_000
	benchRead(b, "in/bench.ndjson", ndjson(makeTxs("b", rows)), rows)
}

func BenchmarkParquet(b *testing.B) {
	const rows = 50_000
	benchRead(b, "in/bench.parquet", parquetFile(b, makeTxs("b", rows), false, 8192), rows)
}
