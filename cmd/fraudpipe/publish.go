package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	natssrc "github.com/fraudpipe/fraudpipe/sources/nats"
)

func cmdPublish(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", "--nats URL --input FILE [--stream TXN] [--rate N]",
		`Sends a recorded NDJSON stream (plain or gzip, - for standard input) into a NATS
JetStream stream, one message per line, as a producer would: on <subject>.in (or
<subject>.in.<card_id> when the stream is partitioned), with the transaction id as
Nats-Msg-Id so the stream drops repeats. The stream must exist: 'fraudpipe run' with a nats
source creates it (the embedded server of the local config listens on 127.0.0.1:4222).
Lines that are not valid transactions are sent too; the pipeline dead-letters them.`, stdout)
	url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	input := fs.String("input", "", "recorded stream to send (required; - for standard input)")
	stream := fs.String("stream", natssrc.DefaultStream, "JetStream stream name")
	rate := fs.Float64("rate", 0, "most messages per second; 0: as fast as the stream acknowledges")
	creds := fs.String("creds", "", "NATS credentials file")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *input == "" {
		return &usageError{"--input is required"}
	}
	if *rate < 0 {
		return &usageError{"--rate must be 0 or more"}
	}
	r, closeInput, err := openMaybeGzip(*input)
	if err != nil {
		return err
	}
	defer closeInput()
	var opts []nats.Option
	if *creds != "" {
		opts = append(opts, nats.UserCredentials(*creds))
	}
	nc, err := nats.Connect(*url, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	po, err := natssrc.PublishOptionsFor(ctx, js, *stream)
	if err != nil {
		return err
	}
	po.Rate = *rate
	st, err := natssrc.Publish(ctx, js, r, po)
	fmt.Fprintf(stderr, "publish: %d lines, %d stored, %d dropped as repeats, %d without an id, in %.2fs\n",
		st.Lines, st.Published, st.Duplicates, st.NoID, st.Elapsed.Seconds())
	return err
}

// openMaybeGzip opens path ("-" for standard input), un-gzipping it when it starts with
// gzip's magic bytes.
func openMaybeGzip(path string) (io.Reader, func(), error) {
	var f *os.File
	if path == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, nil, fmt.Errorf("open input: %w", err)
		}
	}
	br := bufio.NewReaderSize(f, 256<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("open input %s: gzip: %w", path, err)
		}
		return zr, func() { zr.Close(); f.Close() }, nil
	}
	return br, func() { f.Close() }, nil
}
