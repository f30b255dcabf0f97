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
	"github.com/fraudpipe/fraudpipe/pipeline/window"
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
	t        int32 // index in Scorer.list
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
	key     string  // the terminal (or merchant) id
	merch   bool    // key is a merchant id
	ik      window.InlineKey

	// Where the last windows ended: hint[k] is the number of entries, and fhint[k] of
	// frauds, at or before boundary k (0: the end of the windows, t-delay; 1+w: the start
	// of window w) of the terminal's previous transaction. Event time mostly moves forward,
	// so each boundary is found next to its hint, in a cache line or two, instead of by a
	// binary search over the history. A hint is only a starting point: a wrong one costs a
	// search, never a wrong count.
	hint, fhint [hinted]int32
}

// hinted is how many window boundaries keep a hint: the end and the starts of the first
// three windows. Further windows are found by binary search.
const hinted = 4

// upperEntries returns the number of t's entries with ts <= x, x being boundary k.
func (t *term) upperEntries(k int, x int64) int {
	if k >= hinted {
		return upper(t.entries, x)
	}
	es := t.entries
	i := int(t.hint[k])
	if i > len(es) {
		i = len(es)
	}
	if i > 0 && es[i-1].ts > x {
		i = upper(es[:i-1], x) // the boundary moved back: an earlier transaction
	} else {
		end := min(i+8, len(es))
		for i < end && es[i].ts <= x {
			i++
		}
		if i == end && i < len(es) && es[i].ts <= x {
			i += upper(es[i:], x) // a long way forward: after a pause of the terminal
		}
	}
	t.hint[k] = int32(i)
	return i
}

// upperFrauds returns the number of t's frauds at or before x, x being boundary k.
func (t *term) upperFrauds(k int, x int64) int {
	fs := t.frauds
	if len(fs) == 0 {
		return 0
	}
	if k >= hinted {
		return upperTS(fs, x)
	}
	i := int(t.fhint[k])
	if i > len(fs) {
		i = len(fs)
	}
	if i > 0 && fs[i-1] > x {
		i = upperTS(fs[:i-1], x)
	} else {
		i += upperTS(fs[i:], x)
	}
	t.fhint[k] = int32(i)
	return i
}

// dropped moves the hints back after the n oldest entries and m oldest frauds were removed.
func (t *term) dropped(n, m int) {
	for k := range t.hint {
		t.hint[k] = max(t.hint[k]-int32(n), 0)
		t.fhint[k] = max(t.fhint[k]-int32(m), 0)
	}
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

	keys     window.Index // terminal id, or merchant id for a transaction without terminal → index in list
	list     []*term      // terminals by index; nil where freed
	free     []int32      // freed indices of list
	byID     idTable      // hash of a transaction id → where it is held
	maxTS    int64        // newest event time added
	nextTrim int64        // event time of the next sweep over every terminal

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
	// Look the transaction id up first: the table is large and its line is likely a cache
	// miss, which the CPU can then wait for while it finds the terminal.
	h := idHash(tx.ID)
	seen := false
	if !late {
		_, seen = s.byID.find(h)
	}
	id, merch := tx.TerminalID, false
	if id == "" {
		id, merch = tx.MerchantID, true
	}
	var t *term
	kh := s.keys.Hash(id)
	ti, known := s.keys.Find(kh, func(i int32) bool {
		t := s.list[i]
		return t.merch == merch && t.ik.Is(id, t.key)
	})
	if known {
		t = s.list[ti]
	}
	nw := len(s.windows)
	if t == nil {
		clear(dst)
	} else {
		hi := tx.TS - s.delay
		ih := t.upperEntries(0, hi)
		fh := t.upperFrauds(0, hi)
		for w, n := range s.windows {
			lo := hi - n
			count := ih - t.upperEntries(1+w, lo)
			frauds := fh - t.upperFrauds(1+w, lo)
			dst[w] = float64(count)
			if count > 0 {
				dst[nw+w] = float64(frauds) / float64(count)
			} else {
				dst[nw+w] = 0
			}
		}
	}
	if late || seen {
		return // late: not added; seen: a redelivery, counted once
	}
	if t == nil {
		t = newTerm(strings.Clone(id), merch, 0)
		ti = s.alloc(t)
		s.keys.Insert(kh, ti)
	}
	t.add(entry{ts: tx.TS, id: h})
	s.byID.reserve()
	s.byID.add(newSlot(h, ref{t: ti, ts: tx.TS}))
	if tx.TS > s.maxTS {
		s.maxTS = tx.TS
	}
	s.trim(t)
	if s.maxTS >= s.nextTrim {
		s.sweep()
	}
}

// newTerm returns an empty terminal history, with room for n entries.
func newTerm(id string, merch bool, n int) *term {
	t := &term{key: id, merch: merch, entries: make([]entry, 0, n)}
	t.ik.Set(id)
	return t
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
		s.byID.delete(t.entries[n].id)
		n++
	}
	t.entries = t.entries[n:] // the array's front is reclaimed when append reallocates
	m := upperTS(t.frauds, cut)
	t.frauds = t.frauds[m:]
	t.dropped(n, m)
}

// sweep trims every terminal, once a day of event time, so idle terminals are forgotten.
func (s *Scorer) sweep() {
	for i, t := range s.list {
		if t == nil {
			continue
		}
		s.trim(t)
		if len(t.entries) == 0 {
			s.keys.Delete(s.keys.Hash(t.key), int32(i))
			s.list[i] = nil
			s.free = append(s.free, int32(i))
		}
	}
	s.nextTrim = s.maxTS + day.Milliseconds()
}

// Feedback marks a transaction as fraud (or, for a verdict reversed, as not fraud).
func (s *Scorer) Feedback(fb *pipeline.Feedback) {
	id := idHash(fb.ID)
	r, ok := s.byID.get(id)
	if !ok {
		s.unknownFeedback++
		return
	}
	if fb.Fraud == r.fraud {
		return
	}
	r.fraud = fb.Fraud
	s.byID.put(id, r)
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
	keys := make([]key, 0, s.keys.Len())
	for i, t := range s.list {
		if t != nil {
			keys = append(keys, key{merchant: t.merch, id: t.key, t: int32(i)})
		}
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
		t := s.list[k.t]
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
			if r, _ := s.byID.get(e.id); r.fraud {
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
	s.list, s.free = nil, nil
	s.keys.Reset()
	s.byID.reset()
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
		kh := s.keys.Hash(k.id)
		if _, dup := s.keys.Find(kh, func(i int32) bool { return s.list[i].merch == k.merchant && s.list[i].key == k.id }); dup {
			return errBad
		}
		t := newTerm(k.id, k.merchant, int(ne))
		ti := s.alloc(t)
		s.keys.Insert(kh, ti)
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
			s.byID.put(e.id, ref{t: ti, ts: e.ts, fraud: fraud})
			if fraud {
				t.frauds = append(t.frauds, e.ts)
			}
		}
	}
	if d == nil || len(d) != 0 {
		return errBad
	}
	return nil
}
