// Package nats reads transactions from NATS JetStream through a durable pull consumer, sets
// up the stream they are kept in, publishes recorded NDJSON streams to it, and runs an
// embedded NATS server with JetStream for setups that need no infrastructure.
//
// One message carries one transaction (one NDJSON line). The message's stream sequence is
// its position; checkpoints record the highest sequence handed to the engine, and the
// durable consumer is acknowledged (AckAll) only up to what a checkpoint covers.
package nats

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultPort is the port an embedded server listens on when EmbeddedOptions.Port is 0.
const DefaultPort = 4222

// EmbeddedOptions configure an in-process NATS server with JetStream.
type EmbeddedOptions struct {
	// StoreDir is where JetStream keeps streams and consumers. Required.
	StoreDir string
	// Host is the interface to listen on; default 127.0.0.1.
	Host string
	// Port to listen on: 0 takes DefaultPort (4222), -1 a random free port.
	Port int
	// ReadyTimeout is how long to wait for the server to accept connections; default 10s.
	ReadyTimeout time.Duration
	// Logging sends the server's log to standard error; off by default.
	Logging bool
	// MaxMemory and MaxStore cap JetStream's memory and file storage in bytes; 0 lets the
	// server choose from the machine's resources.
	MaxMemory, MaxStore int64
}

// Embedded is a NATS server with JetStream running in this process.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a NATS server with JetStream in this process and returns once it
// accepts connections.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	if o.StoreDir == "" {
		return nil, errors.New("embedded NATS server: no store directory: set one for JetStream to keep its streams in")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	srv, err := server.NewServer(&server.Options{
		ServerName:         "fraudpipe-embedded",
		Host:               o.Host,
		Port:               o.Port,
		JetStream:          true,
		StoreDir:           o.StoreDir,
		JetStreamMaxMemory: o.MaxMemory,
		JetStreamMaxStore:  o.MaxStore,
		NoLog:              !o.Logging,
		NoSigs:             true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	if o.Logging {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(o.ReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded NATS server on %s:%d did not accept connections within %s: is the port in use, or the store directory %s unwritable?",
			o.Host, o.Port, o.ReadyTimeout, o.StoreDir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded NATS server started without JetStream: check that %s is writable", o.StoreDir)
	}
	return &Embedded{srv: srv}, nil
}

// ClientURL is the URL clients connect to, e.g. nats://127.0.0.1:4222.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// Server is the running server, for nats.InProcessServer and for tests.
func (e *Embedded) Server() *server.Server { return e.srv }

// Connect opens a client connection to the server that bypasses the network stack
// (nats.InProcessServer), for setups that may open no port. It is not faster: the
// in-process connection is an unbuffered pipe, and bulk reads over it measured at about a
// third of the rate of loopback TCP (BenchmarkSource).
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(e.srv), nats.Name("fraudpipe")}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to the embedded NATS server: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and returns once it has stopped.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
