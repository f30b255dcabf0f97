package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

// admin serves /metrics, /healthz and /readyz for operators.
type admin struct {
	srv   *http.Server
	ln    net.Listener
	ready atomic.Bool
}

// newRegistry returns a registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// startAdmin listens on addr and serves the endpoints over plain HTTP until stop.
func startAdmin(addr string, reg *prometheus.Registry, log *slog.Logger) (*admin, error) {
	return startAdminConfig(config.Admin{Listen: addr}, func(p string) string { return p }, reg, log)
}

// startAdminConfig listens on c.Listen and serves the endpoints until stop: over HTTPS
// when c.TLS names a certificate (mutual TLS with a client CA), else plain HTTP. resolve
// finds the TLS files relative to the config file (config.Config.Resolve).
func startAdminConfig(c config.Admin, resolve func(string) string, reg *prometheus.Registry, log *slog.Logger) (*admin, error) {
	tc, err := serverTLS("admin.tls", c.TLS, resolve)
	if err != nil {
		return nil, err
	}
	addr := c.Listen
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin.listen %s: %w", addr, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	a := &admin{ln: ln}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready: restoring state or draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, TLSConfig: tc,
		ErrorLog: stdlog.New(serverErrors{log}, "", 0)}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin endpoints stopped", "err", err)
		}
	}()
	log.Info("admin endpoints", "addr", ln.Addr().String(), "tls", tc != nil, "client_certificates", tc != nil && tc.ClientCAs != nil)
	return a, nil
}

// serverErrors passes the errors net/http logs to log, except failed TLS handshakes (a
// plain-HTTP client, one without a client certificate, a port scanner): the client's
// problem, and not worth a line each.
type serverErrors struct{ log *slog.Logger }

func (e serverErrors) Write(p []byte) (int, error) {
	if msg := strings.TrimSpace(string(p)); !strings.Contains(msg, "TLS handshake error") {
		e.log.Warn("admin endpoints", "err", msg)
	}
	return len(p), nil
}

func (a *admin) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a.srv.Shutdown(ctx)
}

// newLogger returns the logger the config's log block asks for, writing to w.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
