package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is an HTTP server on a fixed loopback address that can be stopped (connections
// refused, open ones cut) and started again on the same address, as a restarted service
// would be.
type Server struct {
	// Addr is the address the server listens on, e.g. 127.0.0.1:41234.
	Addr string
	h    http.Handler

	mu  sync.Mutex
	srv *http.Server
}

// NewServer starts h on a free loopback port.
func NewServer(h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	s := &Server{Addr: ln.Addr().String(), h: h}
	s.serve(ln)
	return s, nil
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr }

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
	s.srv = srv
	go srv.Serve(ln)
}

// Stop closes the listener and every open connection. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// Start listens on the same address again, retrying for up to 10 s while the port is still
// held by the closing listener. Starting a running server does nothing.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", s.Addr)
		if err == nil {
			s.serve(ln)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("listen on %s again: %w", s.Addr, err)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the port to be released
	}
}

// Close stops the server for good.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.srv.Close()
		}
		s.srv = nil
	}
}

// FreePort returns a loopback address with a port that was free a moment ago.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
