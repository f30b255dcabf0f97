package pipeline

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

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

	stage       *prometheus.HistogramVec // per batch: decode, score, ledger, sink
	stages      [numStages]prometheus.Observer
	latency     prometheus.Histogram
	queue       *prometheus.GaugeVec
	queues      [numQueues]prometheus.Gauge
	reasons     *prometheus.CounterVec
	scores      prometheus.Histogram
	ckptLast    prometheus.Gauge
	watermarkMs atomic.Int64             // the watermark for the lag gauge, Unix ms; 0: none yet
	sinkFlush   *prometheus.HistogramVec // per sink
	feedback    *prometheus.CounterVec
	chargebacks *prometheus.CounterVec
}

// chargebackNames label fraudpipe_ledger_chargebacks_total by the LedgerStatus answered.
var chargebackNames = [...]string{"not_posted", "reversed", "rejected", "duplicate"}

// The stages whose time per batch fraudpipe_stage_duration_seconds records.
const (
	stageDecode = iota
	stageScore
	stageLedger
	stageSink
	numStages
)

var stageNames = [numStages]string{"decode", "score", "ledger", "sink"}

// The queues whose depth fraudpipe_queue_depth samples.
const (
	queueDecode = iota
	queuePartition
	queueLedger
	queueSink
	numQueues
)

var queueNames = [numQueues]string{"decode", "partition", "ledger", "sink"}

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
	m.stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "fraudpipe_stage_duration_seconds", Help: "Time a batch spends in a stage: decode (parsing), score (routing to the partitions until every one scored it), ledger (waiting for and taking part in a group commit), sink (written until flushed).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"stage"})
	for i, n := range stageNames {
		m.stages[i] = m.stage.WithLabelValues(n)
	}
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "fraudpipe_engine_latency_seconds", Help: "Time from reading a batch to every sink having flushed it (and its source being acknowledged).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	m.queue = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fraudpipe_queue_depth", Help: "Batches waiting in front of a stage, sampled once a batch; full queues mean the stage after them is the bottleneck.",
	}, []string{"queue"})
	for i, n := range queueNames {
		m.queues[i] = m.queue.WithLabelValues(n)
	}
	m.reasons = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fraudpipe_engine_reasons_total", Help: "Reason codes given in decisions (rule:<id>, model:..., ledger:...), one per decision that names it.",
	}, []string{"reason"})
	m.scores = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "fraudpipe_model_score", Help: "Distribution of the model's fraud scores.",
		Buckets: prometheus.LinearBuckets(0.05, 0.05, 19),
	})
	m.ckptLast = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fraudpipe_checkpoint_last_success_timestamp_seconds", Help: "When the newest checkpoint was written, Unix seconds; 0 before the first.",
	})
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fraudpipe_engine_watermark_lag_seconds", Help: "Wall-clock time minus the engine watermark: how far behind real time the decided stream is (large in a replay of old data).",
	}, func() float64 {
		wm := m.watermarkMs.Load()
		if wm == 0 {
			return 0
		}
		return float64(time.Now().UnixMilli()-wm) / 1000
	})
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fraudpipe_build_info", Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	m.feedback = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fraudpipe_engine_feedback_total", Help: "Feedback events applied to the delayed-label features, by verdict (fraud true or false).",
	}, []string{"fraud"})
	m.chargebacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fraudpipe_ledger_chargebacks_total", Help: "Fraud feedback by what the ledger did: reversed, not_posted (the payment was declined), duplicate (reversed before), rejected.",
	}, []string{"result"})
	for _, r := range chargebackNames {
		m.chargebacks.WithLabelValues(r)
	}
	m.sinkFlush = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "fraudpipe_sink_duration_seconds", Help: "Time one sink took to flush (make durable) what was written to it since its last flush; the sink stage waits for the slowest.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"sink"})
	reg.MustRegister(m.feedback, m.chargebacks, m.sinkFlush)
	reg.MustRegister(m.stage, m.latency, m.queue, m.reasons, m.scores, m.ckptLast, lag, build)
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
