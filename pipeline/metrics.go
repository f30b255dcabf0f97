package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus metrics, named fraudpipe_<subsystem>_<what>_<unit>.
// Labels are of low cardinality: outcomes, reason codes, ledger statuses; never ids.
type Metrics struct {
	events      prometheus.Counter
	decisions   *prometheus.CounterVec
	ledger      *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	late        prometheus.Counter
	watermark   prometheus.Gauge
	ckpts       *prometheus.CounterVec
	ckptSeconds prometheus.Histogram
	ckptBytes   prometheus.Gauge
	ledgerBatch prometheus.Histogram
	flushSecs   prometheus.Histogram
}

// NewMetrics creates the engine's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraudpipe_engine_events_total", Help: "Input messages that went through the engine (decided or dead-lettered).",
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudpipe_engine_decisions_total", Help: "Transactions decided, by outcome.",
		}, []string{"outcome"}),
		ledger: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudpipe_ledger_results_total", Help: "Decisions by what the ledger did with them.",
		}, []string{"status"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudpipe_engine_dead_letters_total", Help: "Refused input messages, by reason code.",
		}, []string{"reason"}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraudpipe_engine_late_events_total", Help: "Transactions later than the allowed lateness: decided, not added to state.",
		}),
		watermark: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fraudpipe_engine_watermark_seconds", Help: "The engine watermark, Unix seconds of event time.",
		}),
		ckpts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudpipe_checkpoint_total", Help: "Checkpoints, by result: written, failed, skipped (the previous one still in flight).",
		}, []string{"result"}),
		ckptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fraudpipe_checkpoint_duration_seconds", Help: "Time from a checkpoint's barrier to its manifest being written.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		ckptBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fraudpipe_checkpoint_size_bytes", Help: "Size of the last checkpoint written.",
		}),
		ledgerBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fraudpipe_ledger_commit_duration_seconds", Help: "Time of one ledger group commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		flushSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fraudpipe_sink_flush_duration_seconds", Help: "Time to flush every sink before acknowledging.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	for _, o := range outcomeNames {
		m.decisions.WithLabelValues(o)
	}
	for _, st := range ledgerNames {
		m.ledger.WithLabelValues(st)
	}
	for _, r := range []string{"written", "failed", "skipped"} {
		m.ckpts.WithLabelValues(r)
	}
	reg.MustRegister(m.events, m.decisions, m.ledger, m.deadLetters, m.late, m.watermark, m.ckpts, m.ckptSeconds, m.ckptBytes, m.ledgerBatch, m.flushSecs)
	return m
}
