package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sinks"
)

// sinkEnv is what a sink builder gets besides the config.
type sinkEnv struct {
	schema  *pipeline.FeatureSchema
	metrics sinks.Metrics // never nil
}

// sinkBuilder returns the sinks of one kind that a config asks for (none is fine). Each sink
// plug-in registers one from an init function in its own wire_<name>.go file, so adding a
// sink touches no other file of this package.
type sinkBuilder func(cfg *config.Config, env sinkEnv) ([]pipeline.Sink, error)

// sinkBuilders are called in registration order for every engine that build wires.
var sinkBuilders []sinkBuilder

func registerSink(b sinkBuilder) { sinkBuilders = append(sinkBuilders, b) }

// promSinkMetrics counts sink items as fraudpipe_sink_items_total{sink, outcome}.
type promSinkMetrics struct {
	items *prometheus.CounterVec
	mu    sync.Mutex
	cache map[sinkOutcome]prometheus.Counter
}

type sinkOutcome struct {
	sink string
	o    sinks.Outcome
}

func newSinkMetrics(reg prometheus.Registerer) (sinks.Metrics, error) {
	if reg == nil {
		return sinks.NopMetrics{}, nil
	}
	m := &promSinkMetrics{
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudpipe_sink_items_total",
			Help: "Items of each sink by outcome: written (durable in the target), retried, failed (attempts), dead_lettered (given up).",
		}, []string{"sink", "outcome"}),
		cache: map[sinkOutcome]prometheus.Counter{},
	}
	if err := reg.Register(m.items); err != nil {
		return nil, err
	}
	return m, nil
}

// Add counts n items of sink with outcome o.
func (m *promSinkMetrics) Add(sink string, o sinks.Outcome, n int) {
	k := sinkOutcome{sink, o}
	m.mu.Lock()
	c, ok := m.cache[k]
	if !ok {
		c = m.items.WithLabelValues(sink, o.String())
		m.cache[k] = c
	}
	m.mu.Unlock()
	c.Add(float64(n))
}
