package main

import (
	"bytes"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sources/gen"
)

// BenchmarkScoringStage measures the whole scoring stage of the built-in config on one
// core: the terminal features (ordered), then in one partition enrichment, velocity, the
// bundled model and the built-in rules, over generated transactions decoded beforehand.
// ns/op is per transaction; tx/s is its inverse.
func BenchmarkScoringStage(b *testing.B) {
	o := gen.DefaultOptions()
	o.Customers, o.Terminals, o.Days = 5000, 10000, 30
	var buf bytes.Buffer
	if _, err := gen.Write(&buf, o); err != nil {
		b.Fatal(err)
	}
	var txs []pipeline.Transaction
	for line := range bytes.Lines(buf.Bytes()) {
		var tx pipeline.Transaction
		if err := pipeline.DecodeTransaction(bytes.TrimSpace(line), &tx); err != nil {
			b.Fatal(err)
		}
		txs = append(txs, tx)
	}
	cfg := config.Default()
	sc, err := scorersFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rs, err := rulesFor(cfg, sc.schema)
	if err != nil {
		b.Fatal(err)
	}
	var scorers []pipeline.Scorer
	for _, f := range append(sc.scorers, rs) {
		s, err := f.NewScorer(0)
		if err != nil {
			b.Fatal(err)
		}
		scorers = append(scorers, s)
	}
	var crossIdx []int
	for _, o := range sc.ordered {
		crossIdx = append(crossIdx, o.Features()...)
	}
	cross := make([]float64, len(crossIdx))
	ev := &pipeline.Eval{Features: make([]float64, sc.schema.Len())}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tx := &txs[i%len(txs)]
		if i > 0 && i%len(txs) == 0 {
			b.StopTimer() // a new pass: new ids and later times, so state keeps growing as in a stream
			for j := range txs {
				txs[j].TS += int64(o.Days) * 86_400_000
				txs[j].ID += "'"
			}
			b.StartTimer()
		}
		off := 0
		for _, o := range sc.ordered {
			k := len(o.Features())
			o.Score(tx, false, cross[off:off+k])
			off += k
		}
		ev.Tx, ev.Hits = tx, ev.Hits[:0]
		clear(ev.Features)
		for k, idx := range crossIdx {
			ev.Features[idx] = cross[k]
		}
		ev.Score, ev.HasScore = 0, false
		for _, s := range scorers {
			s.Score(ev)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}
