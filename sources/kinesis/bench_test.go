package kinesis

import (
	"context"
	"testing"
	"time"
)

// BenchmarkSource measures records a second through ReadBatch from a 4-shard stream of the
// kinesalite emulator, filled before the timer starts (the put rate is reported too). The
// emulator, a single Node.js process, is the limit, not the source.
func BenchmarkSource(b *testing.B) {
	e := startEmulator(b)
	e.createStream(b, "bench", 4)
	ls := make([][]byte, b.N)
	for i := range ls {
		ls[i] = txLine(i, 1000)
	}
	start := time.Now()
	if err := Put(context.Background(), e.client, "bench", ls, nil); err != nil {
		b.Fatal(err)
	}
	putRate := float64(b.N) / time.Since(start).Seconds()
	src, err := Open(context.Background(), Options{Stream: "bench", Client: e.client})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	b.ResetTimer()
	start = time.Now()
	n := 0
	for n < b.N {
		msgs, _, err := src.ReadBatch(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		n += len(msgs)
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("read %d of %d records in 5 minutes", n, b.N)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
	b.ReportMetric(putRate, "put_records/s")
}
