package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher sends transactions to a JetStream stream at a steady rate, as a producer
// would, with each transaction id as Nats-Msg-Id, and keeps going through server restarts:
// a message whose acknowledgement failed is sent again (the stream drops the repeat if
// the first copy was stored).
type Publisher struct {
	// URL is the NATS server, e.g. nats://127.0.0.1:4222.
	URL string
	// Subject is the stream's input subject, e.g. txn.in.
	Subject string
	// Rate is messages a second; 0 is as fast as the server acknowledges.
	Rate float64

	// Sent counts messages handed to the client; Published those acknowledged by the
	// stream (repeats included); Retries the messages sent again after a failure.
	Sent, Published, Retries atomic.Int64
}

// Run publishes every line next returns, then returns once every one is acknowledged.
func (p *Publisher) Run(ctx context.Context, next func(dst []byte) ([]byte, bool)) error {
	nc, err := nats.Connect(p.URL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.Name("chaos-publisher"))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", p.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second), jetstream.WithPublishAsyncMaxPending(4000))
	if err != nil {
		return err
	}
	// resend publishes m synchronously until the stream acknowledges it.
	resend := func(m *nats.Msg) error {
		for {
			p.Retries.Add(1)
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.PublishMsg(c, m)
			cancel()
			if err == nil {
				p.Published.Add(1)
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			select { // the server is restarting: try again shortly
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	type pending struct {
		f jetstream.PubAckFuture
		m *nats.Msg
	}
	var window []pending
	settle := func() error {
		head := window[0]
		window = window[1:]
		if head.f == nil {
			return resend(head.m)
		}
		select {
		case <-head.f.Ok():
			p.Published.Add(1)
			return nil
		case <-head.f.Err():
			return resend(head.m)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	start := time.Now()
	var line []byte
	for sent := 0; ; sent++ {
		var ok bool
		line, ok = next(line[:0])
		if !ok {
			break
		}
		var tx struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(line, &tx); err != nil || tx.ID == "" {
			return fmt.Errorf("line %d has no transaction id: %.100s", sent+1, line)
		}
		m := &nats.Msg{Subject: p.Subject, Data: bytes.Clone(line), Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, tx.ID)
		if p.Rate > 0 {
			due := start.Add(time.Duration(float64(sent) / p.Rate * float64(time.Second)))
			if d := time.Until(due); d > 2*time.Millisecond { // sleep in steps, not per message
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		for len(window) >= 2000 {
			if err := settle(); err != nil {
				return err
			}
		}
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			f = nil // sent again synchronously when its turn comes
		}
		window = append(window, pending{f, m})
		p.Sent.Add(1)
	}
	for len(window) > 0 {
		if err := settle(); err != nil {
			return err
		}
	}
	return nil
}
