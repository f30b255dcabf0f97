package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
	// Body returns the body of request i. When neither Body nor AppendBody is set, the
	// requests are distinct transactions of 1000 cards (see LoadBody).
	Body func(i int) []byte
	// AppendBody appends the body of request i to dst and returns it; it takes precedence
	// over Body and lets the load generator reuse one buffer per connection, so that it
	// allocates nothing per request (see AppendLoadBody).
	AppendBody func(dst []byte, i int) []byte
	// Concurrency is the most requests in flight, one keep-alive connection each; requests
	// due while all are busy wait, and their wait counts in their latency.
	// Default: Rate/50, at least 16.
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
	app := AppendLoadBody(prefix)
	return func(i int) []byte { return app(nil, i) }
}

// AppendLoadBody is LoadBody for LoadOptions.AppendBody: it appends the body of request i
// to dst without allocating once dst has room.
func AppendLoadBody(prefix string) func(dst []byte, i int) []byte {
	return func(b []byte, i int) []byte {
		card := i % 1000
		cents := i % 100
		b = append(b, `{"id":"`...)
		b = append(b, prefix...)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `","ts":"`...)
		b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","card_id":"card-`...)
		b = strconv.AppendInt(b, int64(card), 10)
		b = append(b, `","account_id":"acct-`...)
		b = strconv.AppendInt(b, int64(card), 10)
		b = append(b, `","merchant_id":"m-`...)
		b = strconv.AppendInt(b, int64(i%97), 10)
		b = append(b, `","amount":"`...)
		b = strconv.AppendInt(b, int64(1+i%500), 10)
		b = append(b, '.', byte('0'+cents/10), byte('0'+cents%10))
		b = append(b, `","currency":"EUR","channel":"ecom","country":"DE"}`...)
		return b
	}
}

// LoadTest sends requests at a constant arrival rate for o.Duration and measures their
// latency. It returns early, with what was measured, when ctx is cancelled.
//
// Against an http:// URL it is a lean client, as wrk is: one keep-alive connection per
// concurrent request, the request written from a reused buffer, and only the status line
// and the framing headers of the answer read, so that it allocates next to nothing per
// request and its garbage collections do not stand in for the server's when both share a
// process. Against https:// it uses net/http.
func LoadTest(ctx context.Context, o LoadOptions) (LoadResult, error) {
	if o.URL == "" || o.Rate <= 0 || o.Duration <= 0 {
		return LoadResult{}, errors.New("load test: URL, a rate > 0 and a duration > 0 are required")
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return LoadResult{}, fmt.Errorf("load test: URL %q is not an http:// or https:// URL", o.URL)
	}
	if o.Body == nil && o.AppendBody == nil {
		o.AppendBody = AppendLoadBody("lt-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	if o.AppendBody == nil {
		body := o.Body
		o.AppendBody = func(dst []byte, i int) []byte { return append(dst, body(i)...) }
	}
	if o.Concurrency <= 0 {
		o.Concurrency = max(16, int(o.Rate/50))
	}
	var newSender func() sender
	if u.Scheme == "https" {
		tr := &http.Transport{
			MaxIdleConns:        o.Concurrency,
			MaxIdleConnsPerHost: o.Concurrency,
			IdleConnTimeout:     30 * time.Second,
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify},
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		newSender = func() sender { return &httpSender{ctx: ctx, client: client, o: &o} }
	} else {
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		head := "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/json\r\n"
		if o.Token != "" {
			head += "Authorization: Bearer " + o.Token + "\r\n"
		}
		conns := &connSet{}
		stop := context.AfterFunc(ctx, conns.interrupt)
		defer stop()
		newSender = func() sender {
			return &rawSender{ctx: ctx, addr: host, head: head, o: &o, conns: conns}
		}
	}

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
		res := &results[w]
		res.statuses = make(map[int]int)
		res.lat = make([]time.Duration, 0, total/o.Concurrency+16)
		wg.Go(func() {
			s := newSender()
			defer s.close()
			for i := range due {
				intended := start.Add(time.Duration(float64(i) * interval))
				status, err := s.send(i)
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
	timer := time.NewTimer(time.Hour)
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
			timer.Reset(max(next, 50*time.Microsecond))
			select {
			case <-timer.C:
			case <-ctx.Done():
				break dispatch
			}
		}
	}
	timer.Stop()
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

// A sender sends the requests of one load-test worker, one at a time.
type sender interface {
	send(i int) (status int, err error)
	close()
}

// httpSender sends through net/http (for https:// URLs).
type httpSender struct {
	ctx    context.Context
	client *http.Client
	o      *LoadOptions
	buf    []byte
}

func (s *httpSender) send(i int) (int, error) {
	s.buf = s.o.AppendBody(s.buf[:0], i)
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.o.URL, bytes.NewReader(s.buf))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.o.Token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (s *httpSender) close() {}

// connSet holds the lean client's open connections, so that cancelling the load test
// interrupts the requests in flight.
type connSet struct {
	mu          sync.Mutex
	conns       map[net.Conn]struct{}
	interrupted bool
}

func (cs *connSet) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.interrupted {
		return false
	}
	if cs.conns == nil {
		cs.conns = make(map[net.Conn]struct{})
	}
	cs.conns[c] = struct{}{}
	return true
}

func (cs *connSet) remove(c net.Conn) {
	cs.mu.Lock()
	delete(cs.conns, c)
	cs.mu.Unlock()
}

func (cs *connSet) interrupt() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.interrupted = true
	for c := range cs.conns {
		c.SetDeadline(time.Unix(1, 0))
	}
}

// rawSender is the lean HTTP/1.1 client: it writes precomputed request headers and the
// body on a keep-alive connection and reads the status line, Content-Length (or chunked
// framing) and Connection of the answer, discarding its body.
type rawSender struct {
	ctx   context.Context
	addr  string
	head  string // request line and fixed headers, each ending in CRLF
	o     *LoadOptions
	conns *connSet

	conn     net.Conn
	r        *bufio.Reader
	body     []byte
	req      []byte
	deadline time.Time // of conn, moved forward at most once a second
}

// requestTimeout bounds one request of the lean client (give or take a second), as
// net/http's client Timeout does.
const requestTimeout = 30 * time.Second

func (s *rawSender) send(i int) (int, error) {
	if s.ctx.Err() != nil {
		return 0, s.ctx.Err()
	}
	s.body = s.o.AppendBody(s.body[:0], i)
	s.req = append(s.req[:0], s.head...)
	s.req = append(s.req, "Content-Length: "...)
	s.req = strconv.AppendInt(s.req, int64(len(s.body)), 10)
	s.req = append(s.req, "\r\n\r\n"...)
	s.req = append(s.req, s.body...)
	status, err := s.roundTrip()
	if err != nil {
		s.close()
		return 0, err
	}
	return status, nil
}

func (s *rawSender) roundTrip() (int, error) {
	if s.conn == nil {
		d := net.Dialer{Timeout: requestTimeout}
		c, err := d.DialContext(s.ctx, "tcp", s.addr)
		if err != nil {
			return 0, err
		}
		if !s.conns.add(c) {
			c.Close()
			return 0, context.Canceled
		}
		s.conn = c
		if s.r == nil {
			s.r = bufio.NewReaderSize(c, 4096)
		} else {
			s.r.Reset(c)
		}
	}
	if now := time.Now(); s.deadline.Sub(now) < requestTimeout-time.Second {
		s.deadline = now.Add(requestTimeout)
		s.conn.SetDeadline(s.deadline)
		if err := s.ctx.Err(); err != nil { // cancelled before this deadline replaced its own
			return 0, err
		}
	}
	if _, err := s.conn.Write(s.req); err != nil {
		return 0, err
	}
	line, err := s.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, fmt.Errorf("load test: malformed status line %.40q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("load test: malformed status line %.40q", line)
	}
	length, chunked, closeConn := -1, false, false
	for {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 {
				return 0, fmt.Errorf("load test: bad Content-Length %.40q", value)
			}
			length = n
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "Connection"):
			closeConn = asciiEqualFold(value, "close")
		}
	}
	switch {
	case chunked:
		if err := s.discardChunked(); err != nil {
			return 0, err
		}
	case length >= 0:
		if _, err := s.r.Discard(length); err != nil {
			return 0, err
		}
	default: // the body runs to the end of the connection
		if _, err := io.Copy(io.Discard, s.r); err != nil {
			return 0, err
		}
		closeConn = true
	}
	if closeConn {
		s.close()
	}
	return status, nil
}

// discardChunked reads and drops a chunked body and its trailer.
func (s *rawSender) discardChunked() error {
	for {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("load test: bad chunk size %.40q", line)
		}
		if n == 0 {
			for { // trailer, up to the blank line
				line, err := s.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := s.r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}

func (s *rawSender) close() {
	if s.conn != nil {
		s.conns.remove(s.conn)
		s.conn.Close()
		s.conn, s.deadline = nil, time.Time{}
	}
}

// asciiEqualFold reports whether b equals s in ASCII, ignoring case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
