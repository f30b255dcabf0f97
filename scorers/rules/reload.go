package rules

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Live is a rule file that can be replaced while the engine runs: Reload (or Watch, which
// calls it when the file changes) compiles the file off to the side and swaps it in
// atomically, between two transactions of each partition. A file that does not compile
// leaves the rules in force as they were, and Reload says why, with file and line. Each
// decision names the version of the rules that decided it.
type Live struct {
	path   string
	schema *pipeline.FeatureSchema
	log    *slog.Logger
	cur    atomic.Pointer[RuleSet]

	mu       sync.Mutex // one reload at a time
	last     []byte     // the file's bytes in force
	reloads  atomic.Int64
	failures atomic.Int64
	lastErr  atomic.Pointer[string]
}

var _ pipeline.ScorerFactory = (*Live)(nil)

// NewLive compiles the rule file at path against schema; it fails as Load does.
func NewLive(path string, schema *pipeline.FeatureSchema, log *slog.Logger) (*Live, error) {
	if log == nil {
		log = slog.Default()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	rs, err := Parse(path, data, schema)
	if err != nil {
		return nil, err
	}
	l := &Live{path: path, schema: schema, log: log, last: data}
	l.cur.Store(rs)
	return l, nil
}

// Current returns the rule set in force.
func (l *Live) Current() *RuleSet { return l.cur.Load() }

// Version reports the version the rules had when the engine was built; each decision
// carries the version of the rules that decided it.
func (l *Live) Version() (kind, version string) { return l.cur.Load().Version() }

// NewScorer returns a partition's scorer, which follows the rules in force.
func (l *Live) NewScorer(int) (pipeline.Scorer, error) { return &liveScorer{l: l}, nil }

// Reload reads the file again and, when it changed and compiles, puts it in force. It
// reports whether the rules changed; on error the rules in force stay.
func (l *Live) Reload() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	data, err := os.ReadFile(l.path)
	if err != nil {
		return false, l.failed(fmt.Errorf("rules: %w", err))
	}
	if bytes.Equal(data, l.last) {
		return false, nil
	}
	rs, err := Parse(l.path, data, l.schema)
	if err != nil {
		return false, l.failed(err)
	}
	old := l.cur.Swap(rs)
	l.last = data
	l.reloads.Add(1)
	l.lastErr.Store(nil)
	l.log.Info("rules reloaded", "file", l.path, "from", old.version, "to", rs.version, "rules", len(rs.rules))
	return true, nil
}

func (l *Live) failed(err error) error {
	l.failures.Add(1)
	msg := err.Error()
	l.lastErr.Store(&msg)
	l.log.Error("rule file not reloaded; the rules in force stay", "file", l.path, "version", l.cur.Load().version, "err", err)
	return err
}

// ReloadStats are the counts of Reload: successful reloads, failed ones, and the last
// failure ("" once a reload succeeds).
func (l *Live) ReloadStats() (reloads, failures int64, lastErr string) {
	if p := l.lastErr.Load(); p != nil {
		lastErr = *p
	}
	return l.reloads.Load(), l.failures.Load(), lastErr
}

// Watch calls Reload every interval until ctx ends; a failed reload is logged and retried
// at the next change of the file.
func (l *Live) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.Reload() // logged inside
		}
	}
}

// liveScorer is a partition's scorer of a Live rule file: it rebuilds its scorer when the
// rules in force change, so every transaction is decided by one version, whole.
type liveScorer struct {
	l  *Live
	rs *RuleSet
	s  *scorer
}

func (s *liveScorer) Score(ev *pipeline.Eval) {
	if rs := s.l.cur.Load(); rs != s.rs {
		s.rs = rs
		sc, _ := rs.NewScorer(0)
		s.s = sc.(*scorer)
	}
	s.s.Score(ev)
	ev.Rules = s.rs.version
}
