// Package lightgbm scores transactions with LightGBM models saved in LightGBM's text format
// (booster.save_model("model.txt")), evaluated natively in Go by github.com/dmitryikh/leaves:
// no cgo, no Python. It reproduces LightGBM's prediction for the binary objective: a split
// sends a value <= threshold left, a missing value follows the split's missing type and
// default direction, and the probability is 1/(1+exp(-sigmoid·Σ leaves)), in float64.
//
// The model's features are mapped by name (the file's feature_names line) onto the
// engine's feature schema, and its decision policy is scorers/model's: the same thresholds,
// reason codes, model_score feature and shadow mode. Unlike the XGBoost scorer it gives no
// explanations: leaves computes no feature contributions.
package lightgbm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/dmitryikh/leaves"
)

// ErrUnsupported reports a model that this package cannot evaluate exactly: another
// objective than binary, several classes, a random forest (average_output), linear trees or
// categorical splits.
var ErrUnsupported = errors.New("unsupported LightGBM model")

// Model is a parsed LightGBM binary classifier. It is read-only after Parse and safe to
// share between goroutines.
type Model struct {
	ens      *leaves.Ensemble // raw margins; the sigmoid is applied here
	features []string
	sigmoid  float64
	trees    int
	version  string
}

// Load reads and parses the LightGBM text model at path.
func Load(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lightgbm: %w", err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("lightgbm model %s: %w", path, err)
	}
	return m, nil
}

// Parse reads a model saved by LightGBM's save_model in text format (format versions v2,
// v3 and v4). The model must have objective binary, one class, gradient-boosted trees
// with numerical splits and no linear leaves, and a feature_names line (train from a pandas DataFrame, or pass
// feature_name to the Dataset).
func Parse(data []byte) (m *Model, err error) {
	header, body, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		header, body, ok = bytes.Cut(data, []byte("\r\n\r\n"))
	}
	if !ok {
		return nil, errors.New("not a LightGBM text model: no blank line after the header")
	}
	h := readParams(header)
	if _, ok := h["tree"]; !ok {
		return nil, errors.New("not a LightGBM text model: the first line is not \"tree\"")
	}
	var ver string
	switch ver = h["version"]; ver {
	case "v2", "v3", "v4":
	default:
		return nil, fmt.Errorf("%w: format version %q (want v2, v3 or v4)", ErrUnsupported, ver)
	}
	if c := h["num_class"]; c != "1" {
		return nil, fmt.Errorf("%w: num_class=%s (want a binary model, num_class=1)", ErrUnsupported, c)
	}
	if t, ok := h["num_tree_per_iteration"]; ok && t != "1" {
		return nil, fmt.Errorf("%w: num_tree_per_iteration=%s (want 1)", ErrUnsupported, t)
	}
	if _, ok := h["average_output"]; ok {
		return nil, fmt.Errorf("%w: a random forest (boosting=rf, average_output); train with boosting=gbdt", ErrUnsupported)
	}
	sigmoid, err := parseObjective(h["objective"])
	if err != nil {
		return nil, err
	}
	maxIdx, err := strconv.Atoi(h["max_feature_idx"])
	if err != nil || maxIdx < 0 {
		return nil, fmt.Errorf("not a LightGBM text model: max_feature_idx=%q is not a feature index", h["max_feature_idx"])
	}
	names := strings.Fields(h["feature_names"])
	if len(names) == 0 {
		return nil, errors.New("the model has no feature_names: train it from a pandas DataFrame or pass feature_name to lightgbm.Dataset")
	}
	if len(names) != maxIdx+1 {
		return nil, fmt.Errorf("feature_names lists %d features, max_feature_idx=%d says %d", len(names), maxIdx, maxIdx+1)
	}
	seen := make(map[string]bool, len(names))
	for _, f := range names {
		if seen[f] {
			return nil, fmt.Errorf("feature %q named twice in feature_names", f)
		}
		seen[f] = true
	}
	sizes := strings.Fields(h["tree_sizes"])
	if len(sizes) == 0 {
		return nil, errors.New("the model has no tree_sizes line: save it with booster.save_model (LightGBM 2.1 or later)")
	}
	n, err := checkTrees(body, len(names))
	if err != nil {
		return nil, err
	}
	if n != len(sizes) {
		return nil, fmt.Errorf("tree_sizes lists %d trees, the file has %d", len(sizes), n)
	}
	// leaves knows the v2 and v3 formats; v4 (LightGBM 4) writes the same header and
	// trees, so it is read as v3.
	in := data
	if ver == "v4" {
		in = bytes.Replace(data, []byte("\nversion=v4"), []byte("\nversion=v3"), 1)
	}
	defer func() {
		// The structure was checked above; this is a last guard against a file that
		// passes those checks and still trips the reader.
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("malformed LightGBM model: %v", r)
		}
	}()
	ens, err := leaves.LGEnsembleFromReader(bufio.NewReader(bytes.NewReader(in)), false)
	if err != nil {
		return nil, fmt.Errorf("malformed LightGBM model: %w", err)
	}
	if ens.NEstimators() != n {
		return nil, fmt.Errorf("malformed LightGBM model: read %d of %d trees", ens.NEstimators(), n)
	}
	sum := sha256.Sum256(data)
	return &Model{
		ens:      ens,
		features: names,
		sigmoid:  sigmoid,
		trees:    n,
		version:  "sha256:" + hex.EncodeToString(sum[:6]),
	}, nil
}

// parseObjective checks that the objective is binary and returns its sigmoid parameter:
// "binary sigmoid:1" (LightGBM writes the parameter; 1 when it is absent).
func parseObjective(obj string) (float64, error) {
	f := strings.Fields(obj)
	if len(f) == 0 {
		return 0, fmt.Errorf("%w: the model has no objective line (want objective=binary)", ErrUnsupported)
	}
	if f[0] != "binary" {
		return 0, fmt.Errorf("%w: objective %s (want binary)", ErrUnsupported, obj)
	}
	sigmoid := 1.0
	for _, p := range f[1:] {
		v, ok := strings.CutPrefix(p, "sigmoid:")
		if !ok {
			continue
		}
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || !(s > 0) || math.IsInf(s, 0) {
			return 0, fmt.Errorf("objective %q: sigmoid %q is not a positive number", obj, v)
		}
		sigmoid = s
	}
	return sigmoid, nil
}

// readParams reads key=value lines; a line without '=' is a key with an empty value.
func readParams(b []byte) map[string]string {
	p := make(map[string]string)
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		p[k] = v
	}
	return p
}

// checkTrees checks the structure of every tree (from "Tree=0" to "end of trees") so that
// the tree reader cannot fail halfway and a prediction cannot loop or read out of range:
// array lengths, children in range, every node reached once from the root, split features
// within the model's, finite leaf values, no linear leaves. It returns the number of trees.
func checkTrees(body []byte, nfeat int) (int, error) {
	n := 0
	for block := range strings.SplitSeq(string(body), "\nTree=") {
		block = strings.TrimLeft(block, "\r\n")
		if n == 0 {
			var ok bool
			if block, ok = strings.CutPrefix(block, "Tree="); !ok {
				return 0, errors.New("malformed LightGBM model: no Tree=0 after the header")
			}
		}
		id, rest, _ := strings.Cut(block, "\n")
		if strings.TrimSpace(id) != strconv.Itoa(n) {
			return 0, fmt.Errorf("malformed LightGBM model: tree %q where tree %d was expected", strings.TrimSpace(id), n)
		}
		end := strings.Index(rest, "\n\n")
		if end < 0 {
			end = len(rest)
		}
		if err := checkTree(readParams([]byte(rest[:end])), nfeat); err != nil {
			return 0, fmt.Errorf("tree %d: %w", n, err)
		}
		n++
	}
	return n, nil
}

func checkTree(p map[string]string, nfeat int) error {
	if p["is_linear"] == "1" {
		return fmt.Errorf("%w: linear trees (linear_tree=true); train without linear_tree", ErrUnsupported)
	}
	leaves, err := strconv.Atoi(p["num_leaves"])
	if err != nil || leaves < 1 {
		return fmt.Errorf("num_leaves=%q is not a positive number", p["num_leaves"])
	}
	if c, err := strconv.Atoi(p["num_cat"]); err != nil {
		return fmt.Errorf("num_cat=%q is not a number", p["num_cat"])
	} else if c != 0 {
		// Where leaves sends a missing value at a categorical split depends on how the CPU
		// converts NaN to an integer, and the engine's features are all numbers: refuse
		// rather than risk scoring differently from LightGBM.
		return fmt.Errorf("%w: categorical splits; train without categorical_feature", ErrUnsupported)
	}
	values, err := floats(p, "leaf_value", leaves)
	if err != nil {
		return err
	}
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("leaf value %v is not finite", v)
		}
	}
	if leaves == 1 {
		return nil
	}
	splits := leaves - 1
	left, err := ints(p, "left_child", splits)
	if err != nil {
		return err
	}
	right, err := ints(p, "right_child", splits)
	if err != nil {
		return err
	}
	feats, err := ints(p, "split_feature", splits)
	if err != nil {
		return err
	}
	if _, err := ints(p, "decision_type", splits); err != nil {
		return err
	}
	if _, err := floats(p, "threshold", splits); err != nil {
		return err
	}
	for i, f := range feats {
		if f < 0 || f >= nfeat {
			return fmt.Errorf("split %d reads feature %d, the model has %d", i, f, nfeat)
		}
	}
	// Walk from the root: every split and every leaf must be reached exactly once.
	splitSeen := make([]bool, splits)
	leafSeen := make([]bool, leaves)
	splitSeen[0] = true
	stack := []int{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range [2]int{left[i], right[i]} {
			switch {
			case c < 0 && ^c < leaves && !leafSeen[^c]:
				leafSeen[^c] = true
			case c > 0 && c < splits && !splitSeen[c]:
				splitSeen[c] = true
				stack = append(stack, c)
			default:
				return fmt.Errorf("split %d has a bad or repeated child %d", i, c)
			}
		}
	}
	for i, ok := range leafSeen {
		if !ok {
			return fmt.Errorf("leaf %d is not reached from the root", i)
		}
	}
	return nil
}

// ints reads a space-separated list of want integers.
func ints(p map[string]string, key string, want int) ([]int, error) {
	f := strings.Fields(p[key])
	if len(f) != want {
		return nil, fmt.Errorf("%s has %d values, want %d", key, len(f), want)
	}
	out := make([]int, len(f))
	for i, s := range f {
		v, err := strconv.Atoi(s)
		if err != nil || v != int(int32(v)) {
			return nil, fmt.Errorf("%s: %q is not an integer", key, s)
		}
		out[i] = v
	}
	return out, nil
}

// floats reads a space-separated list of want numbers.
func floats(p map[string]string, key string, want int) ([]float64, error) {
	f := strings.Fields(p[key])
	if len(f) != want {
		return nil, fmt.Errorf("%s has %d values, want %d", key, len(f), want)
	}
	out := make([]float64, len(f))
	for i, s := range f {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a number", key, s)
		}
		out[i] = v
	}
	return out, nil
}

// FeatureNames returns the model's input features in the order Predict expects them. The
// caller must not modify it.
func (m *Model) FeatureNames() []string { return m.features }

// Trees is the number of trees.
func (m *Model) Trees() int { return m.trees }

// Version identifies the model by a hash of its file: "sha256:" and 12 hex digits.
func (m *Model) Version() string { return m.version }

// Margin returns the model's raw score (the sum of the trees' leaves) for the feature
// values x, given in FeatureNames order; NaN is a missing value.
func (m *Model) Margin(x []float64) float64 {
	var out [1]float64
	return m.margin(x, out[:])
}

// margin is Margin with a caller's one-element scratch slice, so that a scorer that keeps
// one allocates nothing.
func (m *Model) margin(x, out []float64) float64 {
	if err := m.ens.Predict(x, 0, out); err != nil {
		// Only a short x fails, which New's feature mapping rules out.
		panic(fmt.Sprintf("lightgbm: %v", err))
	}
	return out[0]
}

// Predict returns the fraud probability for x (see Margin), as LightGBM's binary objective
// converts a margin: 1/(1+exp(-sigmoid·margin)).
func (m *Model) Predict(x []float64) float64 {
	return m.prob(m.Margin(x))
}

func (m *Model) prob(margin float64) float64 {
	return 1 / (1 + math.Exp(-m.sigmoid*margin))
}
