package nats

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkSource reads 200k pre-published transactions through ReadBatch, with a new
// durable consumer for each pass, over loopback TCP and over an in-process connection.
func BenchmarkSource(b *testing.B) {
	const n = 200_000
	e, err := StartEmbedded(EmbeddedOptions{StoreDir: b.TempDir(), Port: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Shutdown()
	tcp, err := nats.Connect(e.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer tcp.Close()
	inproc, err := e.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer inproc.Close()
	js, err := jetstream.New(inproc)
	if err != nil {
		b.Fatal(err)
	}
	ensure(b, js, StreamOptions{MemoryStorage: true})
	publishLines(b, js, genLines(n, 1000), false)

	pass := 0
	for _, c := range []struct {
		conn  string
		nc    *nats.Conn
		batch int
		ack   bool // acknowledge every batch, as the engine does without checkpoints
	}{
		{"tcp", tcp, 512, false}, {"tcp", tcp, 2048, false}, {"tcp", tcp, 8192, false},
		{"tcp", tcp, 2048, true}, {"inproc", inproc, 2048, false},
	} {
		name := fmt.Sprintf("%s/batch=%d", c.conn, c.batch)
		if c.ack {
			name += "/ack"
		}
		b.Run(name, func(b *testing.B) {
			var read int
			cpu0 := cpuTime()
			for b.Loop() {
				pass++
				s, err := Open(context.Background(), Options{Conn: c.nc, Durable: fmt.Sprintf("bench-%d", pass), FetchBatch: c.batch, MaxAckPending: -1, FetchWait: time.Second})
				if err != nil {
					b.Fatal(err)
				}
				for got := 0; got < n; {
					msgs, ack, err := s.ReadBatch(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					if len(msgs) == 0 {
						b.Fatalf("stalled after %d of %d", got, n)
					}
					got += len(msgs)
					read += len(msgs)
					if c.ack {
						if err := ack(context.Background(), nil); err != nil {
							b.Fatal(err)
						}
					}
				}
				s.Close()
			}
			b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "msgs/s")
			// CPU time of the whole process (server included) per message: steadier than
			// msgs/s on a machine shared with other work.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(read), "cpu-ns/msg")
		})
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
