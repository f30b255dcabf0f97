package terminal_test

import (
	"bytes"
	"context"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/window"
	"github.com/fraudpipe/fraudpipe/scorers/terminal"
	"github.com/fraudpipe/fraudpipe/scorers/velocity"
	"github.com/fraudpipe/fraudpipe/sources/feedback"
	filesource "github.com/fraudpipe/fraudpipe/sources/file"
	"github.com/fraudpipe/fraudpipe/sources/gen"
)

// features collects each decided transaction's feature values by id.
type features struct {
	byID map[string][]float64
}

func (f *features) WriteBatch(_ context.Context, evs []*pipeline.Event) error {
	for _, ev := range evs {
		f.byID[ev.Tx.ID] = append([]float64(nil), ev.Features...)
	}
	return nil
}
func (f *features) Flush(context.Context) error { return nil }
func (f *features) Close(context.Context) error { return nil }

const day = int64(24 * time.Hour / time.Millisecond)

// TestHandbookFeatures computes the fraud-detection handbook's 15 features with the engine
// (velocity for the per-customer ones: one card per customer in the generator; terminal for
// the per-terminal ones, from feedback made of the labels a week later) on a generated
// stream, and checks every value against a straightforward computation from the
// handbook's definitions over the whole stream.
func TestHandbookFeatures(t *testing.T) {
	o := gen.DefaultOptions()
	o.Customers, o.Days, o.Seed = 400, 45, 7
	var stream bytes.Buffer
	if _, err := gen.Write(&stream, o); err != nil {
		t.Fatal(err)
	}
	data := stream.Bytes()

	schema := pipeline.NewFeatureSchema()
	vel, err := velocity.New(velocity.Config{
		Windows:    window.Config{Durations: []time.Duration{24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}, MaxEvents: 1024, TTL: 31 * 24 * time.Hour},
		NightStart: 0, NightEnd: 6,
	}, schema)
	if err != nil {
		t.Fatal(err)
	}
	term, err := terminal.New(terminal.DefaultConfig(), schema)
	if err != nil {
		t.Fatal(err)
	}
	got := &features{byID: map[string][]float64{}}
	eng, err := pipeline.NewEngine(pipeline.EngineOptions{
		Config:  pipeline.EngineConfig{Partitions: 3, KeepFeatures: true},
		Schema:  schema,
		Scorers: []pipeline.ScorerFactory{vel},
		Ordered: []pipeline.OrderedScorer{term},
		Sinks:   []pipeline.Sink{got},
	})
	if err != nil {
		t.Fatal(err)
	}
	src, err := filesource.New("gen", readCloser{bytes.NewReader(data)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Run(context.Background(), feedback.FromLabels(src, 7*24*time.Hour, 0)); err != nil {
		t.Fatal(err)
	}

	// The straightforward computation.
	var txs []pipeline.Transaction
	for line := range bytes.Lines(data) {
		var tx pipeline.Transaction
		if err := pipeline.DecodeTransaction(bytes.TrimSpace(line), &tx); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	if len(got.byID) != len(txs) {
		t.Fatalf("engine decided %d transactions, the stream has %d", len(got.byID), len(txs))
	}
	byCard := map[string][]int{}
	byTerm := map[string][]int{}
	for i, tx := range txs {
		byCard[tx.CardID] = append(byCard[tx.CardID], i)
		byTerm[tx.TerminalID] = append(byTerm[tx.TerminalID], i)
	}
	idx := func(name string) int {
		i, ok := schema.Index(name)
		if !ok {
			t.Fatalf("no feature %s", name)
		}
		return i
	}
	checked, nonzeroRisk := 0, 0
	for i, tx := range txs {
		f := got.byID[tx.ID]
		want := map[string]float64{
			"amount": float64(tx.Amount) / 100,
		}
		ts := time.UnixMilli(tx.TS).UTC()
		if wd := ts.Weekday(); wd == time.Saturday || wd == time.Sunday {
			want["is_weekend"] = 1
		} else {
			want["is_weekend"] = 0
		}
		if ts.Hour() <= 6 {
			want["is_night"] = 1
		} else {
			want["is_night"] = 0
		}
		for _, w := range []struct {
			name string
			n    int64
		}{{"1d", day}, {"7d", 7 * day}, {"30d", 30 * day}} {
			// Customer windows (t-n, t], this transaction included.
			var count, sum int64
			for _, j := range byCard[tx.CardID] {
				if j > i {
					break
				}
				if txs[j].TS > tx.TS-w.n && txs[j].TS <= tx.TS {
					count++
					sum += txs[j].Amount
				}
			}
			want["card_count_"+w.name] = float64(count)
			want["card_mean_amount_"+w.name] = float64(sum) / float64(count) / 100
			// Terminal windows (t-7d-n, t-7d], fraud known through the labels.
			var tcount, tfraud int64
			hi := tx.TS - 7*day
			for _, j := range byTerm[tx.TerminalID] {
				if txs[j].TS > hi-w.n && txs[j].TS <= hi {
					tcount++
					if txs[j].Label.Fraud {
						tfraud++
					}
				}
			}
			want["terminal_count_"+w.name] = float64(tcount)
			risk := 0.0
			if tcount > 0 {
				risk = float64(tfraud) / float64(tcount)
			}
			want["terminal_risk_"+w.name] = risk
			if risk > 0 {
				nonzeroRisk++
			}
		}
		names := make([]string, 0, len(want))
		for n := range want {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if g := f[idx(n)]; math.Abs(g-want[n]) > 1e-9 {
				t.Fatalf("%s (%s) %s = %v, want %v", tx.ID, tx.TSText, n, g, want[n])
			}
		}
		checked++
	}
	if nonzeroRisk == 0 {
		t.Fatal("no transaction had a terminal risk above 0: the stream tests nothing")
	}
	t.Logf("checked 15 features of %d transactions (%d non-zero terminal risks)", checked, nonzeroRisk)
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
