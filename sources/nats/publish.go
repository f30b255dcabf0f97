package nats

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultMaxInFlight is how many published messages may wait for their acknowledgement.
const DefaultMaxInFlight = 2048

// PublishOptions configure Publish.
type PublishOptions struct {
	// Subject is the stream's subject prefix; default "txn".
	Subject string
	// Partitioned publishes each line on <Subject>.in.<card id> for a partitioned stream,
	// instead of <Subject>.in.
	Partitioned bool
	// Rate is the most messages per second; 0 publishes as fast as the server acknowledges.
	Rate float64
	// MaxInFlight is how many messages may wait for their acknowledgement; default 2048.
	// Keep it within the JetStream context's own limit (jetstream.WithPublishAsyncMaxPending,
	// 4000 unless set), past which PublishMsgAsync stalls and fails.
	MaxInFlight int
}

// PublishStats count what Publish did.
type PublishStats struct {
	Lines      int64         // non-blank lines read
	Published  int64         // messages stored by the stream
	Duplicates int64         // messages the stream dropped as repeats of a Nats-Msg-Id
	NoID       int64         // lines without a readable transaction id, published without Nats-Msg-Id
	Elapsed    time.Duration // from the first line to the last acknowledgement
}

// Publish sends an NDJSON stream (plain, not gzip), one message per non-blank line, as a
// producer would: to the input subject of StreamOptions (with the card id as the key when
// partitioned), with header Nats-Msg-Id set to the transaction id. Lines that are not valid
// transactions are published too, for the pipeline to refuse with a reason. It returns when
// every message is acknowledged by the stream, or at the first failure.
func Publish(ctx context.Context, js jetstream.JetStream, r io.Reader, o PublishOptions) (PublishStats, error) {
	if o.Subject == "" {
		o.Subject = DefaultSubject
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.Rate < 0 {
		return PublishStats{}, fmt.Errorf("publish: rate %g: use a positive rate in messages per second, or 0 for no limit", o.Rate)
	}
	var st PublishStats
	start := time.Now()
	in := o.Subject + ".in"
	inDot := in + "."

	var window []jetstream.PubAckFuture // in flight, oldest first
	head := 0
	settle := func(f jetstream.PubAckFuture) error {
		select {
		case ack := <-f.Ok():
			st.Published++
			if ack.Duplicate {
				st.Published--
				st.Duplicates++
			}
			return nil
		case err := <-f.Err():
			// A retry with the same Nats-Msg-Id cannot store the message twice.
			ack, err2 := js.PublishMsg(ctx, f.Msg())
			if err2 != nil {
				return fmt.Errorf("publish to %s: %w (after %v)", f.Msg().Subject, err2, err)
			}
			if ack.Duplicate {
				st.Duplicates++
			} else {
				st.Published++
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	br := bufio.NewReaderSize(r, 256<<10)
	var line []byte
	var sent int64
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		var err error
		line, err = readLine(br, line[:0])
		if err != nil && err != io.EOF {
			return st, fmt.Errorf("publish: read line %d: %w", st.Lines+1, err)
		}
		if rec := bytes.TrimSpace(line); len(rec) > 0 {
			st.Lines++
			id, card := idAndCard(rec)
			m := &nats.Msg{Subject: in, Data: bytes.Clone(rec), Header: nats.Header{}}
			if o.Partitioned {
				m.Subject = inDot + SubjectToken(card)
			}
			if id != "" {
				m.Header.Set(jetstream.MsgIDHeader, id)
			} else {
				st.NoID++
			}
			if o.Rate > 0 {
				due := start.Add(time.Duration(float64(sent) / o.Rate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return st, ctx.Err()
					}
				}
			}
			for len(window)-head >= o.MaxInFlight {
				if err := settle(window[head]); err != nil {
					return st, err
				}
				window[head] = nil
				head++
			}
			if head > o.MaxInFlight {
				window = append(window[:0], window[head:]...)
				head = 0
			}
			f, perr := js.PublishMsgAsync(m)
			if perr != nil {
				return st, fmt.Errorf("publish line %d to %s: %w", st.Lines, m.Subject, perr)
			}
			window = append(window, f)
			sent++
		}
		if err == io.EOF {
			break
		}
	}
	for ; head < len(window); head++ {
		if err := settle(window[head]); err != nil {
			return st, err
		}
	}
	st.Elapsed = time.Since(start)
	return st, nil
}

// readLine reads one line into buf without its end, keeping at most MaxLineBytes+1 bytes
// of a longer line: enough for the pipeline to refuse it as too long.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	const keep = pipeline.MaxLineBytes + 1
	for {
		part, err := br.ReadSlice('\n')
		if room := keep - len(buf); room > 0 {
			buf = append(buf, part[:min(room, len(part))]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}

// idAndCard reads a line's transaction id and card id: through the pipeline's decoder for
// a valid transaction, through encoding/json for one the pipeline will refuse.
func idAndCard(line []byte) (id, card string) {
	var tx pipeline.Transaction
	if err := pipeline.DecodeTransaction(line, &tx); err == nil {
		return tx.ID, tx.CardID
	}
	var loose struct {
		ID     json.RawMessage `json:"id"`
		CardID json.RawMessage `json:"card_id"`
	}
	if json.Unmarshal(line, &loose) != nil {
		return "", ""
	}
	return scalar(loose.ID), scalar(loose.CardID)
}

// scalar is a JSON string's value, or a number's text; "" for anything else.
func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// PublishOptionsFor reads how producers publish to an existing stream (its subject prefix,
// and whether it is partitioned) from the stream's configuration, for a publisher that
// knows only the server and the stream name.
func PublishOptionsFor(ctx context.Context, js jetstream.JetStream, stream string) (PublishOptions, error) {
	if stream == "" {
		stream = DefaultStream
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return PublishOptions{}, fmt.Errorf("stream %s does not exist: start fraudpipe run with the NATS source first (it creates the stream), or create it", stream)
		}
		return PublishOptions{}, fmt.Errorf("look up stream %s: %w", stream, err)
	}
	cfg := st.CachedInfo().Config
	if len(cfg.Subjects) == 1 {
		subj := cfg.Subjects[0]
		if p, ok := strings.CutSuffix(subj, ".in.*"); ok && cfg.SubjectTransform != nil {
			return PublishOptions{Subject: p, Partitioned: true}, nil
		}
		if p, ok := strings.CutSuffix(subj, ".in"); ok && cfg.SubjectTransform == nil {
			return PublishOptions{Subject: p}, nil
		}
	}
	return PublishOptions{}, fmt.Errorf("stream %s listens on %v, not on <prefix>.in or <prefix>.in.*: it was not made for fraudpipe", stream, cfg.Subjects)
}
