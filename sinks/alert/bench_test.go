package alert

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
)

// BenchmarkWebhook measures alerts per second to a local receiver that verifies every
// signature, with 4 workers and no rate limit: the cost of JSON, HMAC and HTTP on loopback.
func BenchmarkWebhook(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !Verify(secret, r.Header.Get(HeaderTimestamp), body, r.Header.Get(HeaderSignature), time.Minute, time.Now()) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	w, err := NewWebhook(WebhookConfig{URL: srv.URL, Secret: secret, Workers: 4, DedupSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(context.Background())
	const batch = 100
	ctx := context.Background()
	evs := make([]*pipeline.Event, batch)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range evs {
			evs[i] = sinktest.Event(n, fmt.Sprintf("tx-%d", n), fmt.Sprintf("card-%d", n%64), true)
			n++
		}
		res, err := w.Write(ctx, evs)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r != nil {
				b.Fatal(r)
			}
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "alerts/s")
}

// BenchmarkSign is the signing cost of one alert body.
func BenchmarkSign(b *testing.B) {
	body := AppendJSON(nil, sinktest.Event(1, "tx-000000001", "card-1", true))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		Sign(secret, "1795601730", body)
	}
}
