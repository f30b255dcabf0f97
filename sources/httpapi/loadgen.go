package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// LoadOptions describe an open-loop load test of POST /v1/transactions.
type LoadOptions struct {
	// URL is the endpoint, e.g. http://127.0.0.1:8080/v1/transactions.
	URL string
	// Rate is the arrival rate, requests per second: request i is due at start + i/Rate,
	// whether or not earlier ones were answered.
	Rate float64
	// Duration is how long requests keep arriving.
	Duration time.Duration
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// Body returns the body of request i; nil sends distinct transactions of 1000 cards
	// (see LoadBody).
	Body func(i int) []byte
	// Concurrency is the most requests in flight; requests due while all are busy wait, and
	// their wait counts in their latency. Default: Rate/50, at least 16.
	Concurrency int
	// InsecureSkipVerify skips TLS certificate checks, for a test server's own certificate.
	InsecureSkipVerify bool
}

// LoadResult is what a load test measured. Latencies run from each request's intended
// send time to its answer, so a stalled server is not hidden by requests that were not
// sent meanwhile (no coordinated omission).
type LoadResult struct {
	Count    int         // requests sent
	Errors   int         // transport failures and answers other than 200
	Statuses map[int]int // answers by HTTP status; 0 counts transport failures
	P50      time.Duration
	P99      time.Duration
	P999     time.Duration
	Max      time.Duration
	Elapsed  time.Duration
	// FirstError describes the first failure, for a message.
	FirstError string
}

// String summarises the result on one line.
func (r LoadResult) String() string {
	rate := 0.0
	if r.Elapsed > 0 {
		rate = float64(r.Count) / r.Elapsed.Seconds()
	}
	return fmt.Sprintf("%d requests (%.0f/s), %d errors, p50 %s, p99 %s, p99.9 %s, max %s",
		r.Count, rate, r.Errors, r.P50, r.P99, r.P999, r.Max)
}

// LoadBody returns a body function for LoadOptions: distinct transaction ids under prefix,
// spread over 1000 cards, stamped with the wall clock.
func LoadBody(prefix string) func(i int) []byte {
	return func(i int) []byte {
		card := i % 1000
		return fmt.Appendf(nil, `{"id":"%s-%d","ts":%q,"card_id":"card-%d","account_id":"acct-%d","merchant_id":"m-%d","amount":"%d.%02d","currency":"EUR","channel":"ecom","country":"DE"}`,
			prefix, i, time.Now().UTC().Format(time.RFC3339Nano), card, card, i%97, 1+i%500, i%100)
	}
}

// LoadTest sends requests at a constant arrival rate for o.Duration and measures their
// latency. It returns early, with what was measured, when ctx is cancelled.
func LoadTest(ctx context.Context, o LoadOptions) (LoadResult, error) {
	if o.URL == "" || o.Rate <= 0 || o.Duration <= 0 {
		return LoadResult{}, errors.New("load test: URL, a rate > 0 and a duration > 0 are required")
	}
	if o.Body == nil {
		o.Body = LoadBody("lt-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	if o.Concurrency <= 0 {
		o.Concurrency = max(16, int(o.Rate/50))
	}
	tr := &http.Transport{
		MaxIdleConns:        o.Concurrency,
		MaxIdleConnsPerHost: o.Concurrency,
		IdleConnTimeout:     30 * time.Second,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	total := int(o.Rate * o.Duration.Seconds())
	interval := float64(time.Second) / o.Rate
	start := time.Now()
	due := make(chan int, min(total, 1<<16))
	type workerResult struct {
		lat      []time.Duration
		statuses map[int]int
		first    string
	}
	results := make([]workerResult, o.Concurrency)
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		wg.Go(func() {
			res := &results[w]
			res.statuses = make(map[int]int)
			for i := range due {
				intended := start.Add(time.Duration(float64(i) * interval))
				status, err := send(ctx, client, o, i)
				res.lat = append(res.lat, time.Since(intended))
				res.statuses[status]++
				if res.first == "" && (err != nil || status != http.StatusOK) {
					if err != nil {
						res.first = err.Error()
					} else {
						res.first = "status " + strconv.Itoa(status)
					}
				}
			}
		})
	}
	// The dispatcher releases every request whose time has come, then sleeps briefly: the
	// schedule, not the sleeps, sets each request's intended time.
	sent := 0
dispatch:
	for sent < total {
		now := time.Since(start)
		for ; sent < total && time.Duration(float64(sent)*interval) <= now; sent++ {
			select {
			case due <- sent:
			case <-ctx.Done():
				break dispatch
			}
		}
		if sent < total {
			next := time.Duration(float64(sent)*interval) - time.Since(start)
			select {
			case <-time.After(max(next, 50*time.Microsecond)):
			case <-ctx.Done():
				break dispatch
			}
		}
	}
	close(due)
	wg.Wait()

	r := LoadResult{Statuses: make(map[int]int), Elapsed: time.Since(start)}
	var lat []time.Duration
	for _, w := range results {
		lat = append(lat, w.lat...)
		for st, n := range w.statuses {
			r.Statuses[st] += n
			if st != http.StatusOK {
				r.Errors += n
			}
		}
		if r.FirstError == "" {
			r.FirstError = w.first
		}
	}
	r.Count = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		r.P50, r.P99, r.P999, r.Max = q(0.50), q(0.99), q(0.999), lat[len(lat)-1]
	}
	return r, ctx.Err()
}

func send(ctx context.Context, client *http.Client, o LoadOptions, i int) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(o.Body(i)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
