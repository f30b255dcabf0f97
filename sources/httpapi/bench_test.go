package httpapi

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// benchDuration is how long each rate of BenchmarkAPILatency sends requests.
const benchDuration = 3 * time.Second

// BenchmarkAPILatency measures the latency of POST /v1/transactions with LoadTest, open
// loop at 1k, 5k and 20k requests/s, against a server and a real engine in this process:
// velocity features (not written out), a decisions file, no ledger (so no group-commit
// delay), no auth, 2 partitions. The load generator shares the machine, so the numbers are
// an upper bound of the server's latency.
//
//	go test -run '^$' -bench BenchmarkAPILatency ./sources/httpapi/
func BenchmarkAPILatency(b *testing.B) {
	for _, rate := range []int{1000, 5000, 20000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			h := newHarness(b, Options{Timeout: 5 * time.Second}, withoutFeatures())
			h.startEngine()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				cpu := processCPU()
				res, err := LoadTest(context.Background(), LoadOptions{
					URL:        h.url + PathTransactions,
					Rate:       float64(rate),
					Duration:   benchDuration,
					AppendBody: AppendLoadBody(fmt.Sprintf("bench-%d-%d-%d", rate, i, time.Now().UnixNano())),
				})
				cpu = processCPU() - cpu
				runtime.ReadMemStats(&after)
				if err != nil {
					b.Fatal(err)
				}
				if res.Errors > 0 {
					b.Logf("%d of %d requests failed (first: %s); statuses %v", res.Errors, res.Count, res.FirstError, res.Statuses)
				}
				b.Logf("rate %d/s: %s", rate, res)
				ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
				b.ReportMetric(ms(res.P50), "p50-ms")
				b.ReportMetric(ms(res.P99), "p99-ms")
				b.ReportMetric(ms(res.P999), "p99.9-ms")
				b.ReportMetric(ms(res.Max), "max-ms")
				b.ReportMetric(float64(res.Count)/res.Elapsed.Seconds(), "req/s")
				b.ReportMetric(float64(res.Errors), "errors")
				// Allocations of the whole process (load generator, server and engine) per
				// request, and the collections they caused.
				b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(max(1, res.Count)), "allocs/req")
				b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(max(1, res.Count)), "B/req")
				b.ReportMetric(float64(after.NumGC-before.NumGC)/res.Elapsed.Seconds(), "gc/s")
				b.ReportMetric(float64(after.PauseTotalNs-before.PauseTotalNs)/1e6, "gc-pause-ms")
				// CPU time of the whole process per request: unlike the latencies, it hardly
				// depends on what else the machine runs.
				b.ReportMetric(float64(cpu.Microseconds())/float64(max(1, res.Count)), "cpu-us/req")
			}
		})
	}
}

// TestLoadTest runs the load generator briefly against a real server and engine: every
// request is answered 200 and the percentiles are ordered.
func TestLoadTest(t *testing.T) {
	h := newHarness(t, Options{Timeout: 10 * time.Second})
	h.startEngine()
	res, err := LoadTest(context.Background(), LoadOptions{URL: h.url + PathTransactions, Rate: 200, Duration: 500 * time.Millisecond, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 100 || res.Errors != 0 || res.Statuses[200] != 100 {
		t.Fatalf("%s; statuses %v, first error %s", res, res.Statuses, res.FirstError)
	}
	if !(res.P50 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max && res.P50 > 0) {
		t.Errorf("percentiles out of order: %s", res)
	}
	if stats := h.stopEngine(); stats.Decided != 100 {
		t.Errorf("engine decided %d, want 100", stats.Decided)
	}
	if _, err := LoadTest(context.Background(), LoadOptions{URL: h.url}); err == nil {
		t.Error("LoadTest without a rate accepted")
	}
}

// BenchmarkAPILatencyExternal measures a decision API running in another process (a
// fraudpipe run with source type http) at the URL in FRAUDPIPE_API_URL, so the load
// generator does not share the server's process and garbage collector:
//
//	fraudpipe run --config examples/http-api.yaml &   # or a config without auth
//	FRAUDPIPE_API_URL=http://127.0.0.1:8080 go test -run '^$' -bench APILatencyExternal ./sources/httpapi/
func BenchmarkAPILatencyExternal(b *testing.B) {
	url := os.Getenv("FRAUDPIPE_API_URL")
	if url == "" {
		b.Skip("FRAUDPIPE_API_URL is not set")
	}
	for _, rate := range []int{1000, 5000, 20000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res, err := LoadTest(context.Background(), LoadOptions{
					URL: url + PathTransactions, Rate: float64(rate), Duration: benchDuration,
					AppendBody: AppendLoadBody(fmt.Sprintf("ext-%d-%d-%d", rate, i, time.Now().UnixNano())),
				})
				if err != nil {
					b.Fatal(err)
				}
				ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
				b.ReportMetric(ms(res.P50), "p50-ms")
				b.ReportMetric(ms(res.P99), "p99-ms")
				b.ReportMetric(ms(res.P999), "p99.9-ms")
				b.ReportMetric(float64(res.Count)/res.Elapsed.Seconds(), "req/s")
				b.ReportMetric(float64(res.Errors), "errors")
			}
		})
	}
}
