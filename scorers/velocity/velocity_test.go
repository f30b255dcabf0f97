package velocity

import (
	"strconv"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/window"
)

func newScorer(t *testing.T) (*Factory, *Scorer, *pipeline.FeatureSchema) {
	t.Helper()
	schema := pipeline.NewFeatureSchema()
	f, err := New(Config{
		Windows:    window.Config{Durations: []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}, MaxEvents: 64, TTL: 7 * 24 * time.Hour},
		NightStart: 0, NightEnd: 6,
	}, schema)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.NewScorer(0)
	if err != nil {
		t.Fatal(err)
	}
	return f, s.(*Scorer), schema
}

func score(t *testing.T, s *Scorer, schema *pipeline.FeatureSchema, card, merchant, ts, amount, currency string) map[string]float64 {
	t.Helper()
	line := `{"id":"x","ts":"` + ts + `","card_id":"` + card + `","account_id":"a","merchant_id":"` + merchant + `","amount":"` + amount + `","currency":"` + currency + `"}`
	var tx pipeline.Transaction
	if err := pipeline.DecodeTransaction([]byte(line), &tx); err != nil {
		t.Fatal(err)
	}
	e := &pipeline.Eval{Tx: &tx, Features: make([]float64, schema.Len())}
	s.Score(e)
	out := map[string]float64{}
	for i, n := range schema.Names() {
		out[n] = e.Features[i]
	}
	return out
}

func TestFeatureNames(t *testing.T) {
	_, _, schema := newScorer(t)
	want := []string{"amount", "is_weekend", "is_night", "secs_since_last",
		"card_count_1h", "card_mean_amount_1h", "card_distinct_merchants_1h",
		"card_count_1d", "card_mean_amount_1d", "card_distinct_merchants_1d",
		"card_count_7d", "card_mean_amount_7d", "card_distinct_merchants_7d"}
	got := schema.Names()
	if len(got) != len(want) {
		t.Fatalf("features %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("feature %d = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestVelocityFeatures(t *testing.T) {
	_, s, schema := newScorer(t)
	steps := []struct {
		card, merchant, ts, amount, currency string
		want                                 map[string]float64
	}{
		// Wednesday 2026-11-25, 10:00 UTC: first payment of card c1.
		{"c1", "m1", "2026-11-25T10:00:00Z", "10.00", "EUR", map[string]float64{
			"amount": 10, "secs_since_last": -1, "card_count_1h": 1, "card_mean_amount_1h": 10, "card_distinct_merchants_1h": 1, "is_weekend": 0, "is_night": 0}},
		// 30 minutes later, another merchant.
		{"c1", "m2", "2026-11-25T10:30:00Z", "20.00", "EUR", map[string]float64{
			"secs_since_last": 1800, "card_count_1h": 2, "card_mean_amount_1h": 15, "card_distinct_merchants_1h": 2}},
		// Exactly one hour after the first: the first is out of the 1h window, in the 1d one.
		{"c1", "m1", "2026-11-25T11:00:00Z", "30.00", "EUR", map[string]float64{
			"card_count_1h": 2, "card_mean_amount_1h": 25, "card_distinct_merchants_1h": 2, "card_count_1d": 3, "card_mean_amount_1d": 20, "card_distinct_merchants_1d": 2}},
		// Another card is independent.
		{"c2", "m1", "2026-11-25T11:00:01Z", "5", "JPY", map[string]float64{
			"amount": 5, "secs_since_last": -1, "card_count_1d": 1, "card_mean_amount_1d": 5}},
		// Saturday 2026-11-28 at 02:00 local time (+01:00): weekend and night in the payer's zone.
		{"c1", "m3", "2026-11-28T02:00:00+01:00", "40.00", "EUR", map[string]float64{
			"is_weekend": 1, "is_night": 1, "card_count_1d": 1, "card_count_7d": 4, "card_mean_amount_7d": 25, "card_distinct_merchants_7d": 3}},
		// Sunday 23:30 UTC is Monday 00:30 at +01:00: night, not weekend.
		{"c1", "m3", "2026-11-29T23:30:00Z", "1.00", "EUR", map[string]float64{"is_weekend": 1, "is_night": 0}},
		{"c1", "m3", "2026-11-30T00:30:00+01:00", "1.00", "EUR", map[string]float64{"is_weekend": 0, "is_night": 1, "secs_since_last": 0}},
		{"c1", "m3", "2026-11-30T07:30:00+01:00", "1.00", "EUR", map[string]float64{"is_weekend": 0, "is_night": 0}},
	}
	for i, st := range steps {
		got := score(t, s, schema, st.card, st.merchant, st.ts, st.amount, st.currency)
		for k, v := range st.want {
			if got[k] != v {
				t.Errorf("step %d (%s %s): %s = %v, want %v", i, st.card, st.ts, k, got[k], v)
			}
		}
	}
}

func TestIdleCardsExpire(t *testing.T) {
	_, s, schema := newScorer(t)
	score(t, s, schema, "old", "m", "2026-11-01T10:00:00Z", "1.00", "EUR")
	score(t, s, schema, "new", "m", "2026-11-05T10:00:00Z", "1.00", "EUR")
	if n := s.store.Len(); n != 2 {
		t.Fatalf("%d keys, want 2", n)
	}
	// Eight days later, the TTL (7d) has passed for both; the sweep keeps only the new event's card.
	score(t, s, schema, "latest", "m", "2026-11-13T10:00:00Z", "1.00", "EUR")
	if n := s.store.Len(); n != 1 {
		t.Errorf("%d keys after the TTL, want 1", n)
	}
	got := score(t, s, schema, "old", "m", "2026-11-13T11:00:00Z", "1.00", "EUR")
	if got["secs_since_last"] != NoPrevious || got["card_count_7d"] != 1 {
		t.Errorf("an expired card kept its history: %v", got)
	}
}

func TestLabel(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 24 * time.Hour: "1d", 30 * 24 * time.Hour: "30d", 90 * time.Minute: "90m", 36 * time.Hour: "36h", 45 * time.Second: "45s"} {
		if got := Label(d); got != want {
			t.Errorf("Label(%v) = %s, want %s", d, got, want)
		}
	}
}

func BenchmarkScore(b *testing.B) {
	schema := pipeline.NewFeatureSchema()
	f, _ := New(Config{Windows: window.Config{Durations: window.DefaultDurations(), MaxEvents: 256, TTL: 30 * 24 * time.Hour}, NightEnd: 6}, schema)
	sc, _ := f.NewScorer(0)
	txs := make([]pipeline.Transaction, 5000)
	for i := range txs {
		txs[i] = pipeline.Transaction{CardID: "card-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)), MerchantID: "m", Amount: 1234, Currency: pipeline.Currency{Code: "EUR", Digits: 2}, TSText: "2026-11-25T10:00:00Z"}
	}
	e := &pipeline.Eval{Features: make([]float64, schema.Len())}
	ts := int64(1_790_000_000_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tx := &txs[i%len(txs)]
		ts += 600 // ~ 144 transactions per card per 30 days at 5000 cards
		tx.TS = ts
		e.Tx = tx
		sc.Score(e)
		i++
	}
}

func TestMaxCardsBound(t *testing.T) {
	schema := pipeline.NewFeatureSchema()
	f, _ := New(Config{Windows: window.Config{Durations: []time.Duration{time.Hour}}, MaxCards: 100}, schema)
	sc, _ := f.NewScorer(0)
	s := sc.(*Scorer)
	for i := range 1000 {
		ts := time.Date(2026, 11, 25, 10, 0, i, 0, time.UTC).Format(time.RFC3339)
		score(t, s, schema, "card-"+strconv.Itoa(i), "m", ts, "1.00", "EUR")
		if n := s.store.Len(); n > 100 {
			t.Fatalf("%d cards kept, bound 100", n)
		}
	}
	st := f.Stats()
	if st.EvictedCards < 900 || st.Cards > 100 || st.Cards+st.EvictedCards != 1000 {
		t.Errorf("stats %+v", st)
	}
	// The most recent cards survive.
	if got := score(t, s, schema, "card-999", "m", "2026-11-25T10:16:40Z", "1.00", "EUR"); got["card_count_1h"] != 2 {
		t.Errorf("the newest card was evicted: %v", got)
	}
}
