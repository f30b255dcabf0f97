// Package rules scores transactions with rules written in CEL (the Common Expression
// Language) and kept in a YAML file:
//
//	rules:
//	  - id: card_testing
//	    description: Many small payments on one card within an hour
//	    expr: features.card_count_1h >= 5 && tx.amount < 5.0
//	    action: decline          # decline | review | tag
//	    reason: rule:card_testing # default "rule:<id>"
//	    shadow: false            # true: evaluated and counted, never acted on
//
// An expression reads the transaction as tx.<field> and the engine's features as
// features.<name> (doubles), and must be a bool. The transaction fields are tx.id, tx.card_id,
// tx.account_id, tx.merchant_id, tx.customer_id, tx.terminal_id, tx.currency, tx.channel,
// tx.mcc, tx.country, tx.device_id and tx.ip (strings, "" when absent), tx.amount (double: the
// amount in major units, for comparisons only; money arithmetic happens elsewhere, in integer
// minor units), tx.amount_minor (int), tx.hour (int, the UTC hour of ts), tx.weekday (int,
// 0 = Sunday), tx.lat and tx.lon (doubles, valid when tx.has_geo) and tx.has_geo (bool). The
// label is not reachable. Ints and doubles compare with each other (tx.amount > 220), but
// arithmetic needs one type (5.0 * features.card_mean_amount_30d). The CEL standard library
// and the strings extension (lowerAscii, split, ...) are available.
//
// Expressions are compiled once, when the file is parsed, and shared by every partition.
// One whose estimated worst-case cost exceeds MaxCost is refused then, so no rule can stall
// the engine. Numeric comparisons over features and amounts, the bulk of fraud rules, are
// evaluated without allocating (see fastpath.go).
//
// A firing rule adds a pipeline.Hit: decline and review ask for that outcome, tag records the
// reason only. Hits come in rule-file order. A rule that fails at run time (a division by
// zero, a feature not computed) does not fire and is counted; it never stops the engine.
package rules

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"sync"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Action is what a firing rule asks for.
type Action uint8

// Actions of a rule file.
const (
	ActionDecline Action = iota // decline the transaction
	ActionReview                // send it to review
	ActionTag                   // record the reason only; the decision is not changed
)

var actionNames = [...]string{"decline", "review", "tag"}

// String returns the action as written in rule files.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// Outcome is the pipeline outcome of the action's hit (Approve for a tag).
func (a Action) Outcome() pipeline.Outcome {
	switch a {
	case ActionDecline:
		return pipeline.Decline
	case ActionReview:
		return pipeline.Review
	}
	return pipeline.Approve
}

// ParseAction maps "decline", "review" or "tag" to an Action.
func ParseAction(s string) (Action, bool) {
	for i, n := range actionNames {
		if n == s {
			return Action(i), true
		}
	}
	return 0, false
}

// Rule is one rule as written in the file.
type Rule struct {
	ID          string
	Description string
	Expr        string
	Action      Action
	Reason      string // the hit's reason code; "rule:<id>" unless the file says otherwise
	Shadow      bool   // evaluated and counted, never acted on
	Line        int    // where the rule starts in the file
}

// compiledRule is a Rule with its program, which is safe for concurrent use and shared by
// every partition's scorer.
type compiledRule struct {
	Rule
	prg    cel.Program
	native *native // the program's native form, or nil (native.go)
	hit    pipeline.Hit
}

// RuleSet is a compiled rule file. It is the pipeline.ScorerFactory of the rules: each
// partition gets its own scorer, and all of them share the compiled programs.
type RuleSet struct {
	name     string
	version  string
	rules    []compiledRule
	compiler *compiler

	mu      sync.Mutex
	scorers []*scorer // for Stats
}

var _ pipeline.ScorerFactory = (*RuleSet)(nil)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the built-in rule file, to show or to copy as a starting point.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default compiles the built-in rule set (default.yaml) against schema. It needs the
// per-card velocity features (card_count_1h, card_count_30d, card_mean_amount_30d, ...).
func Default(schema *pipeline.FeatureSchema) (*RuleSet, error) {
	return Parse("default.yaml", defaultYAML, schema)
}

// Load reads and compiles a rule file; errors name the file by path.
func Load(path string, schema *pipeline.FeatureSchema) (*RuleSet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return Parse(path, data, schema)
}

// Parse compiles a rule file named name (used in errors) against schema: every feature
// declared on schema so far can be read as features.<name>. Unknown fields, a missing id or
// expr, repeated ids, a bad action and an expression that does not compile to a bool, or
// whose cost cannot be bounded by MaxCost, are errors naming the file and line; all rules'
// problems are reported together.
func Parse(name string, data []byte, schema *pipeline.FeatureSchema) (*RuleSet, error) {
	if schema == nil {
		schema = pipeline.NewFeatureSchema()
	}
	f := &yamlFile{name: name}
	root, err := f.parse(data)
	if err != nil {
		return nil, err
	}
	top := f.mapping(root, "", "rules")
	if top == nil {
		return nil, f.err()
	}
	list := deref(top["rules"])
	if list == nil || list.Kind != yaml.SequenceNode {
		line := root.Line
		if list != nil {
			line = list.Line
		}
		f.errorf(line, "rules: expected a list of rules")
		return nil, f.err()
	}
	c, err := newCompiler(schema)
	if err != nil {
		return nil, err
	}
	rs := &RuleSet{name: name, version: Version(data), compiler: c}
	seen := make(map[string]int)
	for i, n := range list.Content {
		r, ok := f.rule(n, i)
		what := "rule " + r.ID + ": "
		if r.ID != "" {
			if first, dup := seen[r.ID]; dup {
				f.errorf(r.Line, "%sid repeats the rule at line %d", what, first)
				continue
			}
			seen[r.ID] = r.Line
		}
		if !ok {
			continue
		}
		prg, nat, err := c.compileRule(r.Expr)
		if err != nil {
			f.errorf(r.exprLine, "%sexpr: %v", what, err)
			continue
		}
		rs.rules = append(rs.rules, compiledRule{
			Rule:   r.Rule,
			prg:    prg,
			native: nat,
			hit:    pipeline.Hit{Outcome: r.Action.Outcome(), Reason: r.Reason},
		})
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// Version returns the version string of a rule file: "sha256:" and the first 12 hex digits
// of the SHA-256 of its bytes.
func Version(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:6])
}

// Name returns the file name the rule set was parsed under.
func (rs *RuleSet) Name() string { return rs.name }

// Version reports ("rules", version) for decisions' "rules" field.
func (rs *RuleSet) Version() (kind, version string) { return "rules", rs.version }

// Rules returns the rules in file order.
func (rs *RuleSet) Rules() []Rule {
	out := make([]Rule, len(rs.rules))
	for i := range rs.rules {
		out[i] = rs.rules[i].Rule
	}
	return out
}

// NewScorer returns the scorer of one partition. Its counters add to Stats.
func (rs *RuleSet) NewScorer(partition int) (pipeline.Scorer, error) {
	s := rs.newScorer()
	rs.mu.Lock()
	rs.scorers = append(rs.scorers, s)
	rs.mu.Unlock()
	return s, nil
}

// RuleStats counts what one rule did, summed over every scorer of the rule set.
type RuleStats struct {
	ID          string
	Shadow      bool
	Evaluated   uint64 // transactions the rule was evaluated on
	Fired       uint64 // hits added (never for a shadow rule)
	ShadowFired uint64 // times a shadow rule was true
	Errors      uint64 // evaluations that failed at run time; the rule did not fire
}

// Stats returns each rule's counters, in file order. It may be called while scorers run; the
// counts are then a moment's snapshot, each exact on its own.
func (rs *RuleSet) Stats() []RuleStats {
	out := make([]RuleStats, len(rs.rules))
	for i := range rs.rules {
		out[i] = RuleStats{ID: rs.rules[i].ID, Shadow: rs.rules[i].Shadow}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, s := range rs.scorers {
		// A scorer counts a transaction before evaluating it, so reading the rule counters
		// first keeps Fired + Errors <= Evaluated in a snapshot.
		for i := range out {
			c := &s.counts.rules[i]
			out[i].Fired += c.fired.Load()
			out[i].ShadowFired += c.shadowFired.Load()
			out[i].Errors += c.errors.Load()
		}
		n := s.counts.evaluated.Load()
		for i := range out {
			out[i].Evaluated += n
		}
	}
	return out
}
