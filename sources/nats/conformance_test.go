package nats

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sources/sourcetest"
)

// TestConformance runs the source conformance suite over one embedded server, a new stream
// (in memory) for each subtest, unpartitioned and partitioned. Each source dials its own
// connection, so Close has all of it to wind down.
func TestConformance(t *testing.T) {
	e, _, js := testServer(t)
	var streams atomic.Int64
	harness := func(partitions int) sourcetest.Harness {
		return sourcetest.Harness{
			Positions: true,
			Committer: true,
			New: func(t *testing.T) sourcetest.Target {
				n := streams.Add(1)
				so := StreamOptions{Name: fmt.Sprintf("CT%d", n), Subject: fmt.Sprintf("ct%d", n), Partitions: partitions, MemoryStorage: true}
				ensure(t, js, so)
				return sourcetest.Target{
					Publish: func(t *testing.T, lines [][]byte) {
						body := append(bytes.Join(lines, []byte("\n")), '\n')
						st, err := Publish(context.Background(), js, bytes.NewReader(body), PublishOptions{Subject: so.Subject, Partitioned: partitions > 0})
						if err != nil {
							t.Fatal(err)
						}
						if st.Published != int64(len(lines)) {
							t.Fatalf("published %d of %d lines: %+v", st.Published, len(lines), st)
						}
					},
					Open: func(t *testing.T) pipeline.Source {
						s, err := Open(context.Background(), Options{URL: e.ClientURL(), Stream: so.Name, FetchBatch: 16})
						if err != nil {
							t.Fatal(err)
						}
						return s
					},
					// The stream and its durable consumer run goroutines in the server.
					Release: func() {
						if err := js.DeleteStream(context.Background(), so.Name); err != nil {
							t.Errorf("delete stream %s: %v", so.Name, err)
						}
					},
				}
			},
		}
	}
	t.Run("unpartitioned", func(t *testing.T) { sourcetest.Run(t, harness(0)) })
	t.Run("partitioned", func(t *testing.T) { sourcetest.Run(t, harness(3)) })
}
