package rules

import (
	"sync/atomic"

	"cel.dev/cel-go/common/types"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// scorer evaluates a rule set for one partition. It owns its activation, so Score must be
// called from one goroutine at a time, as the engine does.
type scorer struct {
	rules []compiledRule
	act   *activation
	// counts is written by the scorer alone and read by Stats: atomics without contention.
	counts *counters
}

// counters are one scorer's counts. Each scorer allocates its own, padded, so partitions do
// not share cache lines.
type counters struct {
	_         [64]byte
	evaluated atomic.Uint64
	rules     []ruleCounters
	_         [64]byte
}

type ruleCounters struct {
	fired, shadowFired, errors atomic.Uint64
}

func (rs *RuleSet) newScorer() *scorer {
	return &scorer{
		rules:  rs.rules,
		act:    newActivation(rs.compiler),
		counts: &counters{rules: make([]ruleCounters, len(rs.rules))},
	}
}

// Score evaluates every rule on ev and appends the hits of the firing non-shadow rules, in
// rule-file order.
func (s *scorer) Score(ev *pipeline.Eval) {
	if ev == nil || ev.Tx == nil {
		return
	}
	s.act.reset(ev)
	s.counts.evaluated.Add(1)
	for i := range s.rules {
		r := &s.rules[i]
		fired, ok := false, false
		if r.native != nil {
			fired, ok = r.native.eval(s.act)
		}
		if !ok {
			out, _, err := r.prg.Eval(s.act)
			if err != nil {
				s.counts.rules[i].errors.Add(1)
				continue
			}
			fired = out == types.True
		}
		if !fired {
			continue
		}
		if r.Shadow {
			s.counts.rules[i].shadowFired.Add(1)
			continue
		}
		s.counts.rules[i].fired.Add(1)
		ev.Hits = append(ev.Hits, r.hit)
	}
	s.act.ev = nil // do not keep the transaction alive
}
