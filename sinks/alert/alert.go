// Package alert sends alerts for the decisions that need a human or a system to act: a
// signed webhook, a NATS subject, or the log. Each alerter is a sinks.Writer, so the sinks
// framework batches, retries and dead-letters around it.
//
// A Route picks the decisions that alert (by outcome, reason code and score), and every
// alerter sends each transaction at most once per process (deduplicated by transaction id,
// which is also the webhook's Idempotency-Key, so a receiver can deduplicate across
// restarts).
package alert

import (
	"slices"
	"strconv"
	"sync"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Route selects the decisions that raise an alert.
type Route struct {
	On       []pipeline.Outcome // decisions that alert; empty means review and decline
	Rules    []string           // when not empty, one of these reason codes must be present
	MinScore float64            // when > 0, the score must be at least this
}

// Match reports whether ev raises an alert.
func (r *Route) Match(ev *pipeline.Event) bool {
	d := &ev.Decision
	if len(r.On) == 0 {
		if d.Outcome == pipeline.Approve {
			return false
		}
	} else if !slices.Contains(r.On, d.Outcome) {
		return false
	}
	if r.MinScore > 0 && (!d.HasScore || d.Score < r.MinScore) {
		return false
	}
	if len(r.Rules) > 0 && !slices.ContainsFunc(d.Reasons, func(s string) bool { return slices.Contains(r.Rules, s) }) {
		return false
	}
	return true
}

// AppendJSON appends the alert body of ev: the decision and the transaction fields a
// responder needs, as one JSON object.
func AppendJSON(dst []byte, ev *pipeline.Event) []byte {
	tx, d := &ev.Tx, &ev.Decision
	dst = append(dst, `{"id":`...)
	dst = pipeline.AppendJSONString(dst, tx.ID)
	dst = append(dst, `,"ts":`...)
	dst = pipeline.AppendJSONString(dst, tx.TSText)
	dst = pipeline.AppendOutcomeJSON(dst, d)
	dst = append(dst, `,"card_id":`...)
	dst = pipeline.AppendJSONString(dst, tx.CardID)
	dst = append(dst, `,"account_id":`...)
	dst = pipeline.AppendJSONString(dst, tx.AccountID)
	dst = append(dst, `,"merchant_id":`...)
	dst = pipeline.AppendJSONString(dst, tx.MerchantID)
	dst = append(dst, `,"amount_minor":`...)
	dst = strconv.AppendInt(dst, tx.Amount, 10)
	dst = append(dst, `,"currency":`...)
	dst = pipeline.AppendJSONString(dst, tx.Currency.Code)
	dst = append(dst, `,"channel":"`...)
	dst = append(dst, tx.Channel.String()...)
	dst = append(dst, '"')
	if tx.Country != "" {
		dst = append(dst, `,"country":`...)
		dst = pipeline.AppendJSONString(dst, tx.Country)
	}
	if d.Model != "" {
		dst = append(dst, `,"model":`...)
		dst = pipeline.AppendJSONString(dst, d.Model)
	}
	if d.Rules != "" {
		dst = append(dst, `,"rules":`...)
		dst = pipeline.AppendJSONString(dst, d.Rules)
	}
	return append(dst, '}')
}

// dedup remembers the last size transaction ids alerted, to alert each once. It is safe
// for concurrent use.
type dedup struct {
	mu   sync.Mutex
	seen map[string]struct{}
	ring []string
	next int
}

func newDedup(size int) *dedup {
	if size <= 0 {
		size = 100000
	}
	return &dedup{seen: make(map[string]struct{}, size), ring: make([]string, size)}
}

// has reports whether id was alerted.
func (d *dedup) has(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.seen[id]
	return ok
}

// add records that id was alerted, forgetting the oldest id when full.
func (d *dedup) add(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[id]; ok {
		return
	}
	if old := d.ring[d.next]; old != "" {
		delete(d.seen, old)
	}
	d.ring[d.next] = id
	d.seen[id] = struct{}{}
	d.next = (d.next + 1) % len(d.ring)
}
