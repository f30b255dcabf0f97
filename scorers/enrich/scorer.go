package enrich

import (
	"cmp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// card is what one card's scorer remembers: its newest position, country and devices.
// "Newest" is by event time, so an event that arrives out of order is compared with the
// state but does not replace a newer position or country.
type card struct {
	key       string
	seen      int64 // event time of the card's newest payment, Unix ms
	geoTS     int64 // event time of pos
	countryTS int64 // event time of country
	pos       point
	hasGeo    bool
	country   uint16 // 0: none seen
	nDev      uint8
	devs      [DeviceMemory]uint64 // device id hashes, the most recently used first
}

// hasDevice reports whether h is among the card's remembered devices.
func (c *card) hasDevice(h uint64) bool {
	for _, d := range c.devs[:c.nDev] {
		if d == h {
			return true
		}
	}
	return false
}

// useDevice moves h to the front of the card's devices, forgetting the least recently used
// one when all DeviceMemory places are taken.
func (c *card) useDevice(h uint64) {
	n := int(c.nDev)
	i := 0
	for i < n && c.devs[i] != h {
		i++
	}
	if i == n { // new: shift everything, dropping the last when full
		if n < DeviceMemory {
			c.nDev++
		} else {
			i = DeviceMemory - 1
		}
	}
	copy(c.devs[1:i+1], c.devs[:i])
	c.devs[0] = h
}

// Scorer computes the enrichment features for one partition's cards. The engine calls it
// from the partition's goroutine only, so its card state has no locks; the reference data
// it reads is shared and swapped atomically by reloads.
type Scorer struct {
	f          *Factory
	cards      []card // slots; index maps a card id to its slot
	index      map[string]int32
	free       []int32 // empty slots, reused before cards grows
	maxTS      int64   // the newest event time this partition has seen
	nextExpire int64
	order      []int32 // scratch for eviction and snapshots
	lastSnap   int     // size of the last snapshot, to size the next one's buffer

	nCards, expired, evicted atomic.Int64
}

func newScorer(f *Factory) *Scorer {
	return &Scorer{f: f, index: make(map[string]int32)}
}

// minStep is the least event time between two sweeps of idle cards, which run every TTL/16:
// a sweep visits every card, so it runs on a coarse step, not per transaction. Lookups check
// the TTL themselves, so the step changes only how long forgotten state holds memory.
const minStep = int64(time.Second / time.Millisecond)

// Score writes the enrichment features of e's transaction and, unless e is late, adds the
// transaction to its card's state.
func (s *Scorer) Score(e *pipeline.Eval) {
	f := s.f
	tx := e.Tx
	ft := e.Features

	country, _ := countryCode(tx.Country)
	risk := 0.0
	if m := f.merchants.get(); m != nil {
		if row, ok := m.rows[tx.MerchantID]; ok {
			risk = row.risk
			if country == 0 {
				country = row.country // where the merchant is, when the payment does not say
			}
		}
	}
	ft[f.merchantRisk] = risk
	risk = 0
	if c := f.countries.get(); c != nil && country != 0 {
		risk = c.risk[countryIndex(country)]
	}
	ft[f.countryRisk] = risk

	var here point
	if tx.HasGeo {
		here = newPoint(tx.Lat, tx.Lon)
	}
	ft[f.distHome] = Unknown
	ft[f.foreign] = 0
	if cs := f.customers.get(); cs != nil && tx.CustomerID != "" {
		if c, ok := cs.rows[tx.CustomerID]; ok {
			if c.hasHome && tx.HasGeo {
				ft[f.distHome] = distance(c.home, here)
			}
			if c.country != 0 && country != 0 && c.country != country {
				ft[f.foreign] = 1
			}
		}
	}

	ft[f.deny] = 0
	if f.denyCards.get().has(tx.CardID) || f.denyMerch.get().has(tx.MerchantID) ||
		f.denyDevice.get().has(tx.DeviceID) || f.denyIPs.get().hasText(tx.IP) {
		ft[f.deny] = 1
	}
	ft[f.allow] = 0
	if f.allowCards.get().has(tx.CardID) {
		ft[f.allow] = 1
	}

	s.scoreCard(e, country, here)
}

// scoreCard writes the features that compare the transaction with its card's past and
// updates that past.
func (s *Scorer) scoreCard(e *pipeline.Eval, country uint16, here point) {
	f := s.f
	tx := e.Tx
	ft := e.Features
	if !e.Late && tx.TS > s.maxTS {
		s.maxTS = tx.TS
		if s.maxTS >= s.nextExpire {
			s.expire()
			s.nextExpire = s.maxTS + max(f.ttl/16, minStep)
		}
	}

	var c *card
	slot, ok := s.index[tx.CardID]
	if ok {
		c = &s.cards[slot]
		if tx.TS-c.seen > f.ttl { // idle past the TTL: as if the sweep had forgotten it
			if !e.Late {
				s.remove(slot)
				s.expired.Add(1)
				s.nCards.Store(int64(len(s.index)))
			}
			c = nil
		}
	}

	ft[f.distPrev], ft[f.speed] = Unknown, Unknown
	if c != nil && c.hasGeo && tx.HasGeo {
		d := distance(c.pos, here)
		dt := tx.TS - c.geoTS
		if dt < 0 {
			dt = -dt
		}
		dt = max(dt, 60_000)
		ft[f.distPrev] = d
		ft[f.speed] = d / (float64(dt) / 3_600_000)
	}
	ft[f.countryChanged] = 0
	if c != nil && c.country != 0 && country != 0 && c.country != country {
		ft[f.countryChanged] = 1
	}
	var dev uint64
	ft[f.newDevice] = 0
	if tx.DeviceID != "" {
		dev = hash64(tx.DeviceID)
		if c == nil || !c.hasDevice(dev) {
			ft[f.newDevice] = 1
		}
	}

	if e.Late {
		return // too late to change state that later transactions have already read
	}
	if c == nil {
		c = s.insert(tx.CardID, tx.TS)
	}
	c.seen = max(c.seen, tx.TS)
	if tx.HasGeo && (!c.hasGeo || tx.TS >= c.geoTS) {
		c.pos, c.geoTS, c.hasGeo = here, tx.TS, true
	}
	if country != 0 && (c.country == 0 || tx.TS >= c.countryTS) {
		c.country, c.countryTS = country, tx.TS
	}
	if tx.DeviceID != "" {
		c.useDevice(dev)
	}
}

// insert adds a card, first making room when the partition holds MaxCards.
func (s *Scorer) insert(id string, ts int64) *card {
	if m := s.f.cfg.MaxCards; m > 0 && len(s.index) >= m {
		s.evictOldest(m - m/10 - 1)
	}
	var slot int32
	if n := len(s.free); n > 0 {
		slot = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		slot = int32(len(s.cards))
		s.cards = append(s.cards, card{})
	}
	key := strings.Clone(id) // the transaction's strings share its input line's memory
	s.cards[slot] = card{key: key, seen: ts}
	s.index[key] = slot
	s.nCards.Store(int64(len(s.index)))
	return &s.cards[slot]
}

func (s *Scorer) remove(slot int32) {
	delete(s.index, s.cards[slot].key)
	s.cards[slot] = card{}
	s.free = append(s.free, slot)
}

// expire forgets the cards idle for longer than the TTL before the newest event time.
func (s *Scorer) expire() {
	n := 0
	for _, slot := range s.index {
		if s.maxTS-s.cards[slot].seen > s.f.ttl {
			s.remove(slot)
			n++
		}
	}
	if n > 0 {
		s.expired.Add(int64(n))
		s.nCards.Store(int64(len(s.index)))
	}
}

// evictOldest forgets the cards idle the longest until keep remain; ties go by card id, so
// the same stream always forgets the same cards.
func (s *Scorer) evictOldest(keep int) {
	order := s.sorted(func(a, b *card) int {
		if c := cmp.Compare(a.seen, b.seen); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	drop := len(order) - max(keep, 0)
	for _, slot := range order[:max(drop, 0)] {
		s.remove(slot)
	}
	s.evicted.Add(int64(max(drop, 0)))
	s.nCards.Store(int64(len(s.index)))
}

// sorted returns the slots of every card in the order by, in a scratch slice.
func (s *Scorer) sorted(by func(a, b *card) int) []int32 {
	order := s.order[:0]
	for _, slot := range s.index {
		order = append(order, slot)
	}
	slices.SortFunc(order, func(a, b int32) int { return by(&s.cards[a], &s.cards[b]) })
	s.order = order
	return order
}

// hash64 is FNV-1a: device ids are remembered as hashes, fixed across processes so that
// snapshots restore anywhere.
func hash64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
