package sinks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

// Spec is what a config entry says about a sink, whatever its kind: the fields every
// output.opensearch and output.alerts entry has.
type Spec struct {
	Name      string // the sink's name (already defaulted by the caller)
	Required  bool
	QueueSize int
	// DeadLetters is where what the sink gives up goes: a file path or
	// nats://host:port/subject (OpenDeadLetters); empty means the file <Name>.dead.ndjson.
	DeadLetters string
	// Resolve turns a relative file path into the one meant (config.Config.Resolve); nil
	// leaves it relative to the working directory.
	Resolve  func(path string) string
	Batching config.Batching
	Retry    config.Retry
	Metrics  Metrics
}

// Check validates the spec's batching and retry blocks; path names the config entry in
// messages ("output.opensearch[0]").
func (s *Spec) Check(path string) error {
	b, r := s.Batching, s.Retry
	switch {
	case b.Count < 0:
		return fmt.Errorf("%s.batching.count: must be 0 (no limit) or more, got %d", path, b.Count)
	case b.ByteSize < 0:
		return fmt.Errorf("%s.batching.byte_size: must be 0 (no limit) or more, got %d", path, b.ByteSize)
	case b.Period <= 0:
		return fmt.Errorf("%s.batching.period: must be longer than 0, got %s", path, b.Period)
	case r.MaxRetries < 0:
		return fmt.Errorf("%s.retry.max_retries: must be 0 (no limit) or more, got %d", path, r.MaxRetries)
	case r.Backoff.InitialInterval <= 0:
		return fmt.Errorf("%s.retry.backoff.initial_interval: must be longer than 0, got %s", path, r.Backoff.InitialInterval)
	case r.Backoff.MaxInterval < r.Backoff.InitialInterval:
		return fmt.Errorf("%s.retry.backoff.max_interval: %s is shorter than initial_interval (%s)", path, r.Backoff.MaxInterval, r.Backoff.InitialInterval)
	case r.Backoff.MaxElapsedTime < 0:
		return fmt.Errorf("%s.retry.backoff.max_elapsed_time: must be 0 (no limit) or more, got %s", path, r.Backoff.MaxElapsedTime)
	case s.QueueSize < 0:
		return fmt.Errorf("%s.queue_size: must be 0 (the default) or more, got %d", path, s.QueueSize)
	}
	return nil
}

// FromSpec opens the spec's dead letters and wraps w into a sink. On error it closes w.
func FromSpec(w Writer, s Spec) (pipeline.Sink, error) {
	path := s.DeadLetters
	if path == "" {
		path = s.Name + ".dead.ndjson"
	}
	if s.Resolve != nil && !strings.HasPrefix(path, "nats://") {
		path = s.Resolve(path)
	}
	dead, err := OpenDeadLetters(path)
	if err != nil {
		w.Close(context.Background())
		return nil, err
	}
	return New(w, Options{
		Name: s.Name, Required: s.Required, QueueSize: s.QueueSize, DeadLetters: dead,
		Batching: BatchingFrom(s.Batching), Retry: RetryFrom(s.Retry), Metrics: s.Metrics,
	}), nil
}

// CloseAll closes sinks built before a later one failed, within a few seconds.
func CloseAll(ss []pipeline.Sink) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, s := range ss {
		errs = append(errs, s.Close(ctx))
	}
	return errors.Join(errs...)
}
