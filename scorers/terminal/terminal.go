// Package terminal computes the delayed-label features of the points of sale: how many
// transactions a terminal saw, and what share of them turned out to be fraud, in windows
// that end a delay before the transaction being scored, the way the fraud-detection
// handbook defines them:
//
//	terminal_count_<n> = transactions at the terminal with ts in (t-delay-n, t-delay]
//	terminal_risk_<n>  = frauds among those / terminal_count_<n> (0 when there are none)
//
// A transaction counts as fraud once a feedback event saying so has been read: fraud is
// known only through feedback, which arrives days later (CONTRACT.md). With feedback that
// arrives within the delay (chargebacks are usually known within a week), the features
// equal the handbook's, which assume every label is known after the delay.
//
// The engine runs the scorer in input order over every transaction and feedback event
// (pipeline.OrderedScorer), since a terminal's transactions come from many cards and so
// from many partitions: the features are the same in every run of the same input whatever
// the number of partitions. Transactions without a terminal_id are keyed by their
// merchant_id.
package terminal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Config sets the delay and the windows.
type Config struct {
	Delay   time.Duration   // how far before the transaction the windows end; default 7 days
	Windows []time.Duration // window lengths, shortest first; default 1, 7 and 30 days
}

const day = 24 * time.Hour

// DefaultConfig is the handbook's: a 7-day delay and windows of 1, 7 and 30 days.
func DefaultConfig() Config {
	return Config{Delay: 7 * day, Windows: []time.Duration{day, 7 * day, 30 * day}}
}

// key names a terminal, or a merchant for transactions without a terminal.
type key struct {
	merchant bool
	id       string
}

// entry is one transaction of a terminal.
type entry struct {
	ts int64  // event time, Unix ms
	id uint64 // hash of the transaction id
}

// term is the history of one terminal within the horizon, oldest first.
type term struct {
	entries []entry
	frauds  []int64 // event times of its transactions known to be fraud, sorted
}

// ref locates a transaction for its feedback. It holds no pointer, so the garbage
// collector need not scan the map of them (one per transaction within the horizon).
type ref struct {
	ts    int64
	t     int32 // index in Scorer.list
	fraud bool
}

// Scorer is the ordered scorer of the terminal features.
type Scorer struct {
	delay    int64   // ms
	windows  []int64 // ms, shortest first
	horizon  int64   // delay + the longest window: older entries are dropped
	features []int   // count indices then risk indices

	terms    map[string]int32 // terminal id → index in list
	merch    map[string]int32 // merchant id (a transaction without terminal) → index in list
	list     []*term          // terminals by index; nil where freed
	free     []int32          // freed indices of list
	byID     map[uint64]ref
	maxTS    int64 // newest event time added
	nextTrim int64 // event time of the next sweep over every terminal

	// Stats, for tests and metrics.
	unknownFeedback int64
}

// New declares the features (terminal_count_<w> for each window, then terminal_risk_<w>)
// on schema.
func New(cfg Config, schema *pipeline.FeatureSchema) (*Scorer, error) {
	if cfg.Delay <= 0 {
		return nil, fmt.Errorf("terminal: the delay must be longer than 0, got %s", cfg.Delay)
	}
	if len(cfg.Windows) == 0 {
		return nil, errors.New("terminal: no windows")
	}
	s := &Scorer{
		delay: cfg.Delay.Milliseconds(),
		terms: map[string]int32{},
		merch: map[string]int32{},
		byID:  map[uint64]ref{},
	}
	for i, w := range cfg.Windows {
		if w <= 0 || (i > 0 && w <= cfg.Windows[i-1]) {
			return nil, fmt.Errorf("terminal: windows must be longer than 0 and listed shortest first, got %v", cfg.Windows)
		}
		s.windows = append(s.windows, w.Milliseconds())
	}
	s.horizon = s.delay + s.windows[len(s.windows)-1]
	for _, kind := range []string{"count", "risk"} {
		for _, w := range cfg.Windows {
			i, err := schema.Declare("terminal_" + kind + "_" + windowName(w))
			if err != nil {
				return nil, fmt.Errorf("terminal: %w", err)
			}
			s.features = append(s.features, i)
		}
	}
	return s, nil
}

// windowName writes a window as the feature names do: 1d, 7d, 30d, 12h, 90m.
func windowName(d time.Duration) string {
	switch {
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// Features returns the schema indices of the features: counts then risks, by window.
func (s *Scorer) Features() []int { return s.features }

// UnknownFeedback counts feedback events about transactions the scorer does not hold
// (older than the horizon, or never seen).
func (s *Scorer) UnknownFeedback() int64 { return s.unknownFeedback }

// idHash is the 64-bit FNV-1a hash of a transaction id: stable across processes, so
// snapshots keep it.
func idHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// Score writes the features of tx into dst and adds tx to its terminal's history.
func (s *Scorer) Score(tx *pipeline.Transaction, late bool, dst []float64) {
	keys, id := s.terms, tx.TerminalID
	if id == "" {
		keys, id = s.merch, tx.MerchantID
	}
	var t *term
	ti, known := keys[id]
	if known {
		t = s.list[ti]
	}
	nw := len(s.windows)
	if t == nil {
		clear(dst)
	} else {
		hi := tx.TS - s.delay
		ih := upper(t.entries, hi)
		fh := upperTS(t.frauds, hi)
		for w, n := range s.windows {
			lo := hi - n
			count := ih - upper(t.entries, lo)
			frauds := fh - upperTS(t.frauds, lo)
			dst[w] = float64(count)
			if count > 0 {
				dst[nw+w] = float64(frauds) / float64(count)
			} else {
				dst[nw+w] = 0
			}
		}
	}
	if late {
		return
	}
	h := idHash(tx.ID)
	if _, seen := s.byID[h]; seen {
		return // a redelivery: counted once
	}
	if t == nil {
		t = &term{}
		ti = s.alloc(t)
		keys[strings.Clone(id)] = ti
	}
	t.add(entry{ts: tx.TS, id: h})
	s.byID[h] = ref{t: ti, ts: tx.TS}
	if tx.TS > s.maxTS {
		s.maxTS = tx.TS
	}
	s.trim(t)
	if s.maxTS >= s.nextTrim {
		s.sweep()
	}
}

// indexOf returns the list index of a key.
func (s *Scorer) indexOf(k key) int32 {
	if k.merchant {
		return s.merch[k.id]
	}
	return s.terms[k.id]
}

// alloc gives t an index in list.
func (s *Scorer) alloc(t *term) int32 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		s.list[i] = t
		return i
	}
	s.list = append(s.list, t)
	return int32(len(s.list) - 1)
}

// upper returns the number of entries with ts <= x.
func upper(es []entry, x int64) int {
	lo, hi := 0, len(es)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if es[m].ts <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// upperTS returns the number of times in ts that are <= x.
func upperTS(ts []int64, x int64) int {
	lo, hi := 0, len(ts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ts[m] <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// add inserts e in event-time order (appending, for an in-order stream).
func (t *term) add(e entry) {
	n := len(t.entries)
	if n == 0 || t.entries[n-1].ts <= e.ts {
		t.entries = append(t.entries, e)
		return
	}
	i := upper(t.entries, e.ts)
	t.entries = slices.Insert(t.entries, i, e)
}

// trim drops t's entries older than the horizon behind the newest event time.
func (s *Scorer) trim(t *term) {
	cut := s.maxTS - s.horizon
	if len(t.entries) == 0 || t.entries[0].ts > cut {
		return // nothing has aged out: the usual case
	}
	n := 0
	for n < len(t.entries) && t.entries[n].ts <= cut {
		delete(s.byID, t.entries[n].id)
		n++
	}
	t.entries = t.entries[n:] // the array's front is reclaimed when append reallocates
	if m := upperTS(t.frauds, cut); m > 0 {
		t.frauds = t.frauds[m:]
	}
}

// sweep trims every terminal, once a day of event time, so idle terminals are forgotten.
func (s *Scorer) sweep() {
	for _, keys := range []map[string]int32{s.terms, s.merch} {
		for k, i := range keys {
			t := s.list[i]
			s.trim(t)
			if len(t.entries) == 0 {
				delete(keys, k)
				s.list[i] = nil
				s.free = append(s.free, i)
			}
		}
	}
	s.nextTrim = s.maxTS + day.Milliseconds()
}

// Feedback marks a transaction as fraud (or, for a verdict reversed, as not fraud).
func (s *Scorer) Feedback(fb *pipeline.Feedback) {
	id := idHash(fb.ID)
	r, ok := s.byID[id]
	if !ok {
		s.unknownFeedback++
		return
	}
	if fb.Fraud == r.fraud {
		return
	}
	r.fraud = fb.Fraud
	s.byID[id] = r
	t := s.list[r.t]
	i := upperTS(t.frauds, r.ts)
	if fb.Fraud {
		t.frauds = slices.Insert(t.frauds, i, r.ts)
	} else if i > 0 && t.frauds[i-1] == r.ts {
		t.frauds = slices.Delete(t.frauds, i-1, i)
	}
}

const snapshotVersion = 1

// Snapshot encodes every terminal's history: ids, event times and fraud flags.
func (s *Scorer) Snapshot() ([]byte, error) {
	b := []byte{snapshotVersion}
	b = binary.AppendVarint(b, s.maxTS)
	b = binary.AppendVarint(b, s.nextTrim)
	b = binary.AppendVarint(b, s.unknownFeedback)
	keys := make([]key, 0, len(s.terms)+len(s.merch))
	for k := range s.terms {
		keys = append(keys, key{id: k})
	}
	for k := range s.merch {
		keys = append(keys, key{merchant: true, id: k})
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.merchant != b.merchant {
			if a.merchant {
				return 1
			}
			return -1
		}
		return strings.Compare(a.id, b.id)
	})
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		t := s.list[s.indexOf(k)]
		if k.merchant {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendUvarint(b, uint64(len(k.id)))
		b = append(b, k.id...)
		b = binary.AppendUvarint(b, uint64(len(t.entries)))
		prev := int64(0)
		for _, e := range t.entries {
			b = binary.AppendVarint(b, e.ts-prev)
			prev = e.ts
			b = binary.LittleEndian.AppendUint64(b, e.id)
			if s.byID[e.id].fraud {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	}
	return b, nil
}

// Restore replaces the state with a snapshot.
func (s *Scorer) Restore(data []byte) error {
	errBad := errors.New("terminal: damaged snapshot")
	if len(data) == 0 || data[0] != snapshotVersion {
		return errors.New("terminal: not a snapshot of this version")
	}
	d := data[1:]
	varint := func() int64 {
		v, n := binary.Varint(d)
		if n <= 0 {
			d = nil
			return 0
		}
		d = d[n:]
		return v
	}
	uvarint := func() uint64 {
		v, n := binary.Uvarint(d)
		if n <= 0 {
			d = nil
			return 0
		}
		d = d[n:]
		return v
	}
	s.terms, s.merch, s.byID, s.list, s.free = map[string]int32{}, map[string]int32{}, map[uint64]ref{}, nil, nil
	s.maxTS, s.nextTrim, s.unknownFeedback = varint(), varint(), varint()
	nk := uvarint()
	for range nk {
		if len(d) < 1 {
			return errBad
		}
		k := key{merchant: d[0] == 1}
		d = d[1:]
		l := uvarint()
		if uint64(len(d)) < l {
			return errBad
		}
		k.id = string(d[:l])
		d = d[l:]
		ne := uvarint()
		if ne > uint64(len(d)) {
			return errBad
		}
		t := &term{entries: make([]entry, 0, ne)}
		ti := s.alloc(t)
		prev := int64(0)
		for range ne {
			prev += varint()
			if len(d) < 9 {
				return errBad
			}
			e := entry{ts: prev, id: binary.LittleEndian.Uint64(d)}
			fraud := d[8] == 1
			d = d[9:]
			t.entries = append(t.entries, e)
			s.byID[e.id] = ref{t: ti, ts: e.ts, fraud: fraud}
			if fraud {
				t.frauds = append(t.frauds, e.ts)
			}
		}
		if k.merchant {
			s.merch[k.id] = ti
		} else {
			s.terms[k.id] = ti
		}
	}
	if d == nil || len(d) != 0 {
		return errBad
	}
	return nil
}
