package remote

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one remote scorer's Prometheus metrics, labelled scorer=<name> so that
// several remote scorers (a champion and a shadow challenger) share one registry.
type metrics struct {
	callsVec    *prometheus.CounterVec
	calls       [numResults]prometheus.Counter
	duration    prometheus.Histogram
	stateGauge  prometheus.Gauge
	transitions *prometheus.CounterVec
}

func newMetrics(name string) *metrics {
	labels := prometheus.Labels{"scorer": name}
	m := &metrics{
		callsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "fraudpipe_remote_calls_total",
			Help:        "Calls to a remote model server, by result: ok, timeout, error (transport), status (error status), invalid (no score in the answer), rejected (not made: breaker open).",
			ConstLabels: labels,
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "fraudpipe_remote_call_duration_seconds",
			Help:        "Duration of the calls to a remote model server, failed ones included.",
			ConstLabels: labels,
			Buckets:     []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1},
		}),
		stateGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "fraudpipe_remote_breaker_state",
			Help:        "A remote scorer's circuit breaker: 0 closed, 1 open, 2 half-open.",
			ConstLabels: labels,
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "fraudpipe_remote_breaker_transitions_total",
			Help:        "Changes of a remote scorer's circuit breaker, by the state entered.",
			ConstLabels: labels,
		}, []string{"state"}),
	}
	for i, r := range resultNames {
		m.calls[i] = m.callsVec.WithLabelValues(r)
	}
	for _, s := range stateNames {
		m.transitions.WithLabelValues(s)
	}
	return m
}

func (m *metrics) state(s BreakerState) {
	m.stateGauge.Set(float64(s))
	m.transitions.WithLabelValues(s.String()).Inc()
}

// Register registers the scorer's metrics with reg: fraudpipe_remote_calls_total{scorer,
// result}, fraudpipe_remote_call_duration_seconds{scorer},
// fraudpipe_remote_breaker_state{scorer} and
// fraudpipe_remote_breaker_transitions_total{scorer,state}.
func (f *Factory) Register(reg prometheus.Registerer) error {
	m := f.metrics
	for _, c := range []prometheus.Collector{m.callsVec, m.duration, m.stateGauge, m.transitions} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("remote scorer %s: register metrics: %w", f.cfg.Name, err)
		}
	}
	return nil
}
