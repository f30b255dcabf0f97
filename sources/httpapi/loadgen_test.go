package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// TestLoadTestReadsEveryFraming checks the lean client against net/http's server answering
// with a Content-Length, a chunked body, an error status, and Connection: close: every
// answer is counted under its status, and the connection is reused or redialled as told.
func TestLoadTestReadsEveryFraming(t *testing.T) {
	var n, badBodies atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var tx pipeline.Transaction
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
			r.Header.Get("Authorization") != "Bearer tok" || pipeline.DecodeTransaction(body, &tx) != nil {
			badBodies.Add(1)
		}
		switch n.Add(1) % 4 {
		case 0: // chunked: flushed before the handler returns, larger than any buffer
			w.Write(bytes.Repeat([]byte("x"), 10_000))
			w.(http.Flusher).Flush()
			w.Write([]byte("end"))
		case 1:
			w.Header().Set("Connection", "close")
			w.Write([]byte(`{"ok":true}`))
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"busy"}`))
		default:
			w.Write([]byte(`{}`))
		}
	}))
	defer srv.Close()
	res, err := LoadTest(context.Background(), LoadOptions{
		URL: srv.URL + PathTransactions, Rate: 400, Duration: 250 * time.Millisecond, Concurrency: 4, Token: "tok",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 100 || res.Statuses[200] != 75 || res.Statuses[503] != 25 || res.Errors != 25 {
		t.Fatalf("%s; statuses %v, first error %q", res, res.Statuses, res.FirstError)
	}
	if res.FirstError != "status 503" {
		t.Errorf("first error %q, want status 503", res.FirstError)
	}
	if badBodies.Load() != 0 {
		t.Errorf("%d requests were not a POST of a valid transaction with the token", badBodies.Load())
	}
}

// TestLoadTestHTTPS runs the load generator over TLS, where it uses net/http.
func TestLoadTestHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	res, err := LoadTest(context.Background(), LoadOptions{
		URL: srv.URL + PathTransactions, Rate: 200, Duration: 250 * time.Millisecond, Concurrency: 4,
		Body: func(i int) []byte { return tx("tls-"+strconv.Itoa(i), "card-1", "1.00") }, InsecureSkipVerify: true,
	})
	if err != nil || res.Count != 50 || res.Statuses[200] != 50 {
		t.Fatalf("%s; statuses %v, first error %q, err %v", res, res.Statuses, res.FirstError, err)
	}
}

// TestLoadTestCancelled stops a load test whose requests are never answered: it returns
// the context's error, counting the interrupted requests as transport failures.
func TestLoadTestCancelled(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	res, err := LoadTest(ctx, LoadOptions{URL: srv.URL, Rate: 100, Duration: time.Minute, Concurrency: 2})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if res.Count == 0 || res.Statuses[0] != res.Count {
		t.Errorf("%s; statuses %v: every request sent was interrupted", res, res.Statuses)
	}
}

func TestLoadTestRefusesBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://127.0.0.1/x", "127.0.0.1:8080/v1/transactions", "http://"} {
		if _, err := LoadTest(context.Background(), LoadOptions{URL: u, Rate: 1, Duration: time.Second}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

func TestAppendLoadBody(t *testing.T) {
	app := AppendLoadBody("p")
	for _, i := range []int{0, 7, 999, 1000, 123456} {
		b := app([]byte("keep"), i)
		if !bytes.HasPrefix(b, []byte("keep")) {
			t.Fatalf("body %d did not append to dst: %s", i, b)
		}
		var tx pipeline.Transaction
		if err := pipeline.DecodeTransaction(b[4:], &tx); err != nil {
			t.Fatalf("body %d is not a valid transaction: %v: %s", i, err, b[4:])
		}
		if tx.ID != "p-"+strconv.Itoa(i) || tx.CardID != "card-"+strconv.Itoa(i%1000) || tx.Amount != int64(100*(1+i%500)+i%100) {
			t.Errorf("body %d decoded to id %s card %s amount %d", i, tx.ID, tx.CardID, tx.Amount)
		}
	}
	if got, want := string(LoadBody("p")(3)), string(app(nil, 3)); got[:20] != want[:20] || !strings.HasSuffix(got, `"country":"DE"}`) {
		t.Errorf("LoadBody %s differs from AppendLoadBody %s", got, want)
	}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = app(buf[:0], 42) }); n > 0 {
		t.Errorf("AppendLoadBody allocates %.0f times per body", n)
	}
}
