package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

const ctJSON = "application/json"

var (
	_ pipeline.Source     = (*Server)(nil)
	_ pipeline.Responder  = (*Server)(nil)
	_ pipeline.Positioner = (*Server)(nil)
)

func TestOneTransaction(t *testing.T) {
	h := newHarness(t, Options{})
	h.startEngine()
	st, hdr, body := h.post(PathTransactions, ctJSON, tx("tx-1", "card-1", "12.34"), "X-Request-Id", "req-abc")
	if st != http.StatusOK {
		t.Fatalf("status %d: %s", st, body)
	}
	if got := hdr.Get("X-Request-Id"); got != "req-abc" {
		t.Errorf("X-Request-Id = %q, want the one sent", got)
	}
	if got := hdr.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	var d struct {
		ID       string             `json:"id"`
		Decision string             `json:"decision"`
		Ledger   string             `json:"ledger"`
		Features map[string]float64 `json:"features"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, body)
	}
	if d.ID != "tx-1" || d.Decision != "approve" || d.Ledger != "skipped" || d.Features["amount"] != 12.34 {
		t.Errorf("unexpected decision %s", body)
	}
	// The answer is the decision line the sink made durable before the answer was sent.
	lines := h.decisionLines("tx-1")
	if len(lines) != 1 || lines[0] != string(body) {
		t.Errorf("decisions file holds %q, the answer was %s", lines, body)
	}
	// The decision is cached for GET.
	st, _, got := h.get(PathTransactions + "/tx-1")
	if st != http.StatusOK || !bytes.Equal(got, body) {
		t.Errorf("GET: %d %s, want 200 %s", st, got, body)
	}
	st, _, got = h.get(PathTransactions + "/tx-unknown")
	if st != http.StatusNotFound || !strings.Contains(string(got), `"reason":"not_found"`) {
		t.Errorf("GET of an unknown id: %d %s", st, got)
	}
	_, hdr, _ = h.get(PathTransactions + "/tx-unknown")
	if hdr.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id generated")
	}
}

func TestSameIDTwiceDecidedOnce(t *testing.T) {
	h := newHarness(t, Options{})
	h.startEngine()
	st1, _, b1 := h.post(PathTransactions, ctJSON, tx("dup-1", "card-2", "5.00"))
	// Same id, different body: the first decision stands.
	st2, hdr2, b2 := h.post(PathTransactions, ctJSON, tx("dup-1", "card-2", "999.00"))
	if st1 != http.StatusOK || st2 != http.StatusOK || !bytes.Equal(b1, b2) {
		t.Fatalf("first %d %s, second %d %s: want the same 200 answer", st1, b1, st2, b2)
	}
	if hdr2.Get("Idempotent-Replayed") != "true" {
		t.Error("the repeat is not marked Idempotent-Replayed")
	}
	stats := h.stopEngine()
	if n := len(h.decisionLines("dup-1")); n != 1 {
		t.Errorf("decided %d times, want once", n)
	}
	if stats.Events != 1 || stats.Duplicates != 0 {
		t.Errorf("engine saw %d events, %d duplicates: the repeat must not enter it", stats.Events, stats.Duplicates)
	}
}

func TestInFlightDuplicateWaitsForTheFirst(t *testing.T) {
	h := newHarness(t, Options{Timeout: time.Minute})
	type answer struct {
		st   int
		body []byte
	}
	answers := make(chan answer, 2)
	send := func() {
		st, _, b := h.post(PathTransactions, ctJSON, tx("fly-1", "card-3", "7.00"))
		answers <- answer{st, b}
	}
	go send()
	waitFor(t, "the first request to be queued", func() bool { n, _, _ := h.srv.reg.counts(); return n == 1 })
	go send()
	waitFor(t, "the second request to join the first", func() bool { _, _, j := h.srv.reg.counts(); return j == 1 })
	h.startEngine() // only now is anything decided
	a, b := <-answers, <-answers
	if a.st != http.StatusOK || b.st != http.StatusOK || !bytes.Equal(a.body, b.body) {
		t.Fatalf("answers %d %s and %d %s, want the same 200", a.st, a.body, b.st, b.body)
	}
	stats := h.stopEngine()
	if stats.Events != 1 {
		t.Errorf("engine saw %d events, want 1", stats.Events)
	}
}

func TestBatch(t *testing.T) {
	h := newHarness(t, Options{})
	h.startEngine()
	ndjson := bytes.Join([][]byte{
		tx("b-1", "card-4", "1.00"),
		[]byte(`{"id":"b-2","ts":"2026-11-25T10:15:30Z","card_id":"card-4","account_id":"a","merchant_id":"m","amount":"-3","currency":"EUR"}`),
		{},
		[]byte(`not json`),
		tx("b-3", "card-5", "2.00"),
		tx("b-1", "card-4", "1.00"), // the same id again in one batch: the same decision
	}, []byte("\n"))
	st, _, body := h.post(PathBatch, "application/x-ndjson", ndjson)
	if st != http.StatusOK {
		t.Fatalf("status %d: %s", st, body)
	}
	var res struct {
		Decisions []json.RawMessage `json:"decisions"`
		Errors    []struct {
			Index  int    `json:"index"`
			Reason string `json:"reason"`
			Detail string `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(res.Decisions) != 3 || len(res.Errors) != 2 {
		t.Fatalf("want 3 decisions and 2 errors, got %s", body)
	}
	for i, want := range []string{"b-1", "b-3", "b-1"} {
		if !bytes.HasPrefix(res.Decisions[i], []byte(`{"id":"`+want+`"`)) {
			t.Errorf("decision %d is %s, want %s", i, res.Decisions[i], want)
		}
	}
	if !bytes.Equal(res.Decisions[0], res.Decisions[2]) {
		t.Error("the repeated id got another decision")
	}
	if e := res.Errors[0]; e.Index != 1 || e.Reason != pipeline.ReasonBadAmount || e.Detail == "" {
		t.Errorf("error 0 = %+v, want index 1 bad_amount", e)
	}
	if e := res.Errors[1]; e.Index != 2 || e.Reason != pipeline.ReasonInvalidJSON {
		t.Errorf("error 1 = %+v, want index 2 (blank lines do not count) invalid_json", e)
	}
	if lines := h.decisionLines("b-3"); len(lines) != 1 || lines[0] != string(res.Decisions[1]) {
		t.Errorf("decisions file holds %q for b-3", lines)
	}

	// A JSON array, with b-3 decided already: it comes from the cache.
	arr := []byte(`[` + string(tx("b-3", "card-5", "2.00")) + `, {"id":"b-4"}, ` + string(tx("b-5", "card-6", "3.00")) + `]`)
	st, _, body = h.post(PathBatch, ctJSON, arr)
	if st != http.StatusOK {
		t.Fatalf("array: status %d: %s", st, body)
	}
	res.Decisions, res.Errors = nil, nil
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Decisions) != 2 || len(res.Errors) != 1 || res.Errors[0].Index != 1 || res.Errors[0].Reason != pipeline.ReasonMissingField {
		t.Fatalf("array answer %s", body)
	}
	stats := h.stopEngine()
	if stats.Events != 3 {
		t.Errorf("engine saw %d events, want 3 (b-1, b-3, b-5)", stats.Events)
	}
}

func TestRequestErrors(t *testing.T) {
	h := newHarness(t, Options{MaxBodyBytes: 1 << 10, MaxBatch: 3, MaxBatchBytes: 4 << 10})
	big := append(tx("big", "c", "1.00"), bytes.Repeat([]byte(" "), 2<<10)...)
	cases := []struct {
		name, method, path, ct string
		body                   []byte
		status                 int
		reason                 string
	}{
		{"negative amount", "POST", PathTransactions, ctJSON, []byte(`{"id":"e1","ts":"2026-11-25T10:15:30Z","card_id":"c","account_id":"a","merchant_id":"m","amount":"-1.00","currency":"EUR"}`), 400, pipeline.ReasonBadAmount},
		{"too many fraction digits", "POST", PathTransactions, ctJSON, []byte(`{"id":"e2","ts":"2026-11-25T10:15:30Z","card_id":"c","account_id":"a","merchant_id":"m","amount":"1.001","currency":"EUR"}`), 400, pipeline.ReasonBadAmount},
		{"unknown currency", "POST", PathTransactions, ctJSON, []byte(`{"id":"e3","ts":"2026-11-25T10:15:30Z","card_id":"c","account_id":"a","merchant_id":"m","amount":"1.00","currency":"XXQ"}`), 400, pipeline.ReasonUnknownCurrency},
		{"bad time", "POST", PathTransactions, ctJSON, []byte(`{"id":"e4","ts":"yesterday","card_id":"c","account_id":"a","merchant_id":"m","amount":"1.00","currency":"EUR"}`), 400, pipeline.ReasonBadTime},
		{"missing card", "POST", PathTransactions, ctJSON, []byte(`{"id":"e5","ts":"2026-11-25T10:15:30Z","account_id":"a","merchant_id":"m","amount":"1.00","currency":"EUR"}`), 400, pipeline.ReasonMissingField},
		{"bad channel", "POST", PathTransactions, ctJSON, []byte(`{"id":"e6","ts":"2026-11-25T10:15:30Z","card_id":"c","account_id":"a","merchant_id":"m","amount":"1.00","currency":"EUR","channel":"fax"}`), 400, pipeline.ReasonBadField},
		{"not JSON", "POST", PathTransactions, ctJSON, []byte(`{"id":`), 400, pipeline.ReasonInvalidJSON},
		{"empty", "POST", PathTransactions, ctJSON, nil, 400, pipeline.ReasonInvalidJSON},
		{"body over the limit", "POST", PathTransactions, ctJSON, big, 413, ReasonTooLarge},
		{"batch over the byte limit", "POST", PathBatch, "application/x-ndjson", bytes.Repeat(append(tx("x", "c", "1.00"), '\n'), 40), 413, ReasonTooLarge},
		{"batch over the count limit", "POST", PathBatch, "application/x-ndjson", bytes.Repeat(append(tx("x", "c", "1.00"), '\n'), 4), 413, ReasonTooLarge},
		{"batch array not an array", "POST", PathBatch, ctJSON, tx("x", "c", "1.00"), 400, pipeline.ReasonInvalidJSON},
		{"text/plain", "POST", PathTransactions, "text/plain", tx("x", "c", "1.00"), 415, ReasonUnsupportedType},
		{"no content type", "POST", PathTransactions, "", tx("x", "c", "1.00"), 415, ReasonUnsupportedType},
		{"form to batch", "POST", PathBatch, "application/x-www-form-urlencoded", tx("x", "c", "1.00"), 415, ReasonUnsupportedType},
		{"GET the collection", "GET", PathTransactions, "", nil, 405, ReasonMethodNotAllowed},
		{"PUT a transaction", "PUT", PathTransactions + "/x", ctJSON, nil, 405, ReasonMethodNotAllowed},
		{"DELETE the batch", "DELETE", PathBatch, "", nil, 405, ReasonMethodNotAllowed},
		{"unknown path", "GET", "/v2/things", "", nil, 404, ReasonNotFound},
		{"root", "POST", "/", ctJSON, nil, 404, ReasonNotFound},
		{"nested id", "GET", PathTransactions + "/a/b", "", nil, 404, ReasonNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, hdr, body := do(t, c.method, h.url+c.path, c.ct, c.body)
			if st != c.status {
				t.Fatalf("status %d, want %d: %s", st, c.status, body)
			}
			var e struct{ Error, Reason, Detail string }
			if err := json.Unmarshal(body, &e); err != nil || hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("answer is not a JSON error: %v %q: %s", err, hdr.Get("Content-Type"), body)
			}
			if e.Reason != c.reason || e.Error == "" || e.Detail == "" {
				t.Errorf("answer %s, want reason %s with error and detail", body, c.reason)
			}
			if st == 405 && hdr.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	if n, _, _ := h.srv.reg.counts(); n != 0 {
		t.Errorf("%d calls in flight after refused requests", n)
	}
}

func TestTimeoutAnswers503(t *testing.T) {
	h := newHarness(t, Options{Timeout: 100 * time.Millisecond})
	// No engine runs: nothing is decided.
	st, hdr, body := h.post(PathTransactions, ctJSON, tx("slow-1", "card-7", "1.00"))
	if st != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "1" || !strings.Contains(string(body), `"reason":"timeout"`) {
		t.Fatalf("got %d Retry-After %q %s, want 503 with Retry-After 1", st, hdr.Get("Retry-After"), body)
	}
	st, hdr, _ = h.post(PathBatch, "application/x-ndjson", tx("slow-2", "card-7", "1.00"))
	if st != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "1" {
		t.Fatalf("batch got %d, want 503 with Retry-After", st)
	}
	if n, _, _ := h.srv.reg.counts(); n != 0 {
		t.Errorf("%d calls still in flight: a timed-out request must withdraw what the engine did not take", n)
	}
	// The client retries once the engine runs, until it gets its answer: decided once.
	h.startEngine()
	waitFor(t, "a retry to be answered 200", func() bool {
		st, _, _ = h.post(PathTransactions, ctJSON, tx("slow-1", "card-7", "1.00"))
		return st == http.StatusOK
	})
	if stats := h.stopEngine(); stats.Events != 1 {
		t.Errorf("engine saw %d events, want 1: the timed-out requests must not reach it", stats.Events)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, Options{RateLimit: 0.01, Burst: 2})
	for i := range 2 {
		if st, _, body := h.get(PathTransactions + "/x"); st != http.StatusNotFound {
			t.Fatalf("request %d: %d %s", i, st, body)
		}
	}
	st, hdr, body := h.get(PathTransactions + "/x")
	if st != http.StatusTooManyRequests || !strings.Contains(string(body), `"reason":"rate_limited"`) {
		t.Fatalf("third request: %d %s, want 429", st, body)
	}
	if ra, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want whole seconds >= 1", hdr.Get("Retry-After"))
	}
}

func TestLimiterForgetsIdleClients(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newLimiter(10, 5)
	l.now = func() time.Time { return now }
	for i := range 1000 {
		l.allow(fmt.Sprint("client-", i))
	}
	if len(l.buckets) != 1000 {
		t.Fatalf("%d buckets", len(l.buckets))
	}
	now = now.Add(2 * time.Minute)
	l.allow("late")
	if len(l.buckets) != 1 {
		t.Errorf("%d buckets after every other client went idle, want 1", len(l.buckets))
	}
	for range 5 {
		l.allow("burst")
	}
	ok, wait := l.allow("burst")
	if ok || wait <= 0 || retryAfterSeconds(wait) != 1 {
		t.Errorf("sixth request of a burst of 5: allowed %v, wait %s", ok, wait)
	}
	now = now.Add(100 * time.Millisecond)
	if ok, _ := l.allow("burst"); !ok {
		t.Error("a token should have come back after 100ms at 10/s")
	}
}

func TestIdempotencyCacheIsBounded(t *testing.T) {
	r := newRegistry(10)
	for i := range 100 {
		r.mu.Lock()
		r.putLocked(fmt.Sprint(i), []byte("d"))
		r.mu.Unlock()
	}
	if n := len(r.cur) + len(r.prev); n > 10 {
		t.Errorf("cache holds %d entries, bound 10", n)
	}
	if r.lookup("99") == nil || r.lookup("0") != nil {
		t.Error("want the newest kept and the oldest forgotten")
	}
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, Options{Timeout: 10 * time.Second})
	h.startEngine()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range 200 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", h.url+PathTransactions, bytes.NewReader(tx(fmt.Sprint("sd-", i), fmt.Sprint("card-", i%5), "1.00")))
			req.Header.Set("Content-Type", ctJSON)
			resp, err := client.Do(req)
			st := 0 // refused: the listener had closed
			if err == nil {
				st = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			statuses[st]++
			mu.Unlock()
		})
	}
	waitFor(t, "some requests to be answered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return statuses[http.StatusOK] >= 5
	})
	h.serveStop() // as on SIGTERM: Serve shuts down, the others in flight
	select {
	case err := <-h.serveErr:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	h.serveErr <- nil // for the cleanup
	wg.Wait()
	t.Logf("answers by status (0: connection refused): %v", statuses)
	for st, n := range statuses {
		if st != 0 && st != http.StatusOK && st != http.StatusServiceUnavailable {
			t.Errorf("%d requests answered %d, want 200 or 503", n, st)
		}
	}
	// The input ended, so the engine stops by itself.
	h.mu.Lock()
	defer h.mu.Unlock()
	h.waitEngineLocked()
	if got, want := h.engine.Stats().Events, int64(statuses[http.StatusOK]); got < want {
		t.Errorf("engine decided %d, but %d requests were answered 200", got, want)
	}
}

func TestShutdownAnswersQueuedRequests503(t *testing.T) {
	h := newHarness(t, Options{Timeout: time.Minute})
	// No engine: the request stays queued until the shutdown gives up on it.
	done := make(chan int, 1)
	go func() {
		st, _, _ := h.post(PathTransactions, ctJSON, tx("q-1", "card-8", "1.00"))
		done <- st
	}()
	waitFor(t, "the request to be queued", func() bool { n, _, _ := h.srv.reg.counts(); return n == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err == nil {
		t.Error("Shutdown reported no cut-off request")
	}
	if st := <-done; st != http.StatusServiceUnavailable {
		t.Errorf("queued request answered %d, want 503", st)
	}
	// The input has ended: a reader gets ErrEndOfInput.
	if _, _, err := h.srv.ReadBatch(context.Background()); err != pipeline.ErrEndOfInput {
		t.Errorf("ReadBatch after Shutdown: %v, want ErrEndOfInput", err)
	}
}

// TestCheckpointRestart runs the engine with checkpoints over the API, stops it, and
// starts a new server and engine from the checkpoint: an id decided before the restart is
// answered 409 by the engine's restored state.
func TestCheckpointRestart(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, Options{}, withCheckpoints(dir))
	h.startEngine()
	st, _, body := h.post(PathTransactions, ctJSON, tx("r-1", "card-9", "1.00"))
	if st != http.StatusOK {
		t.Fatalf("%d %s", st, body)
	}
	stats := h.stopEngine()
	if stats.Checkpoints == 0 {
		t.Fatal("no checkpoint written at the end of the run")
	}
	h.stop()

	h2 := newHarness(t, Options{}, withCheckpoints(dir))
	h2.decisions = h.decisions
	h2.startEngine()
	st, _, body = h2.post(PathTransactions, ctJSON, tx("r-1", "card-9", "1.00"))
	if st != http.StatusConflict || !strings.Contains(string(body), `"reason":"duplicate_id"`) || !strings.Contains(string(body), `"error":"already decided"`) {
		t.Fatalf("repeat after restart: %d %s, want 409 duplicate_id", st, body)
	}
	st, _, _ = h2.post(PathTransactions, ctJSON, tx("r-2", "card-9", "1.00"))
	if st != http.StatusOK {
		t.Fatalf("new id after restart: %d", st)
	}
	if n := len(h2.decisionLines("r-1")); n != 1 {
		t.Errorf("r-1 decided %d times", n)
	}
}

func TestSeekRefusesAnotherSourcesPosition(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pos, _ := s.Position()
	if err := s.Seek(pos); err != nil {
		t.Errorf("Seek(own position): %v", err)
	}
	if err := s.Seek([]byte(`{"path":"in.ndjson","offset":12}`)); err == nil {
		t.Error("Seek accepted a file source's position")
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []Options{
		{TLSCert: "cert.pem"},
		{RateLimit: -1},
		{Auth: Auth{HS256Secret: []byte("short")}},
		{Auth: Auth{JWKSFile: "/nonexistent/jwks.json"}},
		{TLSCert: "/nonexistent/cert.pem", TLSKey: "/nonexistent/key.pem"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// TestClientGoneWithdrawsItsCall: a client that closes its request while the engine has not
// taken the transaction withdraws it at once, not at the timeout.
func TestClientGoneWithdrawsItsCall(t *testing.T) {
	h := newHarness(t, Options{Timeout: time.Hour})
	// No engine runs: the transaction waits in the queue.
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url+PathTransactions, bytes.NewReader(tx("gone-1", "card-1", "1.00")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctJSON)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %s", resp.Status)
		}
		errc <- err
	}()
	waitFor(t, "the transaction to be queued", func() bool { n, _, _ := h.srv.reg.counts(); return n == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v, want its own cancellation", err)
	}
	waitFor(t, "the call to be withdrawn", func() bool { n, _, _ := h.srv.reg.counts(); return n == 0 })
	// The id may enter the engine again, and is decided once.
	h.startEngine()
	if st, _, body := h.post(PathTransactions, ctJSON, tx("gone-1", "card-1", "1.00")); st != http.StatusOK {
		t.Fatalf("retry: %d %s", st, body)
	}
	if stats := h.stopEngine(); stats.Events != 1 {
		t.Errorf("engine saw %d events, want 1", stats.Events)
	}
}

// TestAnswersCarryTheirLength: every answer has a Content-Length, whether net/http sets it
// (small answers) or reply does (answers over net/http's buffer).
func TestAnswersCarryTheirLength(t *testing.T) {
	for _, n := range []int{0, 1, autoLengthBytes - 1, autoLengthBytes, autoLengthBytes + 1, 50_000} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, bytes.Repeat([]byte("x"), n))
		}))
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(method, srv.URL, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if n > 0 && resp.Header.Get("Content-Length") != strconv.Itoa(n) || resp.TransferEncoding != nil {
				t.Errorf("%s of a %d-byte answer: Content-Length %q, Transfer-Encoding %v", method, n, resp.Header.Get("Content-Length"), resp.TransferEncoding)
			}
			if method == http.MethodGet && len(body) != n {
				t.Errorf("%d-byte answer read as %d bytes", n, len(body))
			}
			if resp.Header.Get("Content-Type") != ctJSON {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
		}
		srv.Close()
	}
}
