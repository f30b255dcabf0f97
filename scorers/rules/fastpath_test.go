package rules

import (
	"math"
	"testing"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// TestFastPathMatchesCEL evaluates numeric comparisons with and without the fast path over
// awkward values (NaN, infinities, ints past 2^53, the int64 limits) and wants the same
// answers, errors included.
func TestFastPathMatchesCEL(t *testing.T) {
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

	operands := []string{
		"features.x", "features.y", "tx.amount", "tx.amount_minor", "tx.hour", "tx.weekday", "tx.lat",
		"0", "-1", "5", "0.0", "-0.0", "5.0", "0.1", "1e300", "9223372036854775807", "-9223372036854775808",
		"9007199254740993", "9.223372036854775807e18", "-9.3e18",
		"2.0 * features.x", "features.x / features.y", "-features.x", "features.x - features.y + 1.0",
		"tx.amount * 100.0", "5.0 * features.y",
	}
	values := []float64{0, math.Copysign(0, -1), 5, -1, 0.1, math.NaN(), math.Inf(1), math.Inf(-1),
		-9.3e18, 9223372036854775807, 9007199254740993}
	amounts := []int64{500, 9007199254740993}

	type pair struct {
		expr       string
		fast, slow cel.Program
	}
	var progs []pair
	ops := []string{"<", "<=", ">", ">="}
	for i, l := range operands {
		for j, r := range operands {
			// Every operator meets every operand, on both sides.
			expr := l + " " + ops[(i+j)%len(ops)] + " " + r
			pf, errF := fast.compile(expr)
			ps, errS := slow.compile(expr)
			if (errF == nil) != (errS == nil) {
				t.Fatalf("%s: compile errors differ: %v / %v", expr, errF, errS)
			}
			if errF == nil {
				progs = append(progs, pair{expr, pf, ps})
			}
		}
	}
	if fast.fastNodes < len(progs)/2 || slow.fastNodes != 0 {
		t.Fatalf("fast path took %d of %d comparisons", fast.fastNodes, len(progs))
	}

	tx := &pipeline.Transaction{Currency: pipeline.Currency{Code: "EUR", Digits: 2}, TS: 1764065730123, Lat: 48.1}
	ev := &pipeline.Eval{Tx: tx, Features: make([]float64, 2)}
	af, as := newActivation(fast), newActivation(slow)
	checked := 0
	for _, amount := range amounts {
		tx.Amount = amount
		for _, x := range values {
			for _, y := range values {
				ev.Features[0], ev.Features[1] = x, y
				af.reset(ev)
				as.reset(ev)
				for _, p := range progs {
					of, _, ef := p.fast.Eval(af)
					os, _, es := p.slow.Eval(as)
					if (ef == nil) != (es == nil) || (ef == nil && of != os) {
						t.Fatalf("%s with x=%v y=%v amount=%d: fast %v (%v), CEL %v (%v)", p.expr, x, y, amount, of, ef, os, es)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d expressions, %d evaluations", len(progs), checked)

	// Features the Eval lacks fall back to CEL, which reports the error.
	ev.Features = nil
	af.reset(ev)
	for _, p := range progs[:50] {
		of, _, ef := p.fast.Eval(af)
		os, _, es := p.slow.Eval(af)
		if (ef == nil) != (es == nil) || of != os && !(types.IsError(of) && types.IsError(os)) {
			t.Fatalf("%s without features: fast %v (%v), CEL %v (%v)", p.expr, of, ef, os, es)
		}
	}
}
