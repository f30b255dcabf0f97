package sourcetest

import (
	"context"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// RunEngine restores e from its checkpoint store, runs it over src until the source ends,
// the run fails, or stop (polled every few milliseconds) says to stop it (then it is
// cancelled and drains, with a final checkpoint); it fails the test when none of these
// happens within timeout. It returns the run's error.
func RunEngine(t testing.TB, e *pipeline.Engine, src pipeline.Source, stop func() bool, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := e.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, src) }()
	deadline := time.After(timeout)
	for {
		select {
		case err := <-done:
			return err
		case <-deadline:
			t.Fatal("the engine did not reach its stop condition")
		case <-time.After(2 * time.Millisecond): // polling interval
			if stop() {
				cancel()
				return <-done
			}
		}
	}
}
