package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

var features = []string{"amount_eur", "card_count_1h", "card_sum_24h", "terminal_risk_28d"}

// decided returns the i-th event of a realistic decided stream: approvals posted to the
// ledger, reviews and declines with rule and model reasons, a ledger rejection, a late
// event, ids and versions that need escaping.
func decided(prefix string, i int) *pipeline.Event {
	ev := &pipeline.Event{Seq: uint64(i), Source: "in.ndjson", Pos: int64(i) * 180}
	card := fmt.Sprintf("card-%d", i%17)
	ev.Tx = pipeline.Transaction{
		ID:     fmt.Sprintf("%s-%06d", prefix, i),
		TSText: fmt.Sprintf("2026-11-25T10:%02d:%02d.%03dZ", i/60%60, i%60, i%1000),
		TS:     1795601730123 + int64(i)*1000, CardID: card, AccountID: "acct-" + card,
		MerchantID: fmt.Sprintf("m-%d", i%31), Amount: int64(1000 + 37*i),
		Currency: pipeline.Currency{Code: "EUR", Digits: 2}, Channel: pipeline.ChannelEcom, Country: "DE",
	}
	ev.Decision = pipeline.Decision{Outcome: pipeline.Approve, Ledger: pipeline.LedgerPosted,
		Model: "gbt-2026-11-20", Rules: "sha256:9f2c01", Score: float64(i%100) / 128, HasScore: true}
	ev.Features = []float64{float64(1000+37*i) / 100, float64(i % 5), float64(i%13) * 12.5, float64(i%7) / 10}
	switch {
	case i%11 == 3:
		ev.Decision.Outcome, ev.Decision.Ledger = pipeline.Decline, pipeline.LedgerSkipped
		ev.Decision.Reasons = []string{"rule:card_testing", "model:score>=0.90"}
		ev.Decision.Score = 0.97
	case i%11 == 7:
		ev.Decision.Outcome, ev.Decision.Ledger = pipeline.Review, pipeline.LedgerSkipped
		ev.Decision.Reasons = []string{"rule:new_country"}
	case i%11 == 9:
		ev.Decision.Outcome, ev.Decision.Ledger = pipeline.Decline, pipeline.LedgerRejected
		ev.Decision.Reasons = []string{"ledger:insufficient_funds"}
	case i%23 == 5:
		ev.Tx.ID = fmt.Sprintf("%s-\"quoted\"-é-%d", prefix, i)
		ev.Decision.HasScore = false
		ev.Decision.Model = ""
	}
	ev.Late = i%29 == 13
	return ev
}

func stream(prefix string, from, to int) []*pipeline.Event {
	evs := make([]*pipeline.Event, 0, to-from)
	for i := from; i < to; i++ {
		evs = append(evs, decided(prefix, i))
	}
	return evs
}

// writeAll writes events in batches of per, reusing one slice as the engine does, and
// flushes after each batch.
func writeAll(t testing.TB, s *Sink, evs []*pipeline.Event, per int) {
	t.Helper()
	ctx := context.Background()
	buf := make([]*pipeline.Event, 0, per)
	for i := 0; i < len(evs); i += per {
		buf = append(buf[:0], evs[i:min(i+per, len(evs))]...)
		if err := s.WriteBatch(ctx, buf); err != nil {
			t.Fatalf("WriteBatch: %v", err)
		}
		clear(buf)
		if err := s.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
}

// writeLog writes evs to a new log at path and closes it.
func writeLog(t testing.TB, path string, evs []*pipeline.Event, per int, o Options) {
	t.Helper()
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, evs, per)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// logBytes returns the log of n records of the realistic stream.
func logBytes(t testing.TB, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	writeLog(t, path, stream("tx", 0, n), 64, Options{Features: features})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func splitLines(b []byte) [][]byte {
	return bytes.SplitAfter(b, []byte{'\n'})[:bytes.Count(b, []byte{'\n'})]
}

func joinLines(lines [][]byte) []byte { return bytes.Join(lines, nil) }

func mustVerify(t *testing.T, b []byte) Result {
	t.Helper()
	res, err := Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}
