package lightgbm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/dmitryikh/leaves"
)

const fixture = "testdata/model.txt"

// expected is testdata/expected.json: rows worked out by hand from testdata/model.txt.
type expected struct {
	Features []string `json:"features"`
	Rows     []struct {
		Features    []*float64 `json:"features"` // nil: missing
		Why         string     `json:"why"`
		Margin      float64    `json:"margin"`
		Probability float64    `json:"probability"`
	} `json:"rows"`
}

func loadExpected(t testing.TB) *expected {
	t.Helper()
	b, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

func row(fs []*float64) []float64 {
	x := make([]float64, len(fs))
	for i, f := range fs {
		x[i] = math.NaN()
		if f != nil {
			x[i] = *f
		}
	}
	return x
}

func mustLoad(t testing.TB, path string) *Model {
	t.Helper()
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustParse(t testing.TB, text string) *Model {
	t.Helper()
	m, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestParityHandComputed checks Go's margins and probabilities against the outputs worked
// out by hand for the fixture (testdata/README.md), to 1e-6.
func TestParityHandComputed(t *testing.T) {
	m := mustLoad(t, fixture)
	e := loadExpected(t)
	if strings.Join(m.FeatureNames(), ",") != strings.Join(e.Features, ",") {
		t.Fatalf("features %v, want %v", m.FeatureNames(), e.Features)
	}
	if m.Trees() != 4 {
		t.Errorf("%d trees, want 4", m.Trees())
	}
	for i, r := range e.Rows {
		x := row(r.Features)
		if got := m.Margin(x); math.Abs(got-r.Margin) > 1e-9 {
			t.Errorf("row %d (%s): margin %v, want %v", i, r.Why, got, r.Margin)
		}
		if got := m.Predict(x); math.Abs(got-r.Probability) > 1e-6 {
			t.Errorf("row %d (%s): probability %v, want %v", i, r.Why, got, r.Probability)
		}
	}
}

// TestSigmoidIsLeavesTransformation checks that the probability is what leaves' own
// transformation for objective=binary computes (its logistic function), not the margin.
func TestSigmoidIsLeavesTransformation(t *testing.T) {
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	v3 := bytes.Replace(data, []byte("\nversion=v4"), []byte("\nversion=v3"), 1)
	ens, err := leaves.LGEnsembleFromReader(bufio.NewReader(bytes.NewReader(v3)), true)
	if err != nil {
		t.Fatal(err)
	}
	if name := ens.Transformation().Name(); name != "logistic" {
		t.Fatalf("leaves' transformation for objective=binary is %q, want logistic", name)
	}
	m := mustParse(t, string(data))
	for i, r := range loadExpected(t).Rows {
		x := row(r.Features)
		if got, want := m.Predict(x), ens.PredictSingle(x, 0); math.Abs(got-want) > 1e-12 {
			t.Errorf("row %d: %v, leaves says %v", i, got, want)
		}
	}
}

// TestFixtureTreeSizes checks that the fixture's tree_sizes are the byte lengths of its tree
// blocks, as LightGBM writes them and reads them back (it seeks by them).
func TestFixtureTreeSizes(t *testing.T) {
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	header, body, _ := strings.Cut(string(data), "\n\n")
	trees, _, ok := strings.Cut(body, "end of trees")
	if !ok {
		t.Fatal("no end of trees")
	}
	var sizes []string
	for _, b := range strings.SplitAfter(trees, "\n\n") {
		if b != "" {
			sizes = append(sizes, strconv.Itoa(len(b)))
		}
	}
	want := "tree_sizes=" + strings.Join(sizes, " ")
	if !strings.Contains(header+"\n", "\n"+want+"\n") {
		t.Errorf("header has no %q:\n%s", want, header)
	}
}

func TestSigmoidParameter(t *testing.T) {
	text := strings.Replace(readFixture(t), "objective=binary sigmoid:1", "objective=binary sigmoid:2", 1)
	m := mustParse(t, text)
	x := []float64{250, 5, math.NaN()} // margin 0.45
	if got, want := m.Predict(x), 1/(1+math.Exp(-0.9)); math.Abs(got-want) > 1e-12 {
		t.Errorf("sigmoid:2: %v, want %v", got, want)
	}
}

func TestVersions(t *testing.T) {
	text := readFixture(t)
	for _, v := range []string{"v2", "v3", "v4"} {
		m := mustParse(t, strings.Replace(text, "version=v4", "version="+v, 1))
		if got := m.Margin([]float64{50, 2, 30}); math.Abs(got+1.55) > 1e-12 {
			t.Errorf("%s: margin %v", v, got)
		}
	}
	m1 := mustParse(t, text)
	m2 := mustParse(t, strings.Replace(text, "version=v4", "version=v3", 1))
	if m1.Version() == m2.Version() || !strings.HasPrefix(m1.Version(), "sha256:") || len(m1.Version()) != len("sha256:")+12 {
		t.Errorf("versions %s and %s: want sha256:<12 hex> of each file", m1.Version(), m2.Version())
	}
}

func readFixture(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseErrors(t *testing.T) {
	text := readFixture(t)
	tree0 := text[strings.Index(text, "Tree=0"):strings.Index(text, "Tree=1")]
	for _, c := range []struct {
		name, old, new, want string
		unsupported          bool
	}{
		{"multiclass", "num_class=1", "num_class=3", "num_class=3", true},
		{"regression", "objective=binary sigmoid:1", "objective=regression", "objective regression", true},
		{"no objective", "objective=binary sigmoid:1\n", "", "no objective", true},
		{"random forest", "objective=binary sigmoid:1\n", "objective=binary sigmoid:1\naverage_output\n", "random forest", true},
		{"linear tree", "is_linear=0", "is_linear=1", "linear trees", true},
		{"categorical", "num_cat=0", "num_cat=1", "categorical splits", true},
		{"version", "version=v4", "version=v9", "format version", true},
		{"bad sigmoid", "sigmoid:1", "sigmoid:-1", "not a positive number", false},
		{"no feature names", "feature_names=amount card_count_1d secs_since_last\n", "", "no feature_names", false},
		{"duplicate feature", "feature_names=amount card_count_1d secs_since_last", "feature_names=amount amount secs_since_last", `"amount" named twice`, false},
		{"feature count", "feature_names=amount card_count_1d secs_since_last", "feature_names=amount card_count_1d", "lists 2 features", false},
		{"feature out of range", "split_feature=0 1\n", "split_feature=0 7\n", "reads feature 7", false},
		{"cycle", "left_child=-1 -2\nright_child=1 -3", "left_child=-1 1\nright_child=1 -3", "bad or repeated child", false},
		{"leaf twice", "left_child=-1 -2\nright_child=1 -3", "left_child=-1 -1\nright_child=1 -3", "bad or repeated child", false},
		{"short leaf values", "leaf_value=-2.1000000000000001 -1.2 0.80000000000000004", "leaf_value=-2.1 -1.2", "leaf_value has 2 values", false},
		{"nan leaf", "leaf_value=-2.1000000000000001", "leaf_value=nan", "not finite", false},
		{"tree count", "tree_sizes=338 295 292 241", "tree_sizes=338 295 292", "lists 3 trees", false},
		{"no trees", tree0, "", "tree \"1\" where tree 0", false},
		{"not a model", text, "hello\nworld\n\nx", "first line", false},
		{"no header end", text, "tree\nversion=v4", "no blank line", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := strings.Replace(text, c.old, c.new, 1)
			if bad == text && c.old != text {
				t.Fatalf("%q not in the fixture", c.old)
			}
			_, err := Parse([]byte(bad))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if errors.Is(err, ErrUnsupported) != c.unsupported {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %v", err, !c.unsupported)
			}
		})
	}
	if _, err := Load("testdata/nonexistent.txt"); err == nil || !strings.Contains(err.Error(), "nonexistent.txt") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// FuzzParse feeds Parse arbitrary model files: it must refuse or accept them without
// panicking, and an accepted model must score any input without panicking or looping.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(fixture); err == nil {
		f.Add(b)
	}
	f.Add([]byte(synthetic(2, 2, 3, 1)))
	f.Add([]byte("tree\nversion=v3\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		x := make([]float64, len(m.FeatureNames()))
		for _, v := range []float64{0, -1e300, 1e300, math.NaN(), 3} {
			for i := range x {
				x[i] = v
			}
			if p := m.Predict(x); !(p >= 0 && p <= 1) {
				t.Fatalf("probability %v for %v", p, v)
			}
		}
	})
}

// synthTree is one tree as LightGBM's text format stores it: splits indexed from 0 (the
// root), a child < 0 being the leaf ^child.
type synthTree struct {
	feat        []int
	thr         []float64
	dt          []int
	left, right []int
	leaf        []float64
}

// synthText writes trees as a LightGBM 4 text model over nfeat features f0, f1, ...
func synthText(trees []synthTree, nfeat int) string {
	join := func(n int, f func(i int) string) string {
		s := make([]string, n)
		for i := range s {
			s[i] = f(i)
		}
		return strings.Join(s, " ")
	}
	var blocks []string
	for t, tr := range trees {
		n := len(tr.feat)
		blocks = append(blocks, fmt.Sprintf("Tree=%d\nnum_leaves=%d\nnum_cat=0\nsplit_feature=%s\nthreshold=%s\ndecision_type=%s\nleft_child=%s\nright_child=%s\nleaf_value=%s\nis_linear=0\nshrinkage=0.1\n\n",
			t, len(tr.leaf),
			join(n, func(i int) string { return strconv.Itoa(tr.feat[i]) }),
			join(n, func(i int) string { return strconv.FormatFloat(tr.thr[i], 'g', 17, 64) }),
			join(n, func(i int) string { return strconv.Itoa(tr.dt[i]) }),
			join(n, func(i int) string { return strconv.Itoa(tr.left[i]) }),
			join(n, func(i int) string { return strconv.Itoa(tr.right[i]) }),
			join(len(tr.leaf), func(i int) string { return strconv.FormatFloat(tr.leaf[i], 'g', 17, 64) })))
	}
	var names, sizes []string
	for i := range nfeat {
		names = append(names, fmt.Sprintf("f%d", i))
	}
	for _, b := range blocks {
		sizes = append(sizes, strconv.Itoa(len(b)))
	}
	return fmt.Sprintf("tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=%d\nobjective=binary sigmoid:1\nfeature_names=%s\ntree_sizes=%s\n\n%send of trees\n",
		nfeat-1, strings.Join(names, " "), strings.Join(sizes, " "), strings.Join(blocks, ""))
}

// decisionTypes are the numerical decision types LightGBM writes: default left or right,
// missing type None, Zero or NaN.
var decisionTypes = []int{0, 2, 4, 6, 8, 10}

// synthetic writes a LightGBM text model of complete trees of the given depth over nfeat
// features, with splits and leaves drawn from seed: the shape a model trained with
// max_depth and enough num_leaves has.
func synthetic(trees, depth, nfeat int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	splits := 1<<depth - 1
	var ts []synthTree
	for range trees {
		var tr synthTree
		for i := range splits {
			tr.feat = append(tr.feat, rng.IntN(nfeat))
			tr.thr = append(tr.thr, rng.Float64()*100)
			tr.dt = append(tr.dt, decisionTypes[rng.IntN(len(decisionTypes))])
			for k, dst := range []*[]int{&tr.left, &tr.right} {
				c := 2*i + 1 + k
				if c >= splits {
					c = ^(c - splits)
				}
				*dst = append(*dst, c)
			}
		}
		for range splits + 1 {
			tr.leaf = append(tr.leaf, rng.Float64()-0.5)
		}
		ts = append(ts, tr)
	}
	return synthText(ts, nfeat)
}

// growTree grows a tree leaf-wise as LightGBM does: splitting leaf L makes a new split node
// whose left child keeps leaf index L and whose right child is the next leaf index.
// Thresholds come from grid, so that inputs can hit them exactly.
func growTree(rng *rand.Rand, leaves, nfeat int, grid []float64) synthTree {
	tr := synthTree{leaf: []float64{rng.Float64() - 0.5}}
	parent := map[int]int{0: -1} // leaf -> the split pointing at it (-1: it is the root)
	for len(tr.leaf) < leaves {
		l := rng.IntN(len(tr.leaf))
		node := len(tr.feat)
		if p := parent[l]; p >= 0 {
			if tr.left[p] == ^l {
				tr.left[p] = node
			} else {
				tr.right[p] = node
			}
		}
		r := len(tr.leaf)
		tr.feat = append(tr.feat, rng.IntN(nfeat))
		tr.thr = append(tr.thr, grid[rng.IntN(len(grid))])
		tr.dt = append(tr.dt, decisionTypes[rng.IntN(len(decisionTypes))])
		tr.left = append(tr.left, ^l)
		tr.right = append(tr.right, ^r)
		tr.leaf = append(tr.leaf, rng.Float64()-0.5)
		parent[l], parent[r] = node, node
	}
	return tr
}

// lightgbmMargin is LightGBM's prediction written from its Tree::NumericalDecision, apart
// from leaves: a NaN reads as 0 unless the missing type is NaN; a missing value (0 for type
// Zero, NaN for type NaN) takes the default direction; otherwise value <= threshold goes
// left.
func lightgbmMargin(trees []synthTree, x []float64) float64 {
	sum := 0.0
	for _, tr := range trees {
		node := 0
		if len(tr.feat) == 0 {
			node = ^0
		}
		for node >= 0 {
			v := x[tr.feat[node]]
			missing := (tr.dt[node] >> 2) & 3
			if math.IsNaN(v) && missing != 2 {
				v = 0
			}
			var left bool
			if (missing == 1 && v > -1e-35 && v <= 1e-35) || (missing == 2 && math.IsNaN(v)) {
				left = tr.dt[node]&2 != 0
			} else {
				left = v <= tr.thr[node]
			}
			if left {
				node = tr.left[node]
			} else {
				node = tr.right[node]
			}
		}
		sum += tr.leaf[^node]
	}
	return sum
}

// TestMatchesLightGBMSemantics compares Margin with lightgbmMargin on random models grown
// as LightGBM grows them, with inputs that hit thresholds exactly, zeros and NaNs.
func TestMatchesLightGBMSemantics(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	grid := []float64{-1, 0, 0.5, 1, 2.5, 10, 100.25}
	for m := range 50 {
		nfeat := 1 + rng.IntN(6)
		trees := make([]synthTree, 1+rng.IntN(10))
		for i := range trees {
			trees[i] = growTree(rng, 1+rng.IntN(20), nfeat, grid)
		}
		model := mustParse(t, synthText(trees, nfeat))
		x := make([]float64, nfeat)
		for range 200 {
			for i := range x {
				switch k := rng.IntN(10); {
				case k == 0:
					x[i] = math.NaN()
				case k == 1:
					x[i] = 0
				case k < 6:
					x[i] = grid[rng.IntN(len(grid))]
				default:
					x[i] = rng.Float64()*120 - 10
				}
			}
			if got, want := model.Margin(x), lightgbmMargin(trees, x); math.Abs(got-want) > 1e-12 {
				t.Fatalf("model %d, x %v: margin %v, LightGBM's rules give %v", m, x, got, want)
			}
		}
	}
}

func TestSynthetic(t *testing.T) {
	m := mustParse(t, synthetic(100, 6, 20, 7))
	if m.Trees() != 100 || len(m.FeatureNames()) != 20 {
		t.Fatalf("%d trees, %d features", m.Trees(), len(m.FeatureNames()))
	}
	x := make([]float64, 20)
	for i := range x {
		x[i] = float64(i * 5)
	}
	if p := m.Predict(x); !(p > 0 && p < 1) {
		t.Errorf("probability %v", p)
	}
}
