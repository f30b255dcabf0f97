package parquet

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// benchEvents returns n events shaped like the engine's: 16 features (the velocity scorer's
// with four windows), one hour partition at a time, ids and cards of realistic length.
func benchEvents(n int) ([]*pipeline.Event, []string) {
	features := []string{"amount", "is_weekend", "is_night", "secs_since_last"}
	for _, w := range []string{"1h", "1d", "7d", "30d"} {
		features = append(features, "card_count_"+w, "card_mean_amount_"+w, "card_distinct_merchants_"+w)
	}
	evs := testEvents(n, base, 200_000)
	for i, ev := range evs {
		ev.Err = nil
		ev.Tx.ID = fmt.Sprintf("tx-2026-11-25-%012d", i)
		ev.Tx.CardID = fmt.Sprintf("card-%08d", i*7919%100_000)
		ev.Tx.AccountID = fmt.Sprintf("acct-%08d", i*7919%100_000)
		ev.Tx.MerchantID = fmt.Sprintf("merchant-%05d", i%5000)
		ev.Features = make([]float64, len(features))
		for j := range ev.Features {
			ev.Features[j] = float64((i + j) % 97)
		}
	}
	return evs, features
}

// BenchmarkSink measures the whole sink on one goroutine's worth of work: WriteBatch in
// engine-sized batches, a Flush (write and fsync of the spool) every 20 batches, the
// conversion to Parquet and the write to a local directory. Run with -cpu 1 for rows/s per
// core: the uploader then shares the one core with the writer.
func BenchmarkSink(b *testing.B) {
	for _, nfeat := range []int{16, 0} {
		b.Run(fmt.Sprintf("features=%d", nfeat), func(b *testing.B) { benchSink(b, nfeat) })
	}
}

// rowGroupBytes is the benchmark's row group target: with the 64 MiB file roll, four row
// groups a file.
const rowGroupBytes = 16 << 20

func benchSink(b *testing.B, nfeat int) {
	events, features := benchEvents(200_000)
	features = features[:nfeat]
	dir := b.TempDir()
	s, err := New(Options{Dest: Dir{Root: filepath.Join(dir, "out")}, SpoolDir: filepath.Join(dir, "spool"), Features: features,
		RollBytes: 64 << 20, RowGroupBytes: rowGroupBytes})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var peak uint64
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapInuse // the benchmark's own events
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i, n := 0, 0; n < b.N; i++ {
		batch := min(512, b.N-n)
		lo := (n) % len(events)
		hi := min(lo+batch, len(events))
		for j := lo; j < hi; j++ {
			events[j].Seq = uint64(n + j - lo) // a fresh position each lap
		}
		if err := s.WriteBatch(ctx, events[lo:hi]); err != nil {
			b.Fatal(err)
		}
		n += hi - lo
		if i%20 == 19 {
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		if i%200 == 199 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "rows/cpu-s")
	b.ReportMetric(float64(peak-min(peak, baseline))/(1<<20), "peak-heap-MiB")
	if st := s.Stats(); st.Rows != int64(b.N) {
		b.Fatalf("%d rows written, want %d", st.Rows, b.N)
	}
}

// BenchmarkConvert measures the conversion of a rolled spool file to Parquet alone (read
// back, encode, compress; the bytes are counted, not written), with each codec: the part
// of BenchmarkSink that the codec and the column writers decide.
func BenchmarkConvert(b *testing.B) {
	events, features := benchEvents(200_000)
	dir := b.TempDir()
	path := filepath.Join(dir, "0-x"+spoolExt)
	sf := &spoolFile{path: path, header: spoolHeader{Version: 1, Key: "k.parquet", Features: features}}
	for i := 0; i < len(events); i += 10240 {
		for _, ev := range events[i:min(i+10240, len(events))] {
			sf.pending = appendRow(sf.pending, ev, len(features))
			sf.pendRows++
		}
		if err := sf.flush(dir); err != nil {
			b.Fatal(err)
		}
	}
	sf.f.Close()
	events = nil
	for _, c := range []Compression{CompressionZstd, CompressionSnappy} {
		b.Run(string(c), func(b *testing.B) {
			cv := converter{rowGroupBytes: rowGroupBytes, mem: newBufferPool(rowGroupBytes + poolSlack), compression: c}
			var size, rows int64
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for rows < int64(b.N) {
				sr, err := openSpool(path)
				if err != nil {
					b.Fatal(err)
				}
				var w byteCounter
				n, err := cv.convert(sr, &w)
				sr.Close()
				if err != nil {
					b.Fatal(err)
				}
				rows += n
				size = int64(w)
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
			b.ReportMetric(float64(size)/200_000, "B/row")
		})
	}
}

// byteCounter counts the bytes written to it.
type byteCounter int64

func (c *byteCounter) Write(p []byte) (int, error) {
	*c += byteCounter(len(p))
	return len(p), nil
}

// cpuTime is the CPU time (user and system) the process has used: rows per CPU second is
// the rate per core, whatever else the machine runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
