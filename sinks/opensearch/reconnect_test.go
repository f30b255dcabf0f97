package opensearch

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
)

// TestReconnectAfterRestart: the cluster's port refuses connections (a node restarting),
// then a node listens there again; the required sink's Flush, waiting meanwhile, succeeds
// with everything indexed.
func TestReconnectAfterRestart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: connections are refused

	d := newDouble(t)
	w, err := New(Config{URLs: []string{"http://" + addr}, InstallTemplate: true})
	if err != nil {
		t.Fatal(err)
	}
	s := sinks.New(w, sinks.Options{Name: "restart", Required: true, Retry: sinks.Retry{InitialInterval: 5 * time.Millisecond, MaxInterval: 50 * time.Millisecond}})
	evs := []*pipeline.Event{sinktest.Event(0, "r1", "A", true), sinktest.Event(1, "r2", "B", false)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		if err := s.WriteBatch(ctx, evs); err != nil {
			done <- err
			return
		}
		done <- s.Flush(ctx)
	}()
	select {
	case err := <-done:
		t.Fatalf("Flush returned %v with the cluster unreachable", err)
	case <-time.After(100 * time.Millisecond): // still waiting, as it must
	}
	// The node comes back on the same address.
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv := &httptest.Server{Listener: l2, Config: &http.Server{Handler: http.HandlerFunc(d.ServeHTTP)}}
	srv.Start()
	defer srv.Close()
	start := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("recovered %v after the node came back", time.Since(start))
	if got := d.Delivered(); len(got) != 2 {
		t.Errorf("indexed %v", got)
	}
	s.Close(ctx)
}
