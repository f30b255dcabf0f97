package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/ext"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// MaxCost bounds what one rule may cost, in CEL cost units (roughly one per variable read,
// comparison or arithmetic step; string functions cost per character). An expression whose
// estimated worst case is higher, or unbounded, is refused when the rule file is loaded, so
// no rule can stall a partition. A typical rule costs under 20; rules estimated above 100
// (string functions, comprehensions) are also stopped with an error if they ever go past
// MaxCost at run time.
const MaxCost = 10_000

// maxUntrackedCost is the estimated worst case up to which a rule runs without a runtime
// cost tracker: the static estimate already bounds it, and tracking would cost more than
// the rule (it triples the time of a typical rule). Costlier rules (string functions,
// comprehensions) also get cel.CostLimit(MaxCost) at run time.
const maxUntrackedCost = 100

// maxExprLen bounds an expression's length in code points; rules are one-liners.
const maxExprLen = 4096

// txVar is one transaction field the rules can read, as "tx.<name>".
type txVar int

// The transaction fields of the CEL environment. Their order is the order of the activation's
// slots; features follow them. Label is deliberately absent: scoring must never read it.
const (
	txID txVar = iota
	txCardID
	txAccountID
	txMerchantID
	txCustomerID
	txTerminalID
	txCurrency
	txAmount
	txAmountMinor
	txChannel
	txMCC
	txCountry
	txDeviceID
	txIP
	txHour
	txWeekday
	txLat
	txLon
	txHasGeo
	numTxVars
)

// txVars names and types the transaction fields, indexed by txVar.
var txVars = [numTxVars]struct {
	name string
	typ  *cel.Type
}{
	txID:          {"tx.id", cel.StringType},
	txCardID:      {"tx.card_id", cel.StringType},
	txAccountID:   {"tx.account_id", cel.StringType},
	txMerchantID:  {"tx.merchant_id", cel.StringType},
	txCustomerID:  {"tx.customer_id", cel.StringType},
	txTerminalID:  {"tx.terminal_id", cel.StringType},
	txCurrency:    {"tx.currency", cel.StringType},
	txAmount:      {"tx.amount", cel.DoubleType},
	txAmountMinor: {"tx.amount_minor", cel.IntType},
	txChannel:     {"tx.channel", cel.StringType},
	txMCC:         {"tx.mcc", cel.StringType},
	txCountry:     {"tx.country", cel.StringType},
	txDeviceID:    {"tx.device_id", cel.StringType},
	txIP:          {"tx.ip", cel.StringType},
	txHour:        {"tx.hour", cel.IntType},
	txWeekday:     {"tx.weekday", cel.IntType},
	txLat:         {"tx.lat", cel.DoubleType},
	txLon:         {"tx.lon", cel.DoubleType},
	txHasGeo:      {"tx.has_geo", cel.BoolType},
}

// featurePrefix qualifies feature names in expressions.
const featurePrefix = "features."

// compiler holds the CEL environment of one rule file and the variable slots its programs
// read through the activation.
type compiler struct {
	env    *cel.Env
	schema *pipeline.FeatureSchema
	// slots maps every declared variable name to its activation slot: tx fields first
	// (slot == txVar), then features.
	slots map[string]int
	// featIndex[slot-numTxVars] is the feature's index in Eval.Features.
	featIndex []int
	// noFastPath plans programs without the fast path (for tests that compare the two);
	// fastNodes counts the comparisons the fast path took over.
	noFastPath bool
	fastNodes  int
	// planned collects the fast comparisons of the program being planned, by expression
	// id, for its native form (native.go).
	planned map[int64]*compareNode
}

// newCompiler declares the transaction fields and every feature of schema whose name is a
// CEL identifier (others cannot be written in an expression).
func newCompiler(schema *pipeline.FeatureSchema) (*compiler, error) {
	c := &compiler{schema: schema, slots: make(map[string]int, int(numTxVars)+schema.Len())}
	opts := []cel.EnvOption{
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(),
		cel.ParserExpressionSizeLimit(maxExprLen),
	}
	for i, v := range txVars {
		opts = append(opts, cel.Variable(v.name, v.typ))
		c.slots[v.name] = i
	}
	for i, name := range schema.Names() {
		if !isIdent(name) {
			continue
		}
		q := featurePrefix + name
		c.slots[q] = int(numTxVars) + len(c.featIndex)
		c.featIndex = append(c.featIndex, i)
		opts = append(opts, cel.Variable(q, cel.DoubleType))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("rules: CEL environment: %w", err)
	}
	c.env = env
	return c, nil
}

// compile type-checks one expression, bounds its cost and plans its program. The error is
// a one-line description without file or line, for the caller to place.
func (c *compiler) compile(expr string) (cel.Program, error) {
	prg, _, err := c.compileRule(expr)
	return prg, err
}

// compileRule is compile that also returns the expression's native form, or nil when it
// has none (see native.go).
func (c *compiler) compileRule(expr string) (cel.Program, *native, error) {
	ast, iss := c.env.Compile(expr)
	if iss.Err() != nil {
		msgs := make([]string, 0, len(iss.Errors()))
		for _, e := range iss.Errors() {
			msg := c.explain(expr, e.Location.Line(), e.Location.Column(), e.Message)
			if e.Location.Line() > 0 {
				msg = fmt.Sprintf("%d:%d: %s", e.Location.Line(), e.Location.Column()+1, msg)
			}
			msgs = append(msgs, strings.ReplaceAll(msg, "\n", " "))
		}
		return nil, nil, errors.New(strings.Join(msgs, "; "))
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		return nil, nil, fmt.Errorf("has type %s, want bool", t)
	}
	est, err := c.env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return nil, nil, fmt.Errorf("estimating cost: %v", err)
	}
	if est.Max > MaxCost {
		if est.IsUnknown() {
			return nil, nil, fmt.Errorf("cost cannot be bounded (limit %d)", MaxCost)
		}
		return nil, nil, fmt.Errorf("estimated cost up to %d, over the limit of %d", est.Max, MaxCost)
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if !c.noFastPath {
		opts = append(opts, cel.CustomDecoratorV2(c.fastPath()))
	}
	if est.Max > maxUntrackedCost {
		opts = append(opts, cel.CostLimit(MaxCost))
	}
	c.planned = map[int64]*compareNode{}
	defer func() { c.planned = nil }()
	prg, err := c.env.Program(ast, opts...)
	if err != nil {
		return nil, nil, err
	}
	var nat *native
	if !c.noFastPath && est.Max <= maxUntrackedCost {
		nat = c.native(ast.NativeRep().Expr(), 0)
	}
	return prg, nat, nil
}

// sizeEstimator tells the cost estimator how long the transaction's strings can be: decoding
// refuses longer fields, so string functions over them have a bounded cost.
type sizeEstimator struct{}

// EstimateSize bounds the size of tx string variables.
func (sizeEstimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	p := n.Path()
	if len(p) != 1 || !strings.HasPrefix(p[0], "tx.") {
		return nil
	}
	max := uint64(pipeline.MaxFieldLen)
	if p[0] == "tx.id" {
		max = pipeline.MaxIDLen
	}
	return &cost.SizeEstimate{Min: 0, Max: max}
}

// EstimateCallCost leaves function costs to the standard model.
func (sizeEstimator) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

var memberRE = regexp.MustCompile(`^(tx|features)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)`)

var bareRE = regexp.MustCompile(`^undeclared reference to '(tx|features)'($| )`)

var undeclaredRE = regexp.MustCompile(`^undeclared reference to '(tx|features)\.([A-Za-z_0-9]+)'(.*)$`)

// explain rewords CEL's "undeclared reference" to a tx field or feature the environment
// lacks into what the rule author needs to know: which name, and why.
func (c *compiler) explain(expr string, line, col int, msg string) string {
	if m := undeclaredRE.FindStringSubmatch(msg); m != nil {
		return describeUnknown(m[1], m[2]) + m[3]
	}
	if !bareRE.MatchString(msg) {
		return msg
	}
	// CEL names only the first part; find the rest at the error's location, which counts
	// lines from 1 and columns in code points from 0.
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(expr[off:], '\n')
		if i < 0 {
			return msg
		}
		off += i + 1
	}
	for n := 0; n < col && off < len(expr); n++ {
		_, size := utf8.DecodeRuneInString(expr[off:])
		off += size
	}
	if m := memberRE.FindStringSubmatch(expr[off:]); m != nil {
		return describeUnknown(m[1], m[2])
	}
	return msg
}

func describeUnknown(prefix, name string) string {
	switch {
	case prefix == "tx" && name == "label":
		return "tx.label is not available: scoring never reads the label"
	case prefix == "tx":
		return "tx has no field " + name
	}
	return "unknown feature " + name + " (not declared on the engine's feature schema)"
}

// featureIndex returns the index in Eval.Features of a feature of the schema.
func (c *compiler) featureIndex(name string) (int, bool) { return c.schema.Index(name) }

// isIdent reports whether s is a CEL identifier ([A-Za-z_][A-Za-z0-9_]*).
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b == '_', b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z':
		case b >= '0' && b <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
