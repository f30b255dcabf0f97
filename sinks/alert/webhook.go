package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks"
)

// Headers of a webhook request.
const (
	HeaderSignature   = "X-Fraudpipe-Signature" // hex HMAC-SHA256 of timestamp + "." + body
	HeaderTimestamp   = "X-Fraudpipe-Timestamp" // Unix seconds when the request was signed
	HeaderIdempotency = "Idempotency-Key"       // the transaction id
)

// Sign returns the signature of a webhook request: the hex HMAC-SHA256, keyed by secret,
// of the timestamp (Unix seconds, as sent in X-Fraudpipe-Timestamp), a dot, and the body.
// A receiver recomputes it, compares with hmac.Equal, and refuses old timestamps.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is the valid signature of timestamp and body, and the
// timestamp is within maxAge of now: what a receiver checks.
func Verify(secret []byte, timestamp string, body []byte, signature string, maxAge time.Duration, now time.Time) bool {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	if age := now.Sub(time.Unix(ts, 0)); age > maxAge || age < -maxAge {
		return false
	}
	want := Sign(secret, timestamp, body)
	return hmac.Equal([]byte(want), []byte(strings.ToLower(signature)))
}

// LoadSecret returns the webhook key: value (already taken from ${ENV} by the config) or,
// when file is set, the file's content without surrounding white space. Errors never
// contain the secret.
func LoadSecret(value, file string) ([]byte, error) {
	if file != "" {
		if value != "" {
			return nil, errors.New("set secret or secret_file, not both")
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read secret_file: %w", err)
		}
		value = strings.TrimSpace(string(b))
	}
	if value == "" {
		return nil, errors.New("no secret: set secret (from an environment variable, ${ALERT_WEBHOOK_SECRET}) or secret_file; unsigned alerts are not sent")
	}
	return []byte(value), nil
}

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	URL       string
	Secret    []byte
	Route     Route
	RateLimit float64       // requests per second to the endpoint; 0: no limit
	Timeout   time.Duration // per request; default 5s
	Workers   int           // requests in flight; default 4
	DedupSize int           // ids remembered; default 100000
	Client    *http.Client  // nil: a client of its own
}

// Webhook POSTs one signed JSON alert per matching decision. It is a sinks.Writer.
type Webhook struct {
	cfg     WebhookConfig
	client  *http.Client
	limit   *limiter
	seen    *dedup
	seed    maphash.Seed
	workers int
}

// NewWebhook returns a webhook alerter; it refuses a missing secret or a bad URL.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("webhook url %q: want http(s)://host/path", cfg.URL)
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: no secret; unsigned alerts are not sent")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	w := &Webhook{cfg: cfg, client: cfg.Client, seen: newDedup(cfg.DedupSize), seed: maphash.MakeSeed(), workers: cfg.Workers}
	if w.client == nil {
		w.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Workers, IdleConnTimeout: 90 * time.Second}}
	}
	if cfg.RateLimit > 0 {
		w.limit = &limiter{interval: time.Duration(float64(time.Second) / cfg.RateLimit)}
	}
	return w, nil
}

// Close closes idle connections.
func (w *Webhook) Close(context.Context) error {
	w.client.CloseIdleConnections()
	return nil
}

// Write sends the alerts of batch: decisions the route does not match, and transactions
// already alerted, succeed at once. Each card's alerts go through one worker, in order; once
// one fails, the card's later alerts in the batch wait for the retry (they are reported
// retryable without being sent), so a receiver never sees them out of order.
func (w *Webhook) Write(ctx context.Context, batch []*pipeline.Event) ([]error, error) {
	res := make([]error, len(batch))
	parts := make([][]int, w.workers)
	for i, ev := range batch {
		if !w.cfg.Route.Match(ev) || w.seen.has(ev.Tx.ID) {
			continue
		}
		k := int(maphash.String(w.seed, ev.Tx.CardID) % uint64(w.workers))
		parts[k] = append(parts[k], i)
	}
	var wg sync.WaitGroup
	for _, idx := range parts {
		if len(idx) == 0 {
			continue
		}
		wg.Go(func() {
			var failed map[string]bool
			var body []byte
			for _, i := range idx {
				ev := batch[i]
				if w.seen.has(ev.Tx.ID) { // a redelivery within the batch
					continue
				}
				if failed[ev.Tx.CardID] {
					res[i] = sinks.Retryable("an earlier alert of card %s is being retried", ev.Tx.CardID)
					continue
				}
				body = AppendJSON(body[:0], ev)
				if err := w.send(ctx, ev.Tx.ID, body); err != nil {
					res[i] = err
					if failed == nil {
						failed = map[string]bool{}
					}
					failed[ev.Tx.CardID] = true
					continue
				}
				w.seen.add(ev.Tx.ID)
			}
		})
	}
	wg.Wait()
	return res, nil
}

// send POSTs one alert and classifies the outcome.
func (w *Webhook) send(ctx context.Context, id string, body []byte) error {
	if w.limit != nil {
		if err := w.limit.wait(ctx); err != nil {
			return sinks.Retryable("%v", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return sinks.Permanent("%v", err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fraudpipe-alert/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(w.cfg.Secret, ts, body))
	req.Header.Set(HeaderIdempotency, id)
	resp, err := w.client.Do(req)
	if err != nil {
		return sinks.Retryable("webhook: %v", err)
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // reuse the connection
	resp.Body.Close()
	s := resp.StatusCode
	switch {
	case s >= 200 && s <= 299:
		return nil
	case s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s == http.StatusTooEarly || s >= 500:
		return sinks.Retryable("webhook: HTTP %d: %s", s, strings.TrimSpace(string(snippet)))
	}
	return sinks.Permanent("webhook: HTTP %d: %s", s, strings.TrimSpace(string(snippet)))
}

// limiter spaces requests at least interval apart, across workers.
type limiter struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	now := time.Now()
	t := l.next
	if t.Before(now) {
		t = now
	}
	l.next = t.Add(l.interval)
	l.mu.Unlock()
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
