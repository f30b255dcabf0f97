package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// partition owns the state of the keys hashed to it: its scorers' windows and the ids it
// has seen. Only its own goroutine touches it.
type partition struct {
	id          int // the stream partition it owns (EngineConfig.Groups), else its index
	idx         int // its index among the engine's workers
	scorers     []Scorer
	eval        Eval
	keep        bool
	model       string
	rules       string
	dedup       dedup
	reasons     []string
	declines    []string
	reviews     []string
	crossIdx    []int // where the ordered scorers' features go in eval.Features
	shadowModel string
	observers   []DecisionObserver // the scorers that learn each decision
}

func newPartition(id int, e *Engine) (*partition, error) {
	p := &partition{
		id:          id,
		idx:         id,
		keep:        e.cfg.KeepFeatures,
		model:       e.model,
		rules:       e.rules,
		dedup:       newDedup(e.cfg.DedupTTL),
		crossIdx:    e.crossIdx,
		shadowModel: e.shadowModel,
	}
	if len(e.cfg.Groups) > 0 {
		p.id = e.cfg.Groups[id]
	}
	for _, f := range e.factories {
		s, err := f.NewScorer(p.id)
		if err != nil {
			return nil, err
		}
		p.scorers = append(p.scorers, s)
		if o, ok := s.(DecisionObserver); ok {
			p.observers = append(p.observers, o)
		}
	}
	p.eval.Features = make([]float64, e.schema.Len())
	return p, nil
}

func (p *partition) run(in <-chan subBatch) {
	for sb := range in {
		if br := sb.b.barrier; br != nil {
			br.snapshots[p.idx], br.errs[p.idx] = p.snapshot()
			sb.b.pending.Done()
			continue
		}
		for _, i := range sb.idx {
			p.process(&sb.b.events[i])
		}
		sb.b.pending.Done()
	}
}

func (p *partition) process(ev *Event) {
	if p.dedup.seen(ev.Tx.ID, ev.Tx.TS) {
		ev.Err = &DecodeError{Code: ReasonDuplicateID, Detail: "transaction id " + ev.Tx.ID + " was already decided"}
		return
	}
	e := &p.eval
	e.Tx = &ev.Tx
	e.Late = ev.Late
	clear(e.Features)
	for k, idx := range p.crossIdx {
		e.Features[idx] = ev.Cross[k]
	}
	e.Score, e.HasScore = 0, false
	e.ShadowScore, e.HasShadowScore = 0, false
	e.Rules = ""
	e.Hits = e.Hits[:0]
	for _, s := range p.scorers {
		s.Score(e)
	}
	d := &ev.Decision
	d.Score, d.HasScore = e.Score, e.HasScore
	d.Model, d.Rules = p.model, p.rules
	if e.Rules != "" {
		d.Rules = e.Rules
	}
	d.ShadowModel, d.ShadowScore, d.HasShadowScore = p.shadowModel, e.ShadowScore, e.HasShadowScore
	d.Ledger = LedgerSkipped
	d.Outcome = Approve
	// Reasons: declines, then reviews, then tags, each in the order the scorers gave them.
	if len(e.Hits) > 0 {
		p.declines, p.reviews, p.reasons = p.declines[:0], p.reviews[:0], p.reasons[:0]
		for _, h := range e.Hits {
			switch h.Outcome {
			case Decline:
				p.declines = append(p.declines, h.Reason)
			case Review:
				p.reviews = append(p.reviews, h.Reason)
			default:
				p.reasons = append(p.reasons, h.Reason)
			}
			if h.Outcome > d.Outcome {
				d.Outcome = h.Outcome
			}
		}
		r := make([]string, 0, len(e.Hits))
		r = append(r, p.declines...)
		r = append(r, p.reviews...)
		r = append(r, p.reasons...)
		d.Reasons = r
	}
	if !e.Late {
		for _, o := range p.observers {
			o.Decided(e, d.Outcome)
		}
	}
	if p.keep {
		ev.Features = append([]float64(nil), e.Features...)
	}
}

// snapshot encodes the partition's state: its seen ids and each scorer's state.
func (p *partition) snapshot() ([]byte, error) {
	frames := [][]byte{p.dedup.marshal()}
	for i, s := range p.scorers {
		var b []byte
		if sn, ok := s.(Snapshotter); ok {
			var err error
			if b, err = sn.Snapshot(); err != nil {
				return nil, fmt.Errorf("partition %d scorer %d: %w", p.id, i, err)
			}
		}
		frames = append(frames, b)
	}
	return appendFrames([]byte(partitionMagic), frames...), nil
}

const partitionMagic = "FPP1"

// restore replaces the partition's state with a snapshot.
func (p *partition) restore(data []byte) error {
	body, ok := strings.CutPrefix(string(data), partitionMagic)
	if !ok {
		return errors.New("not a partition snapshot of this version")
	}
	frames, err := readFrames([]byte(body))
	if err != nil {
		return err
	}
	if len(frames) != 1+len(p.scorers) {
		return fmt.Errorf("snapshot has state for %d scorers, the config has %d: the scorers changed since the checkpoint", len(frames)-1, len(p.scorers))
	}
	if err := p.dedup.unmarshal(frames[0]); err != nil {
		return err
	}
	for i, s := range p.scorers {
		sn, ok := s.(Snapshotter)
		if !ok {
			continue
		}
		if err := sn.Restore(frames[1+i]); err != nil {
			return fmt.Errorf("scorer %d: %w", i, err)
		}
	}
	return nil
}

// dedup remembers transaction ids for at least ttl of event time, in two generations: ids
// go into the current one; when event time passes the generation's end, the older is
// dropped. Memory is bounded by the ids of two generations.
type dedup struct {
	ttl       int64
	cur, prev map[string]struct{}
	curEnd    int64
}

func newDedup(ttl time.Duration) dedup {
	return dedup{ttl: ttl.Milliseconds(), cur: make(map[string]struct{}), prev: make(map[string]struct{})}
}

// seen reports whether id was recorded before, and records it.
func (d *dedup) seen(id string, ts int64) bool {
	if ts >= d.curEnd {
		if d.curEnd == 0 || ts >= d.curEnd+d.ttl {
			clear(d.prev)
		} else {
			d.prev = d.cur
		}
		d.cur = make(map[string]struct{}, len(d.prev))
		d.curEnd = ts + d.ttl
	}
	if _, ok := d.cur[id]; ok {
		return true
	}
	if _, ok := d.prev[id]; ok {
		return true
	}
	d.cur[strings.Clone(id)] = struct{}{}
	return false
}

func (d *dedup) marshal() []byte {
	ids := func(m map[string]struct{}) []byte {
		n := 0
		for id := range m {
			n += len(id) + binary.MaxVarintLen16
		}
		b := binary.AppendUvarint(make([]byte, 0, n+binary.MaxVarintLen64), uint64(len(m)))
		for id := range m {
			b = binary.AppendUvarint(b, uint64(len(id)))
			b = append(b, id...)
		}
		return b
	}
	return appendFrames(nil, binary.AppendVarint(nil, d.curEnd), ids(d.cur), ids(d.prev))
}

func (d *dedup) unmarshal(b []byte) error {
	f, err := readFrames(b)
	if err != nil || len(f) != 3 {
		return errors.New("corrupt dedup state")
	}
	end, n := binary.Varint(f[0])
	if n <= 0 {
		return errors.New("corrupt dedup state")
	}
	load := func(b []byte) (map[string]struct{}, error) {
		ids, err := readFrames(b)
		if err != nil {
			return nil, errors.New("corrupt dedup state")
		}
		m := make(map[string]struct{}, len(ids))
		for _, id := range ids {
			m[string(id)] = struct{}{}
		}
		return m, nil
	}
	cur, err := load(f[1])
	if err != nil {
		return err
	}
	prev, err := load(f[2])
	if err != nil {
		return err
	}
	d.curEnd, d.cur, d.prev = end, cur, prev
	return nil
}
