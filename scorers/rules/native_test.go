package rules

import (
	"math"
	"testing"

	"cel.dev/cel-go/common/types"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// TestNativeMatchesCEL evaluates logical combinations of comparisons in native form and
// with CEL alone (no fast path) over awkward values, and wants the same answers; where the
// native form gives up, CEL must be the one to answer.
func TestNativeMatchesCEL(t *testing.T) {
	schema := pipeline.NewFeatureSchema()
	for _, n := range []string{"x", "y"} {
		if _, err := schema.Declare(n); err != nil {
			t.Fatal(err)
		}
	}
	fast, err := newCompiler(schema)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := newCompiler(schema)
	if err != nil {
		t.Fatal(err)
	}
	slow.noFastPath = true
	atoms := []string{"features.x >= 5", "tx.amount < 5.0", "features.y > 2.0 * features.x",
		"tx.hour <= 6", "features.x < features.y", "true", "false", "-features.y >= 0.0"}
	var exprs []string
	for i, a := range atoms {
		exprs = append(exprs, a, "!("+a+")")
		for j, b := range atoms {
			op := [...]string{" && ", " || "}[(i+j)%2]
			exprs = append(exprs, a+op+b, "!("+a+op+b+") || "+atoms[(i+2*j)%len(atoms)])
		}
	}
	natives := 0
	values := []float64{0, 5, -1, 0.1, math.NaN(), math.Inf(1), math.Inf(-1)}
	tx := &pipeline.Transaction{Currency: pipeline.Currency{Code: "EUR", Digits: 2}, TS: 1764065730123, Amount: 450}
	ev := &pipeline.Eval{Tx: tx, Features: make([]float64, 2)}
	a := newActivation(fast)
	for _, expr := range exprs {
		_, nat, err := fast.compileRule(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		prg, err := slow.compile(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if nat == nil {
			t.Errorf("%s: no native form", expr)
			continue
		}
		natives++
		for _, x := range values {
			for _, y := range values {
				ev.Features = ev.Features[:2]
				ev.Features[0], ev.Features[1] = x, y
				a.reset(ev)
				got, ok := nat.eval(a)
				out, _, err := prg.Eval(a)
				if !ok || err != nil || got != (out == types.True) {
					t.Fatalf("%s with x=%v y=%v: native %v (ok %v), CEL %v (%v)", expr, x, y, got, ok, out, err)
				}
			}
		}
		// Without the features, the native form either answers as CEL does or gives up.
		ev.Features = nil
		a.reset(ev)
		got, ok := nat.eval(a)
		out, _, err := prg.Eval(a)
		if ok && (err != nil || got != (out == types.True)) {
			t.Fatalf("%s without features: native %v, CEL %v (%v)", expr, got, out, err)
		}
		ev.Features = make([]float64, 2)
	}
	t.Logf("%d expressions in native form", natives)

	// Strings, lists and equality are CEL's.
	for _, expr := range []string{`tx.currency == "EUR"`, `tx.amount > 1.0 && tx.channel in ["pos"]`, "features.x == 0.0"} {
		if _, nat, err := fast.compileRule(expr); err != nil || nat != nil {
			t.Errorf("%s: native form %v, error %v; want none", expr, nat, err)
		}
	}
}

// TestDefaultRulesNative checks that the built-in rules that only compare numbers take the
// native path.
func TestDefaultRulesNative(t *testing.T) {
	schema := pipeline.NewFeatureSchema()
	for _, n := range []string{"card_count_1h", "card_count_1d", "card_count_30d", "card_mean_amount_1d",
		"card_mean_amount_30d", "card_distinct_merchants_1h", "is_night", "deny_listed", "speed_kmh",
		"allow_listed", "new_device", "foreign"} {
		if _, err := schema.Declare(n); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := Default(schema)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rs.rules {
		if r.native != nil {
			n++
		}
	}
	if n < 5 {
		t.Errorf("%d of %d built-in rules in native form, want at least 5", n, len(rs.rules))
	}
}
