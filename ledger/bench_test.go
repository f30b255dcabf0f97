package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// BenchmarkPost posts batches of 4096 fresh transactions from 5,000 payer accounts to
// 10,000 merchant accounts, all of which exist already. One op is one posted request.
// "sequential" ids grow like tx-0000000001; "random" ids are 16 random hex digits, which
// land anywhere in the tx_id index.
func BenchmarkPost(b *testing.B) {
	b.Run("sequential", func(b *testing.B) { benchmarkPost(b, false, 0) })
	b.Run("random", func(b *testing.B) { benchmarkPost(b, true, 0) })
}

// BenchmarkAtScale is BenchmarkPost on a ledger that holds a million entries already
// (filling it takes about a minute with random ids): with random ids nearly every posting
// now rewrites a page of the tx_id index.
func BenchmarkAtScale(b *testing.B) {
	b.Run("sequential", func(b *testing.B) { benchmarkPost(b, false, 1_000_000) })
	b.Run("random", func(b *testing.B) { benchmarkPost(b, true, 1_000_000) })
}

func benchmarkPost(b *testing.B, randomIDs bool, prefill int) {
	const (
		batch     = 4096
		payers    = 5_000
		merchants = 10_000
	)
	s := openTest(b, "", Options{DefaultLimit: flatLimit(1 << 50)})
	payerIDs := make([]string, payers)
	for i := range payerIDs {
		payerIDs[i] = fmt.Sprintf("acct-%05d", i)
	}
	merchantIDs := make([]string, merchants)
	for i := range merchantIDs {
		merchantIDs[i] = fmt.Sprintf("m-%05d", i)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	seq := 0
	reqs := make([]pipeline.PostRequest, batch)
	fill := func(n int) []pipeline.PostRequest {
		for i := range n {
			seq++
			var id string
			if randomIDs {
				id = strconv.FormatUint(rng.Uint64()|1<<63, 16)
			} else {
				id = fmt.Sprintf("tx-%010d", seq)
			}
			reqs[i] = pipeline.PostRequest{
				TxID: id, TS: 1_700_000_000_000 + int64(seq), Amount: 1 + rng.Int64N(50_000), Currency: eur,
				Payer: payerIDs[rng.IntN(payers)], Payee: merchantIDs[rng.IntN(merchants)],
				Seq: uint64(seq), Model: benchModel, Rules: benchRules,
			}
		}
		return reqs[:n]
	}
	check := func(reqs []pipeline.PostRequest) {
		for i := range reqs {
			if reqs[i].Status != pipeline.LedgerPosted {
				b.Fatalf("request %d: %s %s", i, reqs[i].Status, reqs[i].Reason)
			}
		}
	}
	// Create every account first: the benchmark measures the steady state.
	for i := 0; i < merchants; i += batch {
		r := fill(batch)
		for j := range r {
			r[j].Payer, r[j].Payee = payerIDs[(i+j)%payers], merchantIDs[(i+j)%merchants]
		}
		post(b, s, r...)
	}
	for i := 0; i < prefill; i += batch {
		post(b, s, fill(batch)...)
	}

	b.ReportAllocs()
	measurePosts(b, s, batch, fill, check, nil)
}

// The versions that decide every benchmark posting, as the engine names them.
const (
	benchModel = "sha256:dac5ad5e0f39"
	benchRules = "sha256:21c5cb910e1c"
)

// cpuTime is the CPU time, user and system, the process has used: on a busy machine it
// measures the ledger's own work better than the wall clock does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU returns a function that reads the CPU time, user and system, of a PostgreSQL
// store's server process (its backend), when the server runs on this machine; else nil.
func serverCPU(s pipeline.Ledger) func() time.Duration {
	ps, ok := s.(*PostgresStore)
	if !ok || ps.conn == nil {
		return nil
	}
	path := fmt.Sprintf("/proc/%d/stat", ps.conn.PgConn().PID())
	read := func() (time.Duration, bool) {
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, false
		}
		// The fields after the command name, which is in parentheses: utime and stime are
		// the 12th and 13th, in clock ticks (100 a second on Linux).
		_, rest, ok := strings.Cut(string(data), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 13 {
			return 0, false
		}
		u, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		return time.Duration(u+st) * 10 * time.Millisecond, true
	}
	if _, ok := read(); !ok {
		return nil // a server on another machine
	}
	return func() time.Duration { d, _ := read(); return d }
}

// measurePosts posts b.N fresh requests from fill in batches of batch, timing only Post,
// checks each batch's results, and reports posts/s and CPU nanoseconds per posting: the
// process's, and with server (not nil) the server's. On a machine shared with other work
// the CPU times measure the ledger's own cost better than the wall clock does.
func measurePosts(b *testing.B, s pipeline.Ledger, batch int, fill func(n int) []pipeline.PostRequest, check func([]pipeline.PostRequest), server func() time.Duration) {
	ctx := context.Background()
	var cpu time.Duration
	var srv0 time.Duration
	if server != nil {
		srv0 = server()
	}
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		b.StopTimer()
		r := fill(n)
		c0 := cpuTime()
		b.StartTimer()
		if err := s.Post(ctx, r); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		check(r)
		b.StartTimer()
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	if server != nil {
		// The server works between the batches too (it flushes after COMMIT), so its time
		// is taken over the whole run.
		b.ReportMetric(float64((server()-srv0).Nanoseconds())/float64(b.N), "server-cpu-ns/op")
	}
}
