// Package httpapi is the synchronous decision API: payment systems POST a transaction and
// get its decision in the answer, made by the same engine and state as the stream.
//
// A Server is a pipeline.Source whose messages are the requests waiting for a decision, and
// a pipeline.Responder: the engine answers each request once the decision is durable in
// every sink. A request not answered when the process dies was never acknowledged; its
// client retries it with the same transaction id and gets the decision once, whichever
// attempt the engine decided.
package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/prometheus/client_golang/prometheus"
)

// Paths served.
const (
	PathTransactions = "/v1/transactions"
	PathBatch        = "/v1/transactions/batch"
)

// Reason codes of the API's own errors; a refused transaction carries the pipeline's
// dead-letter reason codes (pipeline.ReasonBadAmount, ...).
const (
	ReasonNotFound         = "not_found"
	ReasonMethodNotAllowed = "method_not_allowed"
	ReasonUnsupportedType  = "unsupported_media_type"
	ReasonTooLarge         = "too_large"
	ReasonUnauthorized     = "unauthorized"
	ReasonRateLimited      = "rate_limited"
	ReasonTimeout          = "timeout"
	ReasonUnavailable      = "unavailable"
)

// Server is the HTTP decision API. It is the engine's pipeline.Source (also a
// pipeline.Responder and pipeline.Positioner) and an http.Handler.
type Server struct {
	opts     Options
	verifier *verifier // nil: no authentication
	limiter  *limiter  // nil: no rate limit
	reg      *registry
	queue    chan *call
	hs       *http.Server
	metrics  *metrics
	log      *requestLog

	ridPrefix string
	ridSeq    atomic.Uint64

	mu   sync.Mutex
	ln   net.Listener
	tls  bool
	done chan struct{} // closed once Shutdown or Close finished

	closing  atomic.Bool // Shutdown began: refuse new transactions
	stopped  atomic.Bool // the engine stopped reading: refuse new transactions
	ended    atomic.Bool // ReadBatch returns ErrEndOfInput
	endCh    chan struct{}
	endOnce  sync.Once
	doneOnce sync.Once

	// owned by the engine's reader goroutine (ReadBatch)
	readCtx    context.Context
	fetchTimer *time.Timer
	batchCalls []*call
	batchPos   []int64

	// owned by the engine's sink stage (Respond)
	respCalls []*call
	respCache []bool
	respBuf   []byte
}

// New builds a server from o: it checks the options and loads the TLS certificate and
// the JWKS file, but does not listen yet (see Listen and Serve).
func New(o Options) (*Server, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	var prefix [6]byte
	rand.Read(prefix[:])
	s := &Server{
		opts:       o,
		reg:        newRegistry(o.IdempotencyCache),
		queue:      make(chan *call, 4*o.BatchSize+o.MaxBatch),
		metrics:    newMetrics(),
		log:        &requestLog{log: o.Logger},
		ridPrefix:  hex.EncodeToString(prefix[:]) + "-",
		done:       make(chan struct{}),
		endCh:      make(chan struct{}),
		fetchTimer: time.NewTimer(time.Hour),
	}
	s.fetchTimer.Stop()
	if o.Auth.enabled() {
		if s.verifier, err = newVerifier(o.Auth); err != nil {
			return nil, err
		}
	}
	if o.RateLimit > 0 {
		s.limiter = newLimiter(o.RateLimit, o.Burst)
	}
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// Connection-level failures (TLS handshakes of scanners, resets) are not worth more.
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("http api: TLS certificate %s and key %s: %w", o.TLSCert, o.TLSKey, err)
		}
		s.hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.tls = true
	}
	return s, nil
}

// Listen binds the listen address, so that Addr reports the port chosen for ":0" before
// Serve runs. Serve calls it when it was not called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("http api: listen on %s: %w", s.opts.Listen, err)
	}
	s.ln = ln
	return nil
}

// Addr is the address the server listens on: the bound one (with the port chosen for
// ":0") once Listen or Serve ran, the configured one before.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.opts.Listen
}

// URL is the base URL of the API, from Addr: http://host:port or https://host:port.
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Serve answers requests until ctx is cancelled or Shutdown or Close is called. On
// cancellation it shuts down as Shutdown does, allowing in-flight requests Timeout plus
// five seconds. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.opts.Logger.Info("decision API listening", "addr", s.URL(), "auth", s.verifier != nil, "rate_limit", s.opts.RateLimit)
	errc := make(chan error, 1)
	go func() {
		if s.tls {
			errc <- s.hs.ServeTLS(s.ln, "", "")
		} else {
			errc <- s.hs.Serve(s.ln)
		}
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			<-s.done
			return nil
		}
		return fmt.Errorf("http api: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout+5*time.Second)
		defer cancel()
		err := s.Shutdown(sctx)
		<-errc
		return err
	}
}

// ListenAndServe is Serve, named as net/http names it.
func (s *Server) ListenAndServe(ctx context.Context) error { return s.Serve(ctx) }

// Shutdown stops accepting connections and waits, up to ctx, for the requests in flight:
// the engine keeps deciding them meanwhile. Then it ends the input, so that the engine's
// Run returns once it has drained. When ctx expires first, requests still waiting are
// answered 503 and their connections closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	err := s.hs.Shutdown(ctx)
	if err != nil {
		// Answer what the engine has not taken with 503, give those handlers a moment to
		// write it, then cut off the rest.
		s.stopReading("the server is shutting down")
		grace, cancel := context.WithTimeout(context.Background(), time.Second)
		s.hs.Shutdown(grace)
		cancel()
		s.hs.Close()
		err = fmt.Errorf("http api: shutdown: requests still in flight were cut off: %w", err)
	}
	s.endInput()
	s.closeListener()
	s.doneOnce.Do(func() { close(s.done) })
	s.opts.Logger.Info("decision API stopped", "addr", s.Addr())
	return err
}

// closeListener closes a listener that Serve never used (Serve's own is closed by the
// http.Server).
func (s *Server) closeListener() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
	}
}

// Close closes the listener and every connection at once, ends the input and answers 503
// to every request still waiting, including those the engine took and did not answer:
// call it after the engine's Run returned.
func (s *Server) Close() error {
	s.closing.Store(true)
	err := s.hs.Close()
	s.closeListener()
	s.endInput()
	s.stopReading("the server is closed")
	s.reg.failTaken(http.StatusServiceUnavailable, &apiError{"not decided", ReasonUnavailable,
		"the decision engine stopped before deciding it; retry with the same id"})
	s.doneOnce.Do(func() { close(s.done) })
	return err
}

func (s *Server) endInput() {
	s.endOnce.Do(func() { s.ended.Store(true); close(s.endCh) })
}

// ReloadJWKS reads the JWKS file again (after a key rotation, on SIGHUP). On error the keys
// in use stay in force.
func (s *Server) ReloadJWKS() error {
	if s.verifier == nil || s.verifier.jwksFile == "" {
		return errors.New("http api: no JWKS file is configured")
	}
	return s.verifier.reload()
}

// Register adds the API's metrics to reg (see docs/api.md).
func (s *Server) Register(reg prometheus.Registerer) error {
	return errors.Join(reg.Register(s.metrics.requests), reg.Register(s.metrics.seconds))
}

// ServeHTTP routes a request: the API's endpoints, behind authentication and the rate
// limit. Every answer is JSON and carries X-Request-Id.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	w.Header()["X-Request-Id"] = s.requestID(r)
	endpoint, status := s.serve(w, r)
	s.metrics.observe(endpoint, status, time.Since(began))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) (string, int) {
	const prefix = PathTransactions + "/"
	path := r.URL.Path
	var endpoint, id string
	switch {
	case path == PathTransactions:
		endpoint = "transactions"
		if r.Method != http.MethodPost {
			return endpoint, methodNotAllowed(w, r, "POST")
		}
	case path == PathBatch && r.Method == http.MethodPost:
		endpoint = "batch"
	case strings.HasPrefix(path, prefix) && len(path) > len(prefix) && !strings.Contains(path[len(prefix):], "/"):
		endpoint, id = "get", path[len(prefix):]
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if path == PathBatch {
				return "batch", methodNotAllowed(w, r, "GET, HEAD, POST")
			}
			return endpoint, methodNotAllowed(w, r, "GET, HEAD")
		}
	default:
		return "other", reply(w, http.StatusNotFound, errorJSON("no such endpoint", ReasonNotFound,
			r.Method+" "+truncate(path, 200)+" is not part of the API: POST "+PathTransactions+", POST "+PathBatch+" or GET "+PathTransactions+"/{id}"))
	}
	sub, status := s.authenticate(w, r)
	if status != 0 {
		return endpoint, status
	}
	if s.limiter != nil {
		if ok, wait := s.limiter.allow(clientID(r, sub)); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
			return endpoint, reply(w, http.StatusTooManyRequests, errorJSON("too many requests", ReasonRateLimited,
				fmt.Sprintf("over %g requests per second (burst %d) for this client; wait Retry-After seconds", s.opts.RateLimit, s.opts.Burst)))
		}
	}
	switch endpoint {
	case "transactions":
		return endpoint, s.handleOne(w, r)
	case "batch":
		return endpoint, s.handleBatch(w, r)
	default:
		return endpoint, s.handleGet(w, id)
	}
}

// authenticate checks the bearer token and returns its subject ("" without
// authentication).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (string, int) {
	var sub string
	if s.verifier != nil {
		var err error
		sub, err = s.verifier.verify(r.Header.Get("Authorization"))
		if err != nil {
			desc := strings.ReplaceAll(err.Error(), `"`, `'`)
			w.Header().Set("WWW-Authenticate", `Bearer realm="fraudpipe", error="invalid_token", error_description="`+desc+`"`)
			s.log.refused(r, "invalid token", err.Error())
			return "", reply(w, http.StatusUnauthorized, errorJSON("unauthorized", ReasonUnauthorized, err.Error()))
		}
	}
	return sub, 0
}

// clientID is the client's id for the rate limit: the token's subject, or the remote IP
// without authentication (or without a subject).
func clientID(r *http.Request, sub string) string {
	if sub != "" {
		return "sub:" + sub
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

// requestID is the value of the answer's X-Request-Id header: the request's own when it is
// a single sane one (its header value is reused as it is), or a new one.
func (s *Server) requestID(r *http.Request) []string {
	if v := r.Header["X-Request-Id"]; len(v) == 1 && v[0] != "" && len(v[0]) <= 128 && printableASCII(v[0]) {
		return v
	}
	return []string{s.ridPrefix + strconv.FormatUint(s.ridSeq.Add(1), 36)}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) int {
	w.Header().Set("Allow", allow)
	return reply(w, http.StatusMethodNotAllowed, errorJSON("method not allowed", ReasonMethodNotAllowed,
		r.Method+" is not allowed on "+truncate(r.URL.Path, 200)+"; use "+allow))
}

// apiError is an error answer: {"error":msg,"reason":code,"detail":detail}.
type apiError struct {
	msg, reason, detail string
}

func (e *apiError) json() []byte { return errorJSON(e.msg, e.reason, e.detail) }

func errorJSON(msg, reason, detail string) []byte {
	b := make([]byte, 0, 64+len(msg)+len(detail))
	b = append(b, `{"error":`...)
	b = pipeline.AppendJSONString(b, msg)
	b = append(b, `,"reason":`...)
	b = pipeline.AppendJSONString(b, reason)
	if detail != "" {
		b = append(b, `,"detail":`...)
		b = pipeline.AppendJSONString(b, detail)
	}
	return append(b, '}')
}

// jsonContentType is the Content-Type header value of every answer. Header values are
// never changed in place (net/http copies them), so one slice serves every answer.
var jsonContentType = []string{"application/json"}

// autoLengthBytes is the largest body that net/http gives a Content-Length by itself:
// an answer written in one piece before the handler returns and no larger than its
// response buffer (2 KiB) is sent with its length, without the handler formatting it.
const autoLengthBytes = 2048

// reply writes a JSON answer and returns its status.
func reply(w http.ResponseWriter, status int, body []byte) int {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	if len(body) > autoLengthBytes {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	w.WriteHeader(status)
	w.Write(body)
	return status
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
