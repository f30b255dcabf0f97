// Package history keeps two features of a card's history that windows do not give:
//
//	amount_zscore      how unusual the amount is for the card: (amount - mean) / standard
//	                   deviation of the card's earlier amounts, exponentially weighted (each
//	                   payment weighs Alpha, the older ones fade), 0 until the card has
//	                   MinHistory payments or when its amounts never varied
//	card_declines_24h  the card's payments declined by scoring (rules or model) in the 24
//	                   hours before this one; the ledger's refusals come later and do not count
//
// The declines come from the decisions: the scorer is a pipeline.DecisionObserver, told each
// decision by its partition. Like every per-card state it lives in the card's partition,
// needs no lock, forgets a card after TTL of event time without a payment, and is carried by
// checkpoints.
package history

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Config sets the weighting and the memory of the history.
type Config struct {
	Alpha      float64       // weight of each new amount in the mean and variance; default 0.05 (about the last 20 payments)
	MinHistory int           // earlier payments needed before a z-score; default 3
	TTL        time.Duration // event time a card is kept after its last payment; default 30 days
	MaxCards   int           // most cards per partition (0: no bound); the idlest go first
}

// maxDeclines bounds the declines remembered per card: more than this in a day is already
// as alarming as it gets.
const maxDeclines = 16

const dayMs = int64(24 * time.Hour / time.Millisecond)

// Factory declares the features and builds one Scorer per partition.
type Factory struct {
	cfg              Config
	zscore, declines int
}

// New declares amount_zscore and card_declines_24h on schema.
func New(cfg Config, schema *pipeline.FeatureSchema) (*Factory, error) {
	if cfg.Alpha == 0 {
		cfg.Alpha = 0.05
	}
	if cfg.MinHistory == 0 {
		cfg.MinHistory = 3
	}
	if cfg.TTL == 0 {
		cfg.TTL = 30 * 24 * time.Hour
	}
	if !(cfg.Alpha > 0 && cfg.Alpha < 1) || cfg.MinHistory < 1 || cfg.TTL < 0 || cfg.MaxCards < 0 {
		return nil, fmt.Errorf("history: bad config %+v: alpha must be in (0, 1), min history 1 or more", cfg)
	}
	f := &Factory{cfg: cfg}
	var err error
	if f.zscore, err = schema.Declare("amount_zscore"); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if f.declines, err = schema.Declare("card_declines_24h"); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return f, nil
}

// Version reports neither a model nor rules.
func (f *Factory) Version() (kind, version string) { return "", "" }

// NewScorer returns one partition's scorer.
func (f *Factory) NewScorer(int) (pipeline.Scorer, error) {
	return &Scorer{f: f, cards: map[string]*card{}}, nil
}

// card is one card's history.
type card struct {
	n        uint32  // payments seen
	mean     float64 // exponentially weighted mean amount, major units
	variance float64 // exponentially weighted variance
	last     int64   // event time of the last payment
	declines []int64 // event times of recent declines, oldest first
}

// Scorer keeps the history of one partition's cards.
type Scorer struct {
	f          *Factory
	cards      map[string]*card
	cur        *card // the card of the transaction being decided, for Decided
	curTS      int64
	maxTS      int64
	nextExpire int64
}

// Score writes the features from the card's history before this payment, then adds it.
func (s *Scorer) Score(ev *pipeline.Eval) {
	tx := ev.Tx
	f := s.f
	amount := float64(tx.Amount) / tx.Currency.MinorPerMajor()
	c := s.cards[tx.CardID]
	ev.Features[f.zscore], ev.Features[f.declines] = 0, 0
	s.cur = nil
	if c != nil {
		if int(c.n) >= f.cfg.MinHistory && c.variance > 0 {
			ev.Features[f.zscore] = (amount - c.mean) / math.Sqrt(c.variance)
		}
		since := tx.TS - dayMs
		n := 0
		for _, d := range c.declines {
			if d > since && d <= tx.TS {
				n++
			}
		}
		ev.Features[f.declines] = float64(n)
	}
	if ev.Late {
		return // decided from the history as it is; not added
	}
	if c == nil {
		if max := f.cfg.MaxCards; max > 0 && len(s.cards) >= max {
			s.evict(max - max/10 - 1)
		}
		c = &card{mean: amount}
		s.cards[strings.Clone(tx.CardID)] = c // not a slice of the decoded line, which it would keep alive
	} else {
		d := amount - c.mean
		c.mean += f.cfg.Alpha * d
		c.variance = (1 - f.cfg.Alpha) * (c.variance + f.cfg.Alpha*d*d)
	}
	c.n++
	c.last = max(c.last, tx.TS)
	s.cur, s.curTS = c, tx.TS
	if tx.TS > s.maxTS {
		s.maxTS = tx.TS
		if s.maxTS >= s.nextExpire {
			s.expire()
			s.nextExpire = s.maxTS + dayMs
		}
	}
}

// Decided remembers a decline of the transaction just scored.
func (s *Scorer) Decided(_ *pipeline.Eval, out pipeline.Outcome) {
	c := s.cur
	s.cur = nil
	if c == nil || out != pipeline.Decline {
		return
	}
	if len(c.declines) == maxDeclines {
		c.declines = c.declines[1:]
	}
	c.declines = append(c.declines, s.curTS)
}

// expire forgets cards idle for longer than the TTL and declines older than a day.
func (s *Scorer) expire() {
	cut := s.maxTS - s.f.cfg.TTL.Milliseconds()
	for id, c := range s.cards {
		if c.last < cut {
			delete(s.cards, id)
			continue
		}
		i := 0
		for i < len(c.declines) && c.declines[i] <= s.maxTS-dayMs {
			i++
		}
		c.declines = c.declines[i:]
	}
}

// evict forgets the idlest cards until keep remain.
func (s *Scorer) evict(keep int) {
	lasts := make([]int64, 0, len(s.cards))
	for _, c := range s.cards {
		lasts = append(lasts, c.last)
	}
	slices.Sort(lasts)
	cut := lasts[len(lasts)-keep-1]
	for id, c := range s.cards {
		if c.last <= cut && len(s.cards) > keep {
			delete(s.cards, id)
		}
	}
}

const snapshotVersion = 1

// Snapshot encodes the partition's cards, sorted by id so equal states give equal bytes.
func (s *Scorer) Snapshot() ([]byte, error) {
	ids := make([]string, 0, len(s.cards))
	for id := range s.cards {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	b := []byte{snapshotVersion}
	b = binary.AppendVarint(b, s.maxTS)
	b = binary.AppendVarint(b, s.nextExpire)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		c := s.cards[id]
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = binary.AppendUvarint(b, uint64(c.n))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.mean))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.variance))
		b = binary.AppendVarint(b, c.last)
		b = binary.AppendUvarint(b, uint64(len(c.declines)))
		for _, d := range c.declines {
			b = binary.AppendVarint(b, c.last-d)
		}
	}
	return b, nil
}

// Restore replaces the partition's cards with a snapshot.
func (s *Scorer) Restore(data []byte) error {
	bad := errors.New("history: damaged snapshot")
	if len(data) == 0 || data[0] != snapshotVersion {
		return errors.New("history: not a snapshot of this version")
	}
	d := data[1:]
	ok := true
	uv := func() uint64 {
		v, n := binary.Uvarint(d)
		if n <= 0 {
			ok = false
			return 0
		}
		d = d[n:]
		return v
	}
	sv := func() int64 {
		v, n := binary.Varint(d)
		if n <= 0 {
			ok = false
			return 0
		}
		d = d[n:]
		return v
	}
	f64 := func() float64 {
		if len(d) < 8 {
			ok = false
			return 0
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(d))
		d = d[8:]
		return v
	}
	cards := map[string]*card{}
	maxTS, next := sv(), sv()
	n := uv()
	for i := uint64(0); ok && i < n; i++ {
		l := uv()
		if !ok || l > uint64(len(d)) {
			return bad
		}
		id := string(d[:l])
		d = d[l:]
		c := &card{n: uint32(uv()), mean: f64(), variance: f64(), last: sv()}
		nd := uv()
		if !ok || nd > maxDeclines {
			return bad
		}
		for range nd {
			c.declines = append(c.declines, c.last-sv())
		}
		cards[id] = c
	}
	if !ok || len(d) != 0 {
		return bad
	}
	s.cards, s.maxTS, s.nextExpire, s.cur = cards, maxTS, next, nil
	return nil
}
