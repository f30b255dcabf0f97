package sinks

// Outcome is what happened to items of a sink, for metrics.
type Outcome uint8

// Outcomes counted per sink.
const (
	Written      Outcome = iota // durable in the target
	Retried                     // attempts repeated after a retryable failure (one per item per retry)
	Failed                      // failed attempts, retryable or not (one per item per attempt)
	DeadLettered                // given up and sent to dead letters
)

var outcomeNames = [...]string{"written", "retried", "failed", "dead_lettered"}

// String returns the outcome's name, as used for a metric label.
func (o Outcome) String() string { return outcomeNames[o] }

// Metrics receives a sink's counts. The owner backs it with Prometheus counters such as
// fraudpipe_sink_items_total{sink, outcome}; implementations must be safe for concurrent
// use, since best-effort sinks count from their delivery goroutine.
type Metrics interface {
	Add(sink string, o Outcome, n int)
}

// NopMetrics counts nothing.
type NopMetrics struct{}

// Add does nothing.
func (NopMetrics) Add(string, Outcome, int) {}
