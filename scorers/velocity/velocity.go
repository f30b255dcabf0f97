// Package velocity computes per-card velocity features over sliding event-time windows:
// counts, mean amounts and distinct merchants per window, time since the card's previous
// transaction, and weekend and night flags (the fraud-detection handbook's customer
// features, keyed by card).
package velocity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/window"
)

// Config configures the velocity features.
type Config struct {
	Windows    window.Config
	NightStart int // first hour of the night, in the transaction's own zone offset
	NightEnd   int // last hour of the night, inclusive
	// MaxCards bounds the cards one partition keeps (0: no bound). Past it, the cards idle
	// the longest are forgotten, a tenth of the bound at a time.
	MaxCards int
}

// Factory declares the velocity features on a schema and builds one Scorer per partition.
type Factory struct {
	scorers                []*Scorer
	cfg                    Config
	amount, weekend, night int
	sinceLast              int
	count, mean, distinct  []int
}

// NoPrevious is the value of secs_since_last for a card's first transaction.
const NoPrevious = -1

// New declares the features on schema: amount, is_weekend, is_night, secs_since_last,
// and card_count_<w>, card_mean_amount_<w>, card_distinct_merchants_<w> for every window w.
func New(cfg Config, schema *pipeline.FeatureSchema) (*Factory, error) {
	if len(cfg.Windows.Durations) == 0 {
		return nil, fmt.Errorf("velocity: no window durations")
	}
	if err := cfg.Windows.Validate(); err != nil {
		return nil, fmt.Errorf("velocity: %w", err)
	}
	f := &Factory{cfg: cfg}
	var err error
	declare := func(name string) int {
		i, e := schema.Declare(name)
		if e != nil && err == nil {
			err = fmt.Errorf("velocity: %w", e)
		}
		return i
	}
	f.amount = declare("amount")
	f.weekend = declare("is_weekend")
	f.night = declare("is_night")
	f.sinceLast = declare("secs_since_last")
	for _, d := range cfg.Windows.Durations {
		l := Label(d)
		f.count = append(f.count, declare("card_count_"+l))
		f.mean = append(f.mean, declare("card_mean_amount_"+l))
		f.distinct = append(f.distinct, declare("card_distinct_merchants_"+l))
	}
	return f, err
}

// Label names a window duration in feature names: 1h, 90m, 1d, 7d, 30d.
func Label(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// Version reports no model or rules version: velocity only computes features.
func (f *Factory) Version() (kind, version string) { return "", "" }

// NewScorer returns the scorer of one partition, with its own window store.
func (f *Factory) NewScorer(int) (pipeline.Scorer, error) {
	store := window.NewStore(f.cfg.Windows)
	sc := &Scorer{f: f, store: store, stats: make([]window.Stats, len(store.Config().Durations))}
	f.scorers = append(f.scorers, sc)
	return sc, nil
}

// Stats are the velocity state's counts, summed over partitions.
type Stats struct {
	Cards        int64 // cards with state now
	ExpiredCards int64 // forgotten after windows.ttl of event time without a payment
	EvictedCards int64 // forgotten early to stay within the per-partition bound
}

// Stats sums the counts of every partition's scorer. It may be called while the engine
// runs: the counts are read atomically.
func (f *Factory) Stats() Stats {
	var st Stats
	for _, s := range f.scorers {
		st.Cards += s.cards.Load()
		st.ExpiredCards += s.expired.Load()
		st.EvictedCards += s.evicted.Load()
	}
	return st
}

// Scorer computes the velocity features for one partition's cards.
type Scorer struct {
	f            *Factory
	store        *window.Store
	stats        []window.Stats
	maxTS        int64 // the newest event time this partition has seen
	nextExpire   int64
	lastSnapshot int // size of the last snapshot, to size the next one's buffer

	cards, expired, evicted atomic.Int64
}

// expireEvery is how much event time passes between sweeps of idle cards: a sweep visits
// every key, so it runs on a coarse step of event time, not per transaction.
const expireEvery = int64(time.Hour / time.Millisecond)

// Score adds this transaction to its card's windows and writes the features.
func (s *Scorer) Score(e *pipeline.Eval) {
	tx := e.Tx
	f := s.f
	unit := tx.Currency.MinorPerMajor()
	ft := e.Features
	ft[f.amount] = float64(tx.Amount) / unit
	local := tx.TS/1000 + zoneOffset(tx.TSText)
	hour := int((local%86400/3600 + 24) % 24)
	day := ((local/86400)%7 + 7 + 4) % 7 // 1970-01-01 was a Thursday (4); 0 = Sunday
	if day == 0 || day == 6 {
		ft[f.weekend] = 1
	}
	if inNight(hour, f.cfg.NightStart, f.cfg.NightEnd) {
		ft[f.night] = 1
	}
	if e.Late {
		// Too late to change state that later transactions have already read: decide from
		// the windows as they are.
		stats := s.store.Peek(tx.CardID, tx.TS, s.stats)
		ft[f.sinceLast] = NoPrevious
		s.fill(ft, stats, unit)
		return
	}
	if tx.TS > s.maxTS {
		s.maxTS = tx.TS
		if s.maxTS >= s.nextExpire {
			s.expired.Add(int64(s.store.Expire(s.maxTS)))
			s.nextExpire = s.maxTS + expireEvery
		}
	}
	if max := f.cfg.MaxCards; max > 0 && s.store.Len() >= max {
		s.evicted.Add(int64(s.store.EvictOldest(max - max/10 - 1)))
	}
	stats, prev, ok := s.store.Observe(tx.CardID, window.Event{TS: tx.TS, Amount: tx.Amount, Distinct: hash64(tx.MerchantID)}, s.stats)
	if ok {
		ft[f.sinceLast] = float64(tx.TS-prev.TS) / 1000
	} else {
		ft[f.sinceLast] = NoPrevious
	}
	s.fill(ft, stats, unit)
	s.cards.Store(int64(s.store.Len()))
}

func (s *Scorer) fill(ft []float64, stats []window.Stats, unit float64) {
	f := s.f
	for i, st := range stats {
		ft[f.count[i]] = float64(st.Count)
		ft[f.mean[i]] = st.Mean() / unit
		ft[f.distinct[i]] = float64(st.Distinct)
	}
}

// Snapshot encodes the partition's windows for a checkpoint, into a buffer sized from the
// last snapshot so that a large state is not copied while it grows.
func (s *Scorer) Snapshot() ([]byte, error) {
	b := make([]byte, 0, s.lastSnapshot+s.lastSnapshot/8+64)
	b = binary.AppendVarint(b, s.maxTS)
	b = binary.AppendVarint(b, s.nextExpire)
	b, err := s.store.AppendBinary(b)
	s.lastSnapshot = len(b)
	return b, err
}

// Restore replaces the partition's windows with a snapshot.
func (s *Scorer) Restore(data []byte) error {
	maxTS, n := binary.Varint(data)
	if n <= 0 {
		return errors.New("velocity: corrupt snapshot")
	}
	next, m := binary.Varint(data[n:])
	if m <= 0 {
		return errors.New("velocity: corrupt snapshot")
	}
	if err := s.store.UnmarshalBinary(data[n+m:]); err != nil {
		return fmt.Errorf("velocity: %w", err)
	}
	s.maxTS, s.nextExpire = maxTS, next
	return nil
}

func inNight(hour, start, end int) bool {
	if start <= end {
		return hour >= start && hour <= end
	}
	return hour >= start || hour <= end
}

// zoneOffset reads the zone of an RFC 3339 time ("Z", "+02:00") in seconds east of UTC, so
// that night and weekend are judged in the payment's own local time.
func zoneOffset(ts string) int64 {
	n := len(ts)
	if n < 6 || ts[n-1] == 'Z' || ts[n-1] == 'z' {
		return 0
	}
	sign := ts[n-6]
	if (sign != '+' && sign != '-') || ts[n-3] != ':' {
		return 0
	}
	h := int64(ts[n-5]-'0')*10 + int64(ts[n-4]-'0')
	m := int64(ts[n-2]-'0')*10 + int64(ts[n-1]-'0')
	off := h*3600 + m*60
	if sign == '-' {
		off = -off
	}
	return off
}

// hash64 is FNV-1a, for distinct counts of merchants.
func hash64(s string) uint64 {
	if s == "" {
		return 0
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Register adds the state's metrics to reg: cards held, and cards forgotten by TTL and by
// the per-partition bound.
func (f *Factory) Register(reg prometheus.Registerer) error {
	return errors.Join(
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fraudpipe_state_cards", Help: "Cards with velocity state, over all partitions.",
		}, func() float64 { return float64(f.Stats().Cards) })),
		reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fraudpipe_state_cards_expired_total", Help: "Cards forgotten after windows.ttl of event time without a payment.",
		}, func() float64 { return float64(f.Stats().ExpiredCards) })),
		reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fraudpipe_state_cards_evicted_total", Help: "Cards forgotten early to stay within windows.max_cards_per_partition.",
		}, func() float64 { return float64(f.Stats().EvictedCards) })),
	)
}
