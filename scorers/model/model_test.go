package model

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

// tinyJSON is a hand-written model: base_score 0.5 (margin 0) and two trees over features
// a and b, in XGBoost's JSON layout with non-breadth-first node ids.
//
//	tree 0: a < 1 ? (b < 2 [missing: right] ? 0.1 : 0.2) : -0.3   [missing at root: left]
//	tree 1: b < 0.5 [missing: left] ? -0.05 : 0.4
const tinyJSON = `{"learner":{
 "feature_names":["a","b"],
 "learner_model_param":{"base_score":"5E-1","num_class":"0","num_target":"1"},
 "objective":{"name":"binary:logistic"},
 "gradient_booster":{"name":"gbtree","model":{"tree_info":[0,0],"trees":[
  {"split_indices":[0,1,0,0,0],"split_conditions":[1,2,-0.3,0.1,0.2],
   "left_children":[1,3,-1,-1,-1],"right_children":[2,4,-1,-1,-1],"default_left":[1,0,0,0,0],
   "base_weights":[0,0,-0.3,0.1,0.2],"sum_hessian":[10,6,4,2,4]},
  {"split_indices":[1,0,0],"split_conditions":[0.5,-0.05,0.4],
   "left_children":[1,-1,-1],"right_children":[2,-1,-1],"default_left":[true,false,false],
   "base_weights":[0,-0.05,0.4],"sum_hessian":[10,8,2]}
 ]}}}}`

func mustParse(t testing.TB, s string) *Model {
	t.Helper()
	m, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMarginHandBuilt(t *testing.T) {
	m := mustParse(t, tinyJSON)
	nan := float32(math.NaN())
	for _, c := range []struct {
		name string
		a, b float32
		want float32
	}{
		{"left left", 0, 1, 0.1 + 0.4},
		{"left right", 0, 3, 0.2 + 0.4},
		{"split value goes right (a == 1)", 1, 0, -0.3 - 0.05},
		{"b == 2 goes right", 0.5, 2, 0.2 + 0.4},
		{"b == 0.5 goes right in tree 1", 2, 0.5, -0.3 + 0.4},
		{"a missing: default left", nan, 1, 0.1 + 0.4},
		{"b missing: right in tree 0, left in tree 1", 0, nan, 0.2 - 0.05},
		{"both missing", nan, nan, 0.2 - 0.05},
	} {
		got := m.Margin([]float32{c.a, c.b})
		if math.Abs(float64(got-c.want)) > 1e-7 {
			t.Errorf("%s: margin %v, want %v", c.name, got, c.want)
		}
		p := m.Predict([]float32{c.a, c.b})
		if want := 1 / (1 + math.Exp(-float64(c.want))); math.Abs(p-want) > 1e-7 {
			t.Errorf("%s: prediction %v, want %v", c.name, p, want)
		}
	}
	if m.Trees() != 2 || m.Depth() != 2 {
		t.Errorf("trees %d depth %d, want 2 and 2", m.Trees(), m.Depth())
	}
	if !strings.HasPrefix(m.Version(), "sha256:") || len(m.Version()) != len("sha256:")+12 {
		t.Errorf("version %q", m.Version())
	}
}

func TestContributionsHandBuilt(t *testing.T) {
	m := mustParse(t, tinyJSON)
	contrib := make([]float64, 2)
	// Node means: tree 0 root (6*0.1667 + 4*-0.3)/10 where node 1 = (2*0.1+4*0.2)/6.
	n1 := (2*0.1 + 4*0.2) / 6.0
	r0 := (6*n1 + 4*-0.3) / 10
	r1 := (8*-0.05 + 2*0.4) / 10.0
	bias := m.Contributions([]float32{0, 1}, contrib)
	if math.Abs(bias-(r0+r1)) > 1e-6 {
		t.Errorf("bias %v, want %v", bias, r0+r1)
	}
	wantA := n1 - r0
	wantB := (0.1 - n1) + (0.4 - r1)
	if math.Abs(contrib[0]-wantA) > 1e-6 || math.Abs(contrib[1]-wantB) > 1e-6 {
		t.Errorf("contributions %v, want [%v %v]", contrib, wantA, wantB)
	}
	if sum := bias + contrib[0] + contrib[1]; math.Abs(sum-float64(m.Margin([]float32{0, 1}))) > 1e-6 {
		t.Errorf("bias + contributions = %v, margin %v", sum, m.Margin([]float32{0, 1}))
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, edit, want string }{
		{"not json", "!", "not an XGBoost JSON model"},
		{"objective", `"name":"binary:logistic"->"name":"multi:softprob"`, "objective multi:softprob"},
		{"booster", `"name":"gbtree"->"name":"dart"`, `booster "dart"`},
		{"no names", `"feature_names":["a","b"]->"feature_names":[]`, "no feature_names"},
		{"duplicate names", `"feature_names":["a","b"]->"feature_names":["a","a"]`, `feature "a" named twice`},
		{"classes", `"num_class":"0"->"num_class":"3"`, "3 classes"},
		{"feature out of range", `"split_indices":[1,0,0]->"split_indices":[7,0,0]`, "splits on feature 7"},
		{"bad child", `"left_children":[1,-1,-1]->"left_children":[9,-1,-1]`, "bad child 9"},
		{"short arrays", `"default_left":[1,0,0,0,0]->"default_left":[1,0,0,0]`, "default_left has 4 entries"},
		{"categorical", `"sum_hessian":[10,8,2]->"sum_hessian":[10,8,2],"split_type":[1,0,0]`, "categorical"},
		{"base score", `"base_score":"5E-1"->"base_score":"1"`, "not a probability"},
	} {
		s := "!"
		if c.edit != "!" {
			from, to, _ := strings.Cut(c.edit, "->")
			if !strings.Contains(tinyJSON, from) {
				t.Fatalf("%s: %q not in the model", c.name, from)
			}
			s = strings.Replace(tinyJSON, from, to, 1)
		}
		_, err := Parse([]byte(s))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
	_, err := Parse([]byte(strings.Replace(tinyJSON, "binary:logistic", "reg:squarederror", 1)))
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("another objective: %v, want ErrUnsupported", err)
	}
}

func TestParseBaseScoreForms(t *testing.T) {
	for _, c := range []struct {
		base string
		want float64
	}{
		{`"5E-1"`, 0.5}, {`"[5E-1]"`, 0.5}, {`"0.5"`, 0.5}, {`"2E-1"`, math.Log(0.2/0.8) + 0.5},
	} {
		m := mustParse(t, strings.Replace(tinyJSON, `"5E-1"`, c.base, 1))
		if got := float64(m.Margin([]float32{0, 1})); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("base_score %s: margin %v, want %v", c.base, got, c.want)
		}
	}
}

// parityFixture is models/<name>/parity.json, written by models/train/train.py.
type parityFixture struct {
	Features    []string     `json:"features"`
	Rows        [][]*float64 `json:"rows"` // null is a missing value
	Margins     []float64    `json:"margins"`
	Predictions []float64    `json:"predictions"`
	Saabas      [][]float64  `json:"saabas"`
}

func loadFixture(t testing.TB, path string) *parityFixture {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f parityFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(f.Rows) == 0 || len(f.Rows) != len(f.Predictions) || len(f.Rows) != len(f.Margins) {
		t.Fatalf("%s: %d rows, %d predictions, %d margins", path, len(f.Rows), len(f.Predictions), len(f.Margins))
	}
	return &f
}

// checkParity compares the Go model's margins, predictions and Saabas contributions with
// XGBoost's on every fixture row.
func checkParity(t *testing.T, modelPath, fixturePath string) {
	m, err := Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	f := loadFixture(t, fixturePath)
	if strings.Join(f.Features, ",") != strings.Join(m.FeatureNames(), ",") {
		t.Fatalf("fixture features %v, model %v", f.Features, m.FeatureNames())
	}
	x := make([]float32, len(f.Features))
	contrib := make([]float64, len(f.Features))
	missing := 0
	for i, row := range f.Rows {
		for j, v := range row {
			if v == nil {
				x[j] = float32(math.NaN())
				missing++
			} else {
				x[j] = float32(*v)
			}
		}
		if d := math.Abs(m.Predict(x) - f.Predictions[i]); d > 1e-6 {
			t.Errorf("row %d: prediction %.9f, XGBoost %.9f (off by %.2g)", i, m.Predict(x), f.Predictions[i], d)
		}
		if d := math.Abs(float64(m.Margin(x)) - f.Margins[i]); d > 1e-5 {
			t.Errorf("row %d: margin %.9f, XGBoost %.9f", i, m.Margin(x), f.Margins[i])
		}
		if f.Saabas != nil {
			bias := m.Contributions(x, contrib)
			want := f.Saabas[i]
			for j := range contrib {
				if math.Abs(contrib[j]-want[j]) > 1e-4 {
					t.Errorf("row %d: contribution of %s %.6f, XGBoost %.6f", i, f.Features[j], contrib[j], want[j])
				}
			}
			if math.Abs(bias-want[len(want)-1]) > 1e-4 {
				t.Errorf("row %d: bias %.6f, XGBoost %.6f", i, bias, want[len(want)-1])
			}
		}
	}
	if missing == 0 {
		t.Errorf("the fixture has no missing values: default directions are not exercised")
	}
	t.Logf("%d rows (%d missing values) agree with XGBoost to 1e-6", len(f.Rows), missing)
}

// TestParityBundled checks the bundled model against XGBoost's own predictions, committed
// with it, so it needs no Python.
func TestParityBundled(t *testing.T) {
	checkParity(t, "../../models/default/model.json", "../../models/default/parity.json")
}
