package sinks

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// OpenDeadLetters opens the dead-letter output a config names: nats://host:port/subject
// publishes each dead letter to subject on that server; anything else is a file path,
// appended to (DeadLetterFile).
func OpenDeadLetters(where string) (pipeline.Sink, error) {
	if strings.HasPrefix(where, "nats://") {
		u, err := url.Parse(where)
		subject := ""
		if err == nil {
			subject = strings.Trim(u.Path, "/")
		}
		if err != nil || u.Host == "" || subject == "" || strings.ContainsAny(subject, "/ *>") {
			return nil, fmt.Errorf("dead letters %q: want nats://host:port/subject", where)
		}
		u.Path = ""
		return DeadLetterNATS(u.String(), subject)
	}
	return DeadLetterFile(where)
}

// natsDead publishes dead letters to a NATS subject: one JSON object a message, as in the
// dead-letter files, with the transaction id in Nats-Msg-Id so a JetStream stream on the
// subject stores each once. Flush returns when the server has received them.
type natsDead struct {
	conn    *nats.Conn
	subject string
	buf     []byte
}

// DeadLetterNATS connects to the NATS server at serverURL and returns a dead-letter sink
// publishing to subject.
func DeadLetterNATS(serverURL, subject string) (pipeline.Sink, error) {
	nc, err := nats.Connect(serverURL, nats.Name("fraudpipe-dead-letters"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("dead letters: connect %s: %w", serverURL, err)
	}
	return &natsDead{conn: nc, subject: subject}, nil
}

// WriteBatch publishes the dead letters.
func (n *natsDead) WriteBatch(_ context.Context, evs []*pipeline.Event) error {
	for _, ev := range evs {
		n.buf = pipeline.AppendDeadLetterJSON(n.buf[:0], ev)
		m := &nats.Msg{Subject: n.subject, Data: n.buf, Header: nats.Header{}}
		if ev.Tx.ID != "" {
			m.Header.Set(nats.MsgIdHdr, ev.Tx.ID+"/"+ev.Err.Code)
		}
		if err := n.conn.PublishMsg(m); err != nil {
			return fmt.Errorf("dead letters: publish to %s: %w", n.subject, err)
		}
	}
	return nil
}

// Flush waits until the server has every dead letter published so far.
func (n *natsDead) Flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok { // FlushWithContext needs a deadline
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := n.conn.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("dead letters: flush to %s: %w", n.subject, err)
	}
	return nil
}

// Close flushes and closes the connection.
func (n *natsDead) Close(ctx context.Context) error {
	err := n.Flush(ctx)
	n.conn.Close()
	return err
}
