package rules

import (
	"math"

	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// The fast path. Most rules compare numbers: a feature or tx.amount against a constant or
// against a multiple of another feature. CEL evaluates such a comparison by boxing each
// operand as a ref.Val and calling Compare, which allocates whenever the result is -1.
// compareNode replaces a numeric comparison whose operands are constants, numeric variables
// or double arithmetic over those, and computes it on float64 and int64 read straight from
// the Eval: no boxing, no name lookup. It keeps CEL's semantics exactly (NaN compares false,
// ints and doubles compare as CEL's cross-type comparison does, double arithmetic is IEEE),
// and falls back to the planned CEL node whenever it cannot read an operand itself (a
// feature the Eval lacks, an activation it does not know).

// relOp is a relational operator.
type relOp uint8

const (
	opLess relOp = iota
	opLessEq
	opGreater
	opGreaterEq
)

// relOverloads maps the numeric overloads of the relational operators to the operator and
// whether each side is an int (else a double).
var relOverloads = map[string]struct {
	op         relOp
	lInt, rInt bool
}{}

func init() {
	for _, o := range []struct {
		op     relOp
		prefix string
	}{{opLess, "less_"}, {opLessEq, "less_equals_"}, {opGreater, "greater_"}, {opGreaterEq, "greater_equals_"}} {
		relOverloads[o.prefix+"double"] = struct {
			op         relOp
			lInt, rInt bool
		}{o.op, false, false}
		relOverloads[o.prefix+"int64"] = struct {
			op         relOp
			lInt, rInt bool
		}{o.op, true, true}
		relOverloads[o.prefix+"double_int64"] = struct {
			op         relOp
			lInt, rInt bool
		}{o.op, false, true}
		relOverloads[o.prefix+"int64_double"] = struct {
			op         relOp
			lInt, rInt bool
		}{o.op, true, false}
	}
}

var relFunctions = map[string]bool{
	operators.Less: true, operators.LessEquals: true, operators.Greater: true, operators.GreaterEquals: true,
}

// arithOverloads are the double arithmetic overloads computed on the fast path.
var arithOverloads = map[string]byte{
	"add_double": '+', "subtract_double": '-', "multiply_double": '*', "divide_double": '/',
}

// operandKind says where a numeric operand comes from.
type operandKind uint8

const (
	constOperand operandKind = iota
	slotOperand
	arithOperand
	negOperand
)

// operand is a numeric operand of a fast comparison: an int or a double.
type operand struct {
	kind  operandKind
	isInt bool
	d     float64 // constant double
	i     int64   // constant int
	slot  int
	op    byte // arithmetic operator
	l, r  *operand
}

// double evaluates a double operand; false when a variable cannot be read.
func (o *operand) double(a *activation) (float64, bool) {
	switch o.kind {
	case constOperand:
		return o.d, true
	case slotOperand:
		return a.rawDouble(o.slot)
	case negOperand:
		x, ok := o.l.double(a)
		return -x, ok
	}
	x, ok := o.l.double(a)
	if !ok {
		return 0, false
	}
	y, ok := o.r.double(a)
	if !ok {
		return 0, false
	}
	switch o.op {
	case '+':
		return x + y, true
	case '-':
		return x - y, true
	case '*':
		return x * y, true
	}
	return x / y, true
}

// int evaluates an int operand (a constant or a variable).
func (o *operand) int(a *activation) (int64, bool) {
	if o.kind == constOperand {
		return o.i, true
	}
	return a.rawInt(o.slot)
}

// compareNode is a numeric comparison evaluated on the fast path.
type compareNode struct {
	interpreter.InterpretableV2 // the planned CEL node: ID, Eval, and the fallback
	op                          relOp
	l, r                        *operand
}

// Exec compares the operands, or hands over to CEL when it cannot read them.
func (n *compareNode) Exec(frame *interpreter.ExecutionFrame) ref.Val {
	a, ok := frame.Scope().(*activation)
	if !ok {
		return n.InterpretableV2.Exec(frame)
	}
	r, ok := n.test(a)
	if !ok {
		return n.InterpretableV2.Exec(frame)
	}
	return types.Bool(r)
}

// test compares the operands; ok is false when it cannot read one of them, and CEL must.
func (n *compareNode) test(a *activation) (r, ok bool) {
	var c int
	switch {
	case !n.l.isInt && !n.r.isInt:
		x, okx := n.l.double(a)
		y, oky := n.r.double(a)
		if !okx || !oky {
			return false, false
		}
		if math.IsNaN(x) || math.IsNaN(y) {
			return false, true
		}
		c = compareDoubles(x, y)
	case n.l.isInt && n.r.isInt:
		x, okx := n.l.int(a)
		y, oky := n.r.int(a)
		if !okx || !oky {
			return false, false
		}
		c = compareInts(x, y)
	case !n.l.isInt:
		x, okx := n.l.double(a)
		y, oky := n.r.int(a)
		if !okx || !oky {
			return false, false
		}
		if math.IsNaN(x) {
			return false, true
		}
		c = compareDoubleInt(x, y)
	default:
		x, okx := n.l.int(a)
		y, oky := n.r.double(a)
		if !okx || !oky {
			return false, false
		}
		if math.IsNaN(y) {
			return false, true
		}
		c = -compareDoubleInt(y, x)
	}
	switch n.op {
	case opLess:
		return c < 0, true
	case opLessEq:
		return c <= 0, true
	case opGreater:
		return c > 0, true
	}
	return c >= 0, true
}

// Eval implements the legacy Interpretable interface through Exec.
func (n *compareNode) Eval(vars interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(vars, n.Exec)
}

func compareDoubles(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func compareInts(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// compareDoubleInt compares as CEL's cross-type comparison does.
func compareDoubleInt(d float64, i int64) int {
	if d < math.MinInt64 {
		return -1
	}
	if d > math.MaxInt64 {
		return 1
	}
	return compareDoubles(d, float64(i))
}

// fastPath returns the planner decorator that puts compareNodes in place of the numeric
// comparisons it can compute itself.
func (c *compiler) fastPath() interpreter.InterpretableDecoratorV2 {
	return func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
		call, ok := i.(interpreter.InterpretableCall)
		if !ok || !relFunctions[call.Function()] {
			return i, nil
		}
		ov, ok := relOverloads[call.OverloadID()]
		args := call.Args()
		if !ok || len(args) != 2 {
			return i, nil
		}
		l, r := c.operand(args[0], 0), c.operand(args[1], 0)
		if l == nil || r == nil || l.isInt != ov.lInt || r.isInt != ov.rInt {
			return i, nil
		}
		c.fastNodes++
		n := &compareNode{InterpretableV2: i, op: ov.op, l: l, r: r}
		if c.planned != nil {
			c.planned[i.ID()] = n
		}
		return n, nil
	}
}

// operand analyses a planned node as a numeric operand, or returns nil.
func (c *compiler) operand(i interpreter.InterpretableV2, depth int) *operand {
	if depth > 8 {
		return nil
	}
	switch n := i.(type) {
	case interpreter.InterpretableConst:
		switch v := n.Value().(type) {
		case types.Double:
			return &operand{kind: constOperand, d: float64(v)}
		case types.Int:
			return &operand{kind: constOperand, isInt: true, i: int64(v)}
		}
	case interpreter.InterpretableAttribute:
		attr, ok := n.Attr().(interpreter.NamespacedAttribute)
		if !ok || len(attr.Qualifiers()) != 0 || len(attr.CandidateVariableNames()) != 1 {
			return nil
		}
		slot, ok := c.slots[attr.CandidateVariableNames()[0]]
		if !ok {
			return nil
		}
		switch slotType(slot) {
		case slotDouble:
			return &operand{kind: slotOperand, slot: slot}
		case slotInt:
			return &operand{kind: slotOperand, isInt: true, slot: slot}
		}
	case interpreter.InterpretableCall:
		args := n.Args()
		if n.OverloadID() == "negate_double" && len(args) == 1 {
			if x := c.operand(args[0], depth+1); x != nil && !x.isInt {
				return &operand{kind: negOperand, l: x}
			}
			return nil
		}
		op, ok := arithOverloads[n.OverloadID()]
		if !ok || len(args) != 2 {
			return nil
		}
		l, r := c.operand(args[0], depth+1), c.operand(args[1], depth+1)
		if l == nil || r == nil || l.isInt || r.isInt {
			return nil
		}
		return &operand{kind: arithOperand, op: op, l: l, r: r}
	}
	return nil
}
