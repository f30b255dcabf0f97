package httpapi

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// endpoints are the values of the endpoint label.
var endpoints = [...]string{"transactions", "batch", "get", "other"}

// metrics are the API's Prometheus metrics, registered by Server.Register. The children of
// each endpoint are looked up once, not per request.
type metrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec

	observers [len(endpoints)]prometheus.Observer
	// counters[endpoint][status-100] is filled on the first answer with that status.
	counters [len(endpoints)][500]atomic.Pointer[prometheus.Counter]
}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudpipe_api_requests_total",
			Help: "Requests to the decision API, by endpoint and HTTP status code.",
		}, []string{"endpoint", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fraudpipe_api_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, by endpoint.",
			Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}, []string{"endpoint"}),
	}
	for i, e := range endpoints {
		m.observers[i] = m.seconds.WithLabelValues(e)
	}
	return m
}

func endpointIndex(endpoint string) int {
	for i, e := range endpoints {
		if e == endpoint {
			return i
		}
	}
	return len(endpoints) - 1
}

func (m *metrics) observe(endpoint string, status int, d time.Duration) {
	i := endpointIndex(endpoint)
	m.observers[i].Observe(d.Seconds())
	if status < 100 || status >= 600 {
		m.requests.WithLabelValues(endpoints[i], strconv.Itoa(status)).Inc()
		return
	}
	slot := &m.counters[i][status-100]
	c := slot.Load()
	if c == nil {
		c = new(prometheus.Counter)
		*c = m.requests.WithLabelValues(endpoints[i], strconv.Itoa(status))
		slot.Store(c)
	}
	(*c).Inc()
}

// requestLog logs refused requests at debug level: never a token or a body.
type requestLog struct {
	log *slog.Logger
}

func (l *requestLog) refused(r *http.Request, what, why string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	l.log.Debug("request refused", "what", what, "why", why, "remote", host, "path", r.URL.Path)
}
