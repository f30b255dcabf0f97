// Package feedback brings feedback events (CONTRACT.md: confirmed fraud, arriving days
// after the payment) into a recorded stream, for replay and training:
//
//   - Merge interleaves a transaction stream and a feedback stream by event time, so the
//     engine reads each verdict at the point of the stream where it became known;
//   - FromLabels turns the labels of a recorded stream into feedback that arrives a fixed
//     delay after each fraudulent transaction: a simulation of chargebacks, for the
//     handbook's protocol, never for production.
//
// A live stream carries its feedback inline (lines with "kind":"feedback"), so run needs
// neither.
package feedback

import (
	"container/heap"
	"context"
	"errors"
	"math"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// DefaultBatchSize is the most messages one ReadBatch returns.
const DefaultBatchSize = 512

// input buffers one source's messages, copied, with their event times.
type input struct {
	src  pipeline.Source
	msgs []pending
	done bool
}

type pending struct {
	data []byte
	pos  int64
	ts   int64 // event time; math.MinInt64 for a line without one (it goes out at once)
	seq  uint64
	// fraudID is the id of a transaction labelled fraud, for FromLabels; "" otherwise.
	fraudID string
}

// fill reads another batch from in's source when its buffer is empty.
func (in *input) fill(ctx context.Context) error {
	for len(in.msgs) == 0 && !in.done {
		msgs, ack, err := in.src.ReadBatch(ctx)
		if errors.Is(err, pipeline.ErrEndOfInput) {
			in.done = true
			return nil
		}
		if err != nil {
			return err
		}
		for _, m := range msgs {
			p := pending{data: append([]byte(nil), m.Data...), pos: m.Pos, ts: math.MinInt64}
			ev := pipeline.Event{Raw: p.data}
			pipeline.DecodeEvent(&ev)
			switch {
			case ev.Err != nil:
			case ev.Feedback != nil:
				p.ts = ev.Feedback.TS
			default:
				p.ts = ev.Tx.TS
				if ev.Tx.Label.Fraud {
					p.fraudID = ev.Tx.ID
				}
			}
			in.msgs = append(in.msgs, p)
		}
		if ack != nil {
			if err := ack(ctx, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// Merged is a transaction stream and a feedback stream read as one, in event time.
type Merged struct {
	name      string
	tx, fb    *input
	batchSize int
}

// Merge reads tx and fb as one stream: each step emits the message with the earlier event
// time, feedback first on a tie (a verdict known at t applies to transactions at t). Both
// streams should be in event-time order; a line without a readable ts goes out at once (the
// engine dead-letters it). It closes both sources when closed.
func Merge(tx, fb pipeline.Source, batchSize int) *Merged {
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	return &Merged{name: tx.Name() + "+" + fb.Name(), tx: &input{src: tx}, fb: &input{src: fb}, batchSize: batchSize}
}

// Name names both sources.
func (m *Merged) Name() string { return m.name }

// ReadBatch returns the next messages in event time.
func (m *Merged) ReadBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	var out []pipeline.Message
	for len(out) < m.batchSize {
		if err := m.tx.fill(ctx); err != nil {
			return nil, nil, err
		}
		if err := m.fb.fill(ctx); err != nil {
			return nil, nil, err
		}
		var from *input
		switch {
		case len(m.tx.msgs) == 0 && len(m.fb.msgs) == 0:
			if len(out) == 0 {
				return nil, nil, pipeline.ErrEndOfInput
			}
			return out, nil, nil
		case len(m.fb.msgs) == 0:
			from = m.tx
		case len(m.tx.msgs) == 0:
			from = m.fb
		case m.fb.msgs[0].ts <= m.tx.msgs[0].ts:
			from = m.fb
		default:
			from = m.tx
		}
		p := from.msgs[0]
		from.msgs = from.msgs[1:]
		out = append(out, pipeline.Message{Data: p.data, Pos: p.pos})
	}
	return out, nil, nil
}

// Input is the transaction stream.
func (m *Merged) Input() pipeline.Source { return m.tx.src }

// Close closes both sources.
func (m *Merged) Close() error { return errors.Join(m.tx.src.Close(), m.fb.src.Close()) }

// Labels is a recorded stream with feedback made from its own labels.
type Labels struct {
	in        *input
	delay     int64
	due       dueHeap
	seq       uint64
	batchSize int
	made      int64
}

// FromLabels reads src and, for every transaction labelled fraud, emits a feedback event
// {"kind":"feedback","id":…,"ts":ts+delay,"fraud":true} at its place in event time. Labels
// of genuine transactions make no feedback: the delayed-label features need only the
// frauds. For simulation and training only: a live stream's labels are not known.
func FromLabels(src pipeline.Source, delay time.Duration, batchSize int) *Labels {
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	return &Labels{in: &input{src: src}, delay: delay.Milliseconds(), batchSize: batchSize}
}

// Name is the source's name.
func (l *Labels) Name() string { return l.in.src.Name() }

// Made is the number of feedback events made so far.
func (l *Labels) Made() int64 { return l.made }

// ReadBatch returns the next messages: the stream's, with the feedback due before each.
func (l *Labels) ReadBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	var out []pipeline.Message
	for len(out) < l.batchSize {
		if err := l.in.fill(ctx); err != nil {
			return nil, nil, err
		}
		if len(l.in.msgs) == 0 {
			if len(l.due) == 0 {
				if len(out) == 0 {
					return nil, nil, pipeline.ErrEndOfInput
				}
				return out, nil, nil
			}
			out = append(out, l.pop())
			continue
		}
		next := l.in.msgs[0]
		if len(l.due) > 0 && l.due[0].ts <= next.ts {
			out = append(out, l.pop())
			continue
		}
		l.in.msgs = l.in.msgs[1:]
		out = append(out, pipeline.Message{Data: next.data, Pos: next.pos})
		l.schedule(next)
	}
	return out, nil, nil
}

// schedule queues the feedback of a transaction labelled fraud.
func (l *Labels) schedule(p pending) {
	if p.fraudID == "" {
		return
	}
	ts := p.ts + l.delay
	b := pipeline.AppendJSONString([]byte(`{"kind":"feedback","id":`), p.fraudID)
	b = append(b, `,"ts":"`...)
	b = time.UnixMilli(ts).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","fraud":true}`...)
	l.seq++
	heap.Push(&l.due, pending{data: b, pos: -1, ts: ts, seq: l.seq})
	l.made++
}

func (l *Labels) pop() pipeline.Message {
	p := heap.Pop(&l.due).(pending)
	return pipeline.Message{Data: p.data, Pos: p.pos}
}

// Input is the recorded stream.
func (l *Labels) Input() pipeline.Source { return l.in.src }

// Close closes the stream.
func (l *Labels) Close() error { return l.in.src.Close() }

// dueHeap orders feedback by event time, then by the order it was made.
type dueHeap []pending

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if h[i].ts != h[j].ts {
		return h[i].ts < h[j].ts
	}
	return h[i].seq < h[j].seq
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(pending)) }
func (h *dueHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}
