package httpapi

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's Prometheus metrics, registered by Server.Register.
type metrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
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
}

func (m *metrics) observe(endpoint string, status int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	m.seconds.WithLabelValues(endpoint).Observe(d.Seconds())
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
