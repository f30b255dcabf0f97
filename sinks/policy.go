package sinks

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

// Batching says when a batch is sent: at Count items or ByteSize bytes (0: no limit), or,
// for best-effort sinks, Period after its first item. Required sinks send everything at
// each Flush as well.
type Batching struct {
	Count    int
	ByteSize int
	Period   time.Duration // default 1s
}

// BatchingFrom converts the config's batching block.
func BatchingFrom(c config.Batching) Batching {
	return Batching{Count: c.Count, ByteSize: c.ByteSize, Period: time.Duration(c.Period)}
}

func (b *Batching) defaults() {
	if b.Period <= 0 {
		b.Period = time.Second
	}
}

// full reports whether a batch of n items and size bytes must be sent now.
func (b *Batching) full(n, size int) bool {
	return b.Count > 0 && n >= b.Count || b.ByteSize > 0 && size >= b.ByteSize
}

// Retry configures retries: exponential backoff from InitialInterval, doubling up to
// MaxInterval, each wait scaled by a random factor in [0.5, 1.5). A best-effort sink gives an
// item up after MaxRetries retries (0: no limit) or MaxElapsedTime since its first attempt
// (0: no limit); a required sink never gives up on a retryable item.
type Retry struct {
	MaxRetries      int
	InitialInterval time.Duration // default 500ms
	MaxInterval     time.Duration // default 10s
	MaxElapsedTime  time.Duration
}

// RetryFrom converts the config's retry block.
func RetryFrom(c config.Retry) Retry {
	return Retry{
		MaxRetries:      c.MaxRetries,
		InitialInterval: time.Duration(c.Backoff.InitialInterval),
		MaxInterval:     time.Duration(c.Backoff.MaxInterval),
		MaxElapsedTime:  time.Duration(c.Backoff.MaxElapsedTime),
	}
}

func (r *Retry) defaults() {
	if r.InitialInterval <= 0 {
		r.InitialInterval = 500 * time.Millisecond
	}
	if r.MaxInterval <= 0 {
		r.MaxInterval = 10 * time.Second
	}
	r.MaxInterval = max(r.MaxInterval, r.InitialInterval)
}

// Backoff returns the wait before retry number n (1 for the first retry), jittered.
func (r *Retry) Backoff(n int) time.Duration {
	d := r.InitialInterval
	for i := 1; i < n && d < r.MaxInterval; i++ {
		d *= 2
	}
	d = min(d, r.MaxInterval)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// exhausted reports whether an item that has failed n attempts since start is given up
// by a best-effort sink.
func (r *Retry) exhausted(n int, start time.Time) bool {
	return r.MaxRetries > 0 && n > r.MaxRetries || r.MaxElapsedTime > 0 && time.Since(start) >= r.MaxElapsedTime
}

// sleep waits d or until ctx is done, and reports which.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
