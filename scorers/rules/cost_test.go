package rules

import (
	"errors"
	"strings"
	"testing"

	"cel.dev/cel-go/cel"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// hostileExprs are rules written to stall a partition: each is refused when the file is
// loaded, because its estimated worst case is over MaxCost or cannot be bounded.
var hostileExprs = []struct{ name, expr string }{
	{"nested comprehensions", `tx.ip.split("").all(x, tx.ip.split("").all(y, tx.ip.split("").exists(z, x + y == z)))`},
	{"string blow-up", `tx.merchant_id.replace("", tx.merchant_id).replace("", tx.merchant_id).size() > 0`},
	{"list product", `[0,1,2,3,4,5,6,7,8,9].all(a, [0,1,2,3,4,5,6,7,8,9].all(b, [0,1,2,3,4,5,6,7,8,9].all(c, [0,1,2,3,4,5,6,7,8,9].all(d, [0,1,2,3,4,5,6,7,8,9].all(e, a+b+c+d+e >= 0)))))`},
	{"map over split", `tx.card_id.split("").map(x, tx.card_id.split("").map(y, x + y)).size() > 0`},
	{"join of splits", `tx.merchant_id.split("").map(x, tx.merchant_id.replace("", x)).join("").contains(tx.card_id + tx.card_id)`},
}

func TestHostileRulesRefusedAtLoad(t *testing.T) {
	for _, h := range hostileExprs {
		t.Run(h.name, func(t *testing.T) {
			src := "rules:\n  - id: fine\n    expr: tx.amount > 1\n    action: tag\n  - id: hostile\n    expr: '" + h.expr + "'\n    action: review\n"
			_, err := Parse("hostile.yaml", []byte(src), testSchema(t))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %v, want an *Error refusing the rule", err)
			}
			if pe.File != "hostile.yaml" || pe.Line != 6 {
				t.Errorf("error at %s:%d, want hostile.yaml:6 (the expr line)", pe.File, pe.Line)
			}
			msg := err.Error()
			if !strings.Contains(msg, "rule hostile: expr: ") ||
				!(strings.Contains(msg, "estimated cost up to ") || strings.Contains(msg, "cost cannot be bounded")) {
				t.Errorf("error %q does not name the rule and its cost", msg)
			}
			if !strings.Contains(msg, "limit of 10000") && !strings.Contains(msg, "limit 10000") {
				t.Errorf("error %q does not give the limit", msg)
			}
		})
	}
}

// TestCostLimitAtRunTime feeds a rule an event whose strings are far longer than the decoder
// allows (as a buggy source might build it): the rule goes over MaxCost, is stopped, counted
// as an error for that event and does not fire; the other rules still run.
func TestCostLimitAtRunTime(t *testing.T) {
	rs := mustParse(t, `rules:
  - id: scan
    expr: tx.merchant_id.split("").exists(c, c == "#")
    action: decline
  - id: big
    expr: tx.amount > 100
    action: review
`)
	ev := newEval(t, nil)
	ev.Tx.MerchantID = strings.Repeat("m", 200_000) + "#"
	hits := score(t, rs, ev)
	if len(hits) != 1 || hits[0].Reason != "rule:big" {
		t.Errorf("hits %v, want only rule:big", hits)
	}
	st := rs.Stats()
	if st[0].Errors != 1 || st[0].Fired != 0 || st[1].Fired != 1 || st[1].Errors != 0 {
		t.Errorf("stats %+v", st)
	}

	// The same rule within the decoder's limits fires.
	ev = newEval(t, nil)
	ev.Tx.MerchantID = strings.Repeat("m", pipeline.MaxFieldLen-1) + "#"
	hits = score(t, rs, ev)
	if len(hits) != 2 || hits[0].Reason != "rule:scan" {
		t.Errorf("hits %v, want rule:scan and rule:big", hits)
	}
}

// worstEval is a transaction whose strings are as long as decoding allows, the worst case the
// cost estimate assumes.
func worstEval(t testing.TB) *pipeline.Eval {
	ev := newEval(t, map[string]float64{"card_count_1h": 3, "card_mean_amount_30d": 12.5, "secs_since_last": 60})
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	tx := ev.Tx
	tx.ID = long("i", pipeline.MaxIDLen)
	tx.CardID, tx.AccountID, tx.MerchantID = long("c", pipeline.MaxFieldLen), long("a", pipeline.MaxFieldLen), long("m", pipeline.MaxFieldLen)
	tx.CustomerID, tx.TerminalID, tx.DeviceID, tx.IP = long("u", pipeline.MaxFieldLen), long("t", pipeline.MaxFieldLen), long("d", pipeline.MaxFieldLen), long("1", pipeline.MaxFieldLen)
	return ev
}

// FuzzEval compiles random expressions as rules and evaluates those that load on a worst-case
// transaction: nothing may panic, and a rule that loads may not cost more at run time than
// its estimate, nor more than MaxCost (rules estimated under maxUntrackedCost run without a
// runtime limit, so the estimate is all that bounds them).
func FuzzEval(f *testing.F) {
	rs, err := Default(testSchema(f))
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range rs.Rules() {
		f.Add(r.Expr)
	}
	for _, h := range hostileExprs {
		f.Add(h.expr)
	}
	for _, s := range []string{
		`tx.merchant_id.split("").exists(c, c == "#")`,
		`tx.ip.matches("^10\\.") || tx.device_id.lowerAscii().startsWith("x")`,
		`tx.amount_minor / (tx.amount_minor - tx.amount_minor) > 0`,
		`size(tx.card_id + tx.account_id) > 10 && tx.hour in [0, 1, 2, 3]`,
		`tx.country.split("")[5] == "X"`,
		`int(features.secs_since_last) * 1000 > tx.amount_minor`,
	} {
		f.Add(s)
	}
	c, err := newCompiler(testSchema(f))
	if err != nil {
		f.Fatal(err)
	}
	ev := worstEval(f)
	f.Fuzz(func(t *testing.T, expr string) {
		if len(expr) > 512 {
			return // rules are one-liners; longer inputs only slow the search down
		}
		prg, err := c.compile(expr)
		if err != nil {
			if err.Error() == "" {
				t.Error("empty error")
			}
			return
		}
		// As the engine runs it.
		one := &RuleSet{rules: []compiledRule{{Rule: Rule{ID: "fuzz"}, prg: prg, hit: pipeline.Hit{Outcome: pipeline.Review, Reason: "rule:fuzz"}}}, compiler: c}
		ev.Hits = ev.Hits[:0]
		one.newScorer().Score(ev)
		if len(ev.Hits) > 1 {
			t.Fatalf("%d hits from one rule", len(ev.Hits))
		}
		// Measured: the same expression with a cost tracker and a limit just above MaxCost
		// (evaluation stops there, and the check below reports it).
		ast, iss := c.env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("compiles as a rule but not again: %v", iss.Err())
		}
		est, err := c.env.EstimateCost(ast, sizeEstimator{})
		if err != nil {
			t.Fatal(err)
		}
		measured, err := c.env.Program(ast, cel.CostTracking(nil), cel.CostLimit(MaxCost+1))
		if err != nil {
			t.Fatal(err)
		}
		act := newActivation(c)
		act.reset(ev)
		_, det, _ := measured.Eval(act)
		if det == nil || det.ActualCost() == nil {
			t.Fatal("no actual cost tracked")
		}
		actual := *det.ActualCost()
		if actual > MaxCost {
			t.Fatalf("%q cost %d at run time, over MaxCost %d (estimate %d)", expr, actual, MaxCost, est.Max)
		}
		if actual > est.Max {
			t.Fatalf("%q cost %d at run time, over its estimate %d", expr, actual, est.Max)
		}
	})
}
