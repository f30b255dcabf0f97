package rules

import (
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
)

// The native form of a rule. A rule made only of the fast path's numeric comparisons joined
// by &&, || and ! (most fraud rules: features.card_count_1h >= 5 && tx.amount < 5.0) is
// evaluated by walking that tree directly, without CEL's per-evaluation frame, so a rule
// costs its comparisons and little more. Whenever a comparison cannot read an operand
// itself, the native walk gives up and the rule runs through its CEL program, which then
// gives CEL's answer or error: the native form answers only when every comparison it
// evaluated had a plain true or false, and for such values &&, || and ! are plain logic in
// CEL too (their short-circuits included).

// nativeOp is the kind of a native node.
type nativeOp uint8

const (
	nativeCompare nativeOp = iota
	nativeAnd
	nativeOr
	nativeNot
	nativeConst
)

// native is one node of a rule's native form.
type native struct {
	op   nativeOp
	cmp  *compareNode // nativeCompare
	args []*native    // nativeAnd, nativeOr: two; nativeNot: one
	k    bool         // nativeConst
}

// maxNativeDepth bounds the recursion over an expression (rules are one-liners).
const maxNativeDepth = 32

// native returns the native form of a checked expression whose fast comparisons were just
// planned into c.planned, or nil if any part of it is something else.
func (c *compiler) native(e celast.Expr, depth int) *native {
	if depth > maxNativeDepth {
		return nil
	}
	switch e.Kind() {
	case celast.LiteralKind:
		if b, ok := e.AsLiteral().(types.Bool); ok {
			return &native{op: nativeConst, k: bool(b)}
		}
	case celast.CallKind:
		call := e.AsCall()
		args := call.Args()
		var op nativeOp
		switch call.FunctionName() {
		case operators.LogicalAnd:
			op = nativeAnd
		case operators.LogicalOr:
			op = nativeOr
		case operators.LogicalNot:
			op = nativeNot
		default:
			if n := c.planned[e.ID()]; n != nil {
				return &native{op: nativeCompare, cmp: n}
			}
			return nil
		}
		if (op == nativeNot) != (len(args) == 1) || (op != nativeNot && len(args) != 2) {
			return nil
		}
		n := &native{op: op}
		for _, a := range args {
			x := c.native(a, depth+1)
			if x == nil {
				return nil
			}
			n.args = append(n.args, x)
		}
		return n
	}
	return nil
}

// eval evaluates the native form; ok is false when a comparison cannot read an operand, and
// the rule must run through CEL.
func (n *native) eval(a *activation) (r, ok bool) {
	switch n.op {
	case nativeCompare:
		return n.cmp.test(a)
	case nativeAnd:
		if r, ok = n.args[0].eval(a); !ok || !r {
			return r, ok
		}
		return n.args[1].eval(a)
	case nativeOr:
		if r, ok = n.args[0].eval(a); !ok || r {
			return r, ok
		}
		return n.args[1].eval(a)
	case nativeNot:
		r, ok = n.args[0].eval(a)
		return !r, ok
	}
	return n.k, true
}
