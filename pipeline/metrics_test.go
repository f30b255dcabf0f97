package pipeline

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// metricValue sums the samples of a gathered metric whose labels include want.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func TestEngineMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	schema := NewFeatureSchema()
	schema.Declare("card_count")
	lines := append(manyLines(300), []byte(`{"id":`), []byte(`not json`))
	l := &memLedger{limit: 1 << 40, balances: map[string]int64{}, posted: map[string]bool{}}
	e, _ := NewEngine(EngineOptions{Schema: schema, Scorers: []ScorerFactory{&countFactory{}}, Ledger: l, Sinks: []Sink{&collectSink{}}, Metrics: NewMetrics(reg)})
	if err := e.Run(context.Background(), &sliceSource{lines: lines, batch: 16}); err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fraudpipe_engine_events_total", nil, 302},
		{"fraudpipe_engine_decisions_total", nil, 300},
		{"fraudpipe_engine_decisions_total", map[string]string{"outcome": "review"}, float64(st.ByOutcome[Review])},
		{"fraudpipe_engine_decisions_total", map[string]string{"outcome": "decline"}, float64(st.ByOutcome[Decline])},
		{"fraudpipe_ledger_results_total", map[string]string{"status": "posted"}, float64(st.ByLedger[LedgerPosted])},
		{"fraudpipe_engine_dead_letters_total", map[string]string{"reason": "invalid_json"}, 2},
	}
	for _, c := range checks {
		if got := metricValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if st.ByOutcome[Review] == 0 || st.ByLedger[LedgerPosted] == 0 {
		t.Fatalf("the stream exercised too little: %+v", st)
	}
	if wm := metricValue(t, reg, "fraudpipe_engine_watermark_seconds", nil); wm != float64(st.Watermark)/1000 {
		t.Errorf("watermark gauge %v, stats %d", wm, st.Watermark)
	}
	if n := metricValue(t, reg, "fraudpipe_ledger_commit_duration_seconds", nil); n == 0 {
		t.Error("no ledger commit observed")
	}
}
