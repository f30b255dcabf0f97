package rules

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ruleFields are the fields of a rule, in the order the docs list them.
var ruleFields = []string{"id", "description", "expr", "action", "reason", "shadow"}

const (
	maxIDLen     = 64
	maxReasonLen = 128
)

// parsedRule is a rule read from the file, before its expression is compiled.
type parsedRule struct {
	Rule
	exprLine int
}

// rule reads the i-th rule of the list, reporting every problem of its fields.
func (f *yamlFile) rule(n *yaml.Node, i int) (parsedRule, bool) {
	n = deref(n)
	var r parsedRule
	if n == nil {
		return r, false
	}
	r.Line = n.Line
	// Name the rule by its id in messages when it has a usable one.
	what := "rule " + strconv.Itoa(i+1) + ": "
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, v := deref(n.Content[j]), deref(n.Content[j+1])
			if k != nil && v != nil && k.Value == "id" && v.Kind == yaml.ScalarNode && validID(v.Value) {
				what = "rule " + v.Value + ": "
			}
		}
	}
	m := f.mapping(n, what, ruleFields...)
	if m == nil {
		return r, false
	}
	before := f.count
	ok := true
	need := func(key string) (string, bool) {
		v := m[key]
		if isNull(v) {
			f.errorf(n.Line, "%s%s is required", what, key)
			return "", false
		}
		return f.scalar(v, what+key+": ")
	}
	if id, got := need("id"); got {
		if !validID(id) {
			f.errorf(m["id"].Line, "%sid %q: use 1 to %d letters, digits, _ - . or :", what, id, maxIDLen)
			ok = false
		}
		r.ID = id
	} else {
		ok = false
	}
	if v := m["description"]; !isNull(v) {
		r.Description, _ = f.scalar(v, what+"description: ")
	}
	if expr, got := need("expr"); got {
		r.Expr = strings.TrimSpace(expr)
		r.exprLine = deref(m["expr"]).Line
		if r.Expr == "" {
			f.errorf(r.exprLine, "%sexpr is empty", what)
		}
	}
	if action, got := need("action"); got {
		a, valid := ParseAction(action)
		if !valid {
			f.errorf(m["action"].Line, "%saction %q is not one of decline, review, tag", what, action)
		}
		r.Action = a
	}
	r.Reason = "rule:" + r.ID
	if v := m["reason"]; !isNull(v) {
		if reason, got := f.scalar(v, what+"reason: "); got {
			if reason == "" || len(reason) > maxReasonLen || strings.ContainsAny(reason, " \t\r\n,") {
				f.errorf(v.Line, "%sreason %q: use 1 to %d characters without spaces or commas", what, reason, maxReasonLen)
			}
			r.Reason = reason
		}
	}
	if v := m["shadow"]; !isNull(v) {
		r.Shadow, _ = f.boolean(v, what+"shadow: ")
	}
	return r, ok && f.count == before
}

// validID reports whether s is a usable rule id.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9',
			b == '_', b == '-', b == '.', b == ':':
		default:
			return false
		}
	}
	return true
}
