// Package model scores transactions with gradient-boosted tree models saved in XGBoost's
// JSON format (booster.save_model("m.json")), evaluated natively in Go: no cgo, no Python.
// It reproduces XGBoost's prediction exactly: features as float32, the split rule
// value < condition (left) or else right, a missing value (NaN) following the node's
// default direction, and the sigmoid of the base margin plus the sum of the trees' leaves.
// It also explains a score by the contribution of each feature along the paths taken
// (Saabas's method, XGBoost's approx_contribs).
package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// Model is a parsed XGBoost binary-classification tree ensemble, flattened for fast
// evaluation. It is read-only after Parse and safe to share between goroutines.
type Model struct {
	features []string
	nodes    []node
	roots    []int32
	leaf     []float32 // each leaf's value, by node index (0 for splits)
	deltas   []float32 // Saabas: each node's value (the cover-weighted mean of the leaves below) minus its parent's
	base     float32   // the base margin: logit(base_score)
	version  string
	depth    int
}

// node is one tree node. The children of a node sit next to each other (right = left+1),
// so a node is 12 bytes and a tree walk touches few cache lines. A leaf points at itself
// with a condition of +Inf, so that any finite value stays there: a walk can take a fixed
// number of steps, the deepest tree's depth, without testing for leaves.
type node struct {
	cond float32 // split condition: a value < cond goes left; +Inf for a leaf
	feat uint32  // index of the split feature in the model's feature order, | defaultLeft
	left int32   // index of the left child; the node's own index for a leaf
}

const defaultLeft = 1 << 31

// ErrUnsupported reports a model that this package cannot evaluate exactly (another
// objective, multi-class, categorical splits, a booster other than gbtree).
var ErrUnsupported = errors.New("unsupported model")

// xgbModel is the part of XGBoost's JSON model format that prediction needs.
type xgbModel struct {
	Learner struct {
		FeatureNames     []string `json:"feature_names"`
		LearnerModelParm struct {
			BaseScore string `json:"base_score"`
			NumClass  string `json:"num_class"`
			NumTarget string `json:"num_target"`
		} `json:"learner_model_param"`
		Objective struct {
			Name string `json:"name"`
		} `json:"objective"`
		GradientBooster struct {
			Name  string `json:"name"`
			Model struct {
				Trees    []xgbTree `json:"trees"`
				TreeInfo []int     `json:"tree_info"`
			} `json:"model"`
		} `json:"gradient_booster"`
	} `json:"learner"`
}

type xgbTree struct {
	SplitIndices    []int32   `json:"split_indices"`
	SplitConditions []float64 `json:"split_conditions"`
	LeftChildren    []int32   `json:"left_children"`
	RightChildren   []int32   `json:"right_children"`
	DefaultLeft     []flag    `json:"default_left"`
	BaseWeights     []float64 `json:"base_weights"`
	SumHessian      []float64 `json:"sum_hessian"`
	SplitType       []int     `json:"split_type"`
	Categories      []int     `json:"categories"`
}

// flag reads default_left entries, written as 0/1 by XGBoost 1.x and as booleans by some
// later versions.
type flag bool

// UnmarshalJSON accepts 0, 1, true and false.
func (f *flag) UnmarshalJSON(b []byte) error {
	switch s := string(bytes.TrimSpace(b)); s {
	case "true", "1":
		*f = true
	case "false", "0":
		*f = false
	default:
		return fmt.Errorf("default_left: %s is not 0, 1, true or false", s)
	}
	return nil
}

// Load reads and parses the XGBoost JSON model at path.
func Load(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return m, nil
}

// Parse reads a model saved by XGBoost's save_model in JSON format. The model must be a
// gbtree booster with objective binary:logistic (or reg:logistic), numerical splits only,
// and feature names (train it from a pandas DataFrame, or set booster.feature_names).
func Parse(data []byte) (*Model, error) {
	var x xgbModel
	if err := json.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("not an XGBoost JSON model: %w", err)
	}
	l := &x.Learner
	switch l.Objective.Name {
	case "binary:logistic", "reg:logistic":
	case "":
		return nil, fmt.Errorf("not an XGBoost JSON model: no learner.objective.name")
	default:
		return nil, fmt.Errorf("%w: objective %s (want binary:logistic)", ErrUnsupported, l.Objective.Name)
	}
	if n := l.GradientBooster.Name; n != "gbtree" {
		return nil, fmt.Errorf("%w: booster %q (want gbtree)", ErrUnsupported, n)
	}
	if c := l.LearnerModelParm.NumClass; c != "" && c != "0" && c != "1" {
		return nil, fmt.Errorf("%w: %s classes (want binary)", ErrUnsupported, c)
	}
	if t := l.LearnerModelParm.NumTarget; t != "" && t != "1" {
		return nil, fmt.Errorf("%w: %s targets (want 1)", ErrUnsupported, t)
	}
	if len(l.FeatureNames) == 0 {
		return nil, fmt.Errorf("the model has no feature_names: train it from a pandas DataFrame or set booster.feature_names before save_model")
	}
	seen := make(map[string]bool, len(l.FeatureNames))
	for _, f := range l.FeatureNames {
		if seen[f] {
			return nil, fmt.Errorf("feature %q named twice in feature_names", f)
		}
		seen[f] = true
	}
	base, err := parseBaseScore(l.LearnerModelParm.BaseScore)
	if err != nil {
		return nil, err
	}
	if base <= 0 || base >= 1 {
		return nil, fmt.Errorf("base_score %v is not a probability in (0, 1)", base)
	}
	sum := sha256.Sum256(data)
	m := &Model{
		features: l.FeatureNames,
		base:     float32(math.Log(base / (1 - base))),
		version:  "sha256:" + hex.EncodeToString(sum[:6]),
		nodes:    make([]node, 0, 64),
	}
	trees := l.GradientBooster.Model.Trees
	if len(trees) == 0 {
		return nil, fmt.Errorf("the model has no trees")
	}
	for i := range trees {
		if err := m.addTree(&trees[i], len(l.FeatureNames)); err != nil {
			return nil, fmt.Errorf("tree %d: %w", i, err)
		}
	}
	return m, nil
}

// parseBaseScore reads learner_model_param.base_score: "5E-1", or "[5E-1]" in XGBoost 3.
func parseBaseScore(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "["), "]")
	if t == "" {
		return 0.5, nil
	}
	if strings.Contains(t, ",") {
		return 0, fmt.Errorf("%w: base_score %s has several values", ErrUnsupported, s)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil {
		return 0, fmt.Errorf("base_score %q: %w", s, err)
	}
	return v, nil
}

// addTree appends one XGBoost tree, renumbered breadth first so that siblings are adjacent.
func (m *Model) addTree(t *xgbTree, nfeat int) error {
	n := len(t.LeftChildren)
	if n == 0 {
		return fmt.Errorf("no nodes")
	}
	for name, l := range map[string]int{"right_children": len(t.RightChildren), "split_indices": len(t.SplitIndices),
		"split_conditions": len(t.SplitConditions), "default_left": len(t.DefaultLeft)} {
		if l != n {
			return fmt.Errorf("%s has %d entries, left_children %d", name, l, n)
		}
	}
	for _, st := range t.SplitType {
		if st != 0 {
			return fmt.Errorf("%w: categorical splits", ErrUnsupported)
		}
	}
	if len(t.Categories) > 0 {
		return fmt.Errorf("%w: categorical splits", ErrUnsupported)
	}
	cover := t.SumHessian
	if len(cover) != n {
		cover = nil
	}
	// Breadth-first renumbering: order[k] is the XGBoost id of our k-th node of this tree.
	start := int32(len(m.nodes))
	order := []int32{0}
	newID := make([]int32, n)
	for i := range newID {
		newID[i] = -1
	}
	newID[0] = 0
	depth := make([]int, n)
	parent := make([]int32, n)
	for k := 0; k < len(order); k++ {
		id := order[k]
		l, r := t.LeftChildren[id], t.RightChildren[id]
		if l == -1 {
			if r != -1 {
				return fmt.Errorf("node %d has a right child but no left", id)
			}
			continue
		}
		for _, c := range []int32{l, r} {
			if c <= 0 || int(c) >= n || newID[c] != -1 {
				return fmt.Errorf("node %d: bad child %d", id, c)
			}
			newID[c] = int32(len(order))
			parent[c] = id
			depth[c] = depth[id] + 1
			m.depth = max(m.depth, depth[c])
			order = append(order, c)
		}
	}
	if len(order) != n {
		return fmt.Errorf("%d of %d nodes unreachable from the root", n-len(order), n)
	}
	m.roots = append(m.roots, start)
	for k, id := range order {
		nd := node{cond: float32(t.SplitConditions[id])}
		m.leaf = append(m.leaf, 0)
		if l := t.LeftChildren[id]; l == -1 {
			m.leaf[len(m.leaf)-1] = nd.cond
			nd.cond = float32(math.Inf(1))
			nd.left = start + int32(k)
		} else {
			f := t.SplitIndices[id]
			if f < 0 || int(f) >= nfeat {
				return fmt.Errorf("node %d splits on feature %d, the model has %d", id, f, nfeat)
			}
			nd.feat = uint32(f)
			if t.DefaultLeft[id] {
				nd.feat |= defaultLeft
			}
			nd.left = start + newID[l]
		}
		m.nodes = append(m.nodes, nd)
	}
	// Saabas node values: the cover-weighted mean of the leaves below, as XGBoost's
	// FillNodeMeanValues computes them.
	means := make([]float32, n)
	var fill func(id int32) float32
	fill = func(id int32) float32 {
		l, r := t.LeftChildren[id], t.RightChildren[id]
		if l == -1 {
			means[id] = float32(t.SplitConditions[id])
			return means[id]
		}
		ml, mr := fill(l), fill(r)
		if cover != nil && cover[id] > 0 {
			means[id] = float32((float64(ml)*cover[l] + float64(mr)*cover[r]) / cover[id])
		} else if len(t.BaseWeights) == n {
			means[id] = float32(t.BaseWeights[id])
		} else {
			means[id] = (ml + mr) / 2
		}
		return means[id]
	}
	fill(0)
	// Stored as the change from the parent's value (the root's: its own), which is what a
	// step down the path attributes to the parent's split feature.
	for k, id := range order {
		d := means[id]
		if k > 0 {
			d -= means[parent[id]]
		}
		m.deltas = append(m.deltas, d)
	}
	return nil
}

// FeatureNames returns the model's input features in the order Margin expects them. The
// caller must not modify it.
func (m *Model) FeatureNames() []string { return m.features }

// Trees is the number of trees.
func (m *Model) Trees() int { return len(m.roots) }

// Depth is the depth of the deepest tree (a lone leaf has depth 0).
func (m *Model) Depth() int { return m.depth }

// Version identifies the model by a hash of its file: "sha256:" and 12 hex digits.
func (m *Model) Version() string { return m.version }

// Margin returns the model's raw score (log-odds) for the feature values x, given in
// FeatureNames order; NaN is a missing value. It sums in float32, tree by tree from the base
// margin, as XGBoost does.
func (m *Model) Margin(x []float32) float32 {
	for _, v := range x {
		if !(v <= math.MaxFloat32) { // NaN (missing) or +Inf: the general walk
			return m.marginMissing(x)
		}
	}
	// Eight, then four trees at a time, a fixed number of branch-free steps each: the walks
	// are independent chains of loads, which the CPU overlaps, and no mispredicted branch
	// stalls them (a feature against a split is as good as random). The leaves are added in
	// tree order, so the float32 sum is XGBoost's.
	nodes, leaf, roots := m.nodes, m.leaf, m.roots
	sum := m.base
	t := 0
	for ; t+8 <= len(roots); t += 8 {
		a, b, c, d := roots[t], roots[t+1], roots[t+2], roots[t+3]
		e, f, g, h := roots[t+4], roots[t+5], roots[t+6], roots[t+7]
		for range m.depth {
			a = step(nodes, x, a)
			b = step(nodes, x, b)
			c = step(nodes, x, c)
			d = step(nodes, x, d)
			e = step(nodes, x, e)
			f = step(nodes, x, f)
			g = step(nodes, x, g)
			h = step(nodes, x, h)
		}
		sum += leaf[a]
		sum += leaf[b]
		sum += leaf[c]
		sum += leaf[d]
		sum += leaf[e]
		sum += leaf[f]
		sum += leaf[g]
		sum += leaf[h]
	}
	for ; t+4 <= len(roots); t += 4 {
		a, b, c, d := roots[t], roots[t+1], roots[t+2], roots[t+3]
		for range m.depth {
			a = step(nodes, x, a)
			b = step(nodes, x, b)
			c = step(nodes, x, c)
			d = step(nodes, x, d)
		}
		sum += leaf[a]
		sum += leaf[b]
		sum += leaf[c]
		sum += leaf[d]
	}
	for ; t < len(roots); t++ {
		a := roots[t]
		for range m.depth {
			a = step(nodes, x, a)
		}
		sum += leaf[a]
	}
	return sum
}

// step moves from node i to the child that x goes to, without a branch: right when the
// value is not below the condition. A leaf stays where it is (x is finite here).
func step(nodes []node, x []float32, i int32) int32 {
	n := &nodes[i]
	r := int32(0)
	if x[n.feat&^defaultLeft] >= n.cond {
		r = 1
	}
	return n.left + r
}

// marginMissing is Margin for feature values with missing ones (NaN), which follow each
// split's default direction, or +Inf.
func (m *Model) marginMissing(x []float32) float32 {
	nodes := m.nodes
	sum := m.base
	for _, r := range m.roots {
		i := r
		for {
			n := &nodes[i]
			if n.left == i {
				sum += m.leaf[i]
				break
			}
			v := x[n.feat&^defaultLeft]
			switch {
			case v < n.cond:
				i = n.left
			case v != v && n.feat&defaultLeft != 0: // NaN: the node's default direction
				i = n.left
			default:
				i = n.left + 1
			}
		}
	}
	return sum
}

// Predict returns the fraud probability for x (see Margin).
func (m *Model) Predict(x []float32) float64 {
	return Sigmoid(m.Margin(x))
}

// Sigmoid maps a margin to a probability the way XGBoost's binary:logistic does, in float32.
func Sigmoid(margin float32) float64 {
	return float64(float32(1) / (float32(1) + float32(math.Exp(float64(-margin)))))
}

// Contributions attributes the margin of x to its features (Saabas's method): along the
// path each tree takes, the change of the node value at a split goes to the split's feature.
// contrib, of length len(FeatureNames), receives each feature's share of the margin; the
// returned bias is the base margin plus the trees' root values, so that
// bias + Σ contrib = Margin(x) up to rounding.
func (m *Model) Contributions(x []float32, contrib []float64) (bias float64) {
	clear(contrib)
	nodes, deltas := m.nodes, m.deltas
	bias = float64(m.base)
	for _, r := range m.roots {
		i := r
		bias += float64(deltas[i])
		for {
			n := &nodes[i]
			if n.left == i {
				break
			}
			f := n.feat &^ defaultLeft
			v := x[f]
			next := n.left + 1
			if v < n.cond || (v != v && n.feat&defaultLeft != 0) {
				next = n.left
			}
			contrib[f] += float64(deltas[next])
			i = next
		}
	}
	return bias
}
