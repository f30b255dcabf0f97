package alert

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// NATS publishes one JSON alert per matching decision to a subject, with the transaction
// id in the Nats-Msg-Id header (JetStream deduplicates by it when a stream captures the
// subject). A batch is done when the server has received it (a flush round trip).
type NATS struct {
	route   Route
	conn    *nats.Conn
	subject string
	seen    *dedup
	body    []byte
}

// NewNATS connects to the server at url.
func NewNATS(url, subject string, route Route, dedupSize int) (*NATS, error) {
	nc, err := nats.Connect(url, nats.Name("fraudpipe-alerts"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("nats alerts: connect %s: %w", url, err)
	}
	return &NATS{route: route, conn: nc, subject: subject, seen: newDedup(dedupSize)}, nil
}

// Write publishes the alerts of batch and waits for the server to have them.
func (n *NATS) Write(ctx context.Context, batch []*pipeline.Event) ([]error, error) {
	var sent []string
	for _, ev := range batch {
		if !n.route.Match(ev) || n.seen.has(ev.Tx.ID) || slices.Contains(sent, ev.Tx.ID) {
			continue
		}
		n.body = AppendJSON(n.body[:0], ev)
		m := &nats.Msg{Subject: n.subject, Data: n.body, Header: nats.Header{}}
		m.Header.Set(nats.MsgIdHdr, ev.Tx.ID)
		if err := n.conn.PublishMsg(m); err != nil {
			return nil, fmt.Errorf("nats alerts: publish: %w", err)
		}
		sent = append(sent, ev.Tx.ID)
	}
	if len(sent) > 0 {
		if _, ok := ctx.Deadline(); !ok { // FlushWithContext needs a deadline
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
		}
		if err := n.conn.FlushWithContext(ctx); err != nil {
			return nil, fmt.Errorf("nats alerts: flush: %w", err)
		}
		for _, id := range sent {
			n.seen.add(id)
		}
	}
	return make([]error, len(batch)), nil
}

// Close drains and closes the connection.
func (n *NATS) Close(context.Context) error {
	return n.conn.Drain()
}
