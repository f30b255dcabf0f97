package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkScore scores one transaction with the default rules over the test schema, as a
// partition worker does for every transaction.
func BenchmarkScore(b *testing.B) {
	rs, err := Default(testSchema(b))
	if err != nil {
		b.Fatal(err)
	}
	s, err := rs.NewScorer(0)
	if err != nil {
		b.Fatal(err)
	}
	// An ordinary card: some history, nothing fires.
	ev := newEval(b, map[string]float64{
		"card_count_1h": 2, "card_count_1d": 3, "card_count_7d": 10, "card_count_30d": 25,
		"card_mean_amount_1d": 30, "card_mean_amount_7d": 35, "card_mean_amount_30d": 40,
		"card_distinct_merchants_1h": 1, "card_distinct_merchants_1d": 2,
		"secs_since_last": 600, "is_night": 0, "amount": 123.45,
	})
	b.ReportAllocs()
	for b.Loop() {
		ev.Hits = ev.Hits[:0]
		s.Score(ev)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(rs.Rules())), "ns/rule")
}

// BenchmarkParse compiles the default rule file.
func BenchmarkParse(b *testing.B) {
	schema := testSchema(b)
	for b.Loop() {
		if _, err := Parse("default.yaml", defaultYAML, schema); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParse checks that no rule file makes Parse panic, and that a file that compiles scores
// a transaction without panicking either.
func FuzzParse(f *testing.F) {
	f.Add(defaultYAML)
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range seeds {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	schema := testSchema(f)
	ev := newEval(f, map[string]float64{"card_count_1h": 3, "card_mean_amount_30d": 12.5})
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("fuzz.yaml", data, schema)
		if err != nil {
			if err.Error() == "" {
				t.Error("empty error")
			}
			return
		}
		s, err := rs.NewScorer(0)
		if err != nil {
			t.Fatal(err)
		}
		ev.Hits = ev.Hits[:0]
		s.Score(ev)
		if len(ev.Hits) > len(rs.Rules()) {
			t.Errorf("%d hits from %d rules", len(ev.Hits), len(rs.Rules()))
		}
	})
}
