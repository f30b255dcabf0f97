package main

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	natssrc "github.com/fraudpipe/fraudpipe/sources/nats"
)

func init() { registerSource("nats", openNATSSource) }

// natsSource is the NATS source with the embedded server it may own.
type natsSource struct {
	*natssrc.Source
	embedded *natssrc.Embedded
}

// Close closes the source, then stops the embedded server.
func (s *natsSource) Close() error {
	err := s.Source.Close()
	if s.embedded != nil {
		s.embedded.Shutdown()
	}
	return err
}

// startNATS connects to the configured server, or starts the embedded one, and makes sure
// the stream exists. It returns the URL, the connect options and the embedded server (nil
// for an external one).
func startNATS(cfg *config.Config) (string, []nats.Option, *natssrc.Embedded, error) {
	n := cfg.Source.NATS
	var opts []nats.Option
	if n.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.Resolve(n.CredsFile)))
	}
	if n.Token != "" {
		opts = append(opts, nats.Token(n.Token.Reveal()))
	}
	if n.URL != "" {
		return n.URL, opts, nil, nil
	}
	host, portText, err := net.SplitHostPort(n.Listen)
	if err != nil {
		return "", nil, nil, fmt.Errorf("source.nats.listen %q: %w", n.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return "", nil, nil, fmt.Errorf("source.nats.listen %q: the port is not a number", n.Listen)
	}
	if port == 0 {
		port = -1 // any free port
	}
	e, err := natssrc.StartEmbedded(natssrc.EmbeddedOptions{StoreDir: cfg.Resolve(n.StoreDir), Host: host, Port: port})
	if err != nil {
		return "", nil, nil, err
	}
	return e.ClientURL(), opts, e, nil
}

// ensureStream creates or checks the configured stream.
func ensureStream(env sourceEnv, cfg *config.Config, url string, opts []nats.Option) error {
	n := cfg.Source.NATS
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = natssrc.EnsureStream(env.ctx, js, natssrc.StreamOptions{Name: n.Stream, Subject: n.Subject, Partitions: n.Partitions, Replicas: n.Replicas})
	return err
}

func openNATSSource(cfg *config.Config, env sourceEnv) (pipeline.Source, error) {
	n := cfg.Source.NATS
	url, opts, embedded, err := startNATS(cfg)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (pipeline.Source, error) {
		if embedded != nil {
			embedded.Shutdown()
		}
		return nil, err
	}
	if err := ensureStream(env, cfg, url, opts); err != nil {
		return fail(err)
	}
	durable := n.Durable
	var parts []int
	scale, err := scaleOf(cfg)
	if err != nil {
		return fail(err)
	}
	if scale != nil {
		// A durable consumer per instance, reading the partitions it owns.
		durable, parts = fmt.Sprintf("%s-%d", n.Durable, scale.instance), scale.partitions
	}
	src, err := natssrc.Open(env.ctx, natssrc.Options{
		URL: url, ConnectOptions: opts, Stream: n.Stream, Durable: durable, Partitions: parts,
		AckWait: time.Duration(n.AckWait), MaxAckPending: n.MaxAckPending, FetchBatch: n.FetchBatch,
		Logger: env.logger,
	})
	if err != nil {
		return fail(err)
	}
	if embedded != nil {
		env.logger.Info("embedded NATS server listening; publish with fraudpipe publish", "url", url, "subject", n.Subject+".in")
	}
	registerLag(env.registry, "fraudpipe_source_lag_messages",
		"Messages of the stream the source has not read yet (JetStream consumer pending).",
		src.Name(), func() float64 { return float64(src.Pending()) })
	return &natsSource{Source: src, embedded: embedded}, nil
}
