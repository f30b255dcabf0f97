package model

import (
	"math"
	"os"
	"testing"
)

// FuzzParse feeds Parse arbitrary model files: it must refuse or accept them without
// panicking, and an accepted model must score any input without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(tinyJSON))
	f.Add([]byte(`{"learner":{}}`))
	f.Add([]byte(`{"learner":{"feature_names":["a"],"objective":{"name":"binary:logistic"},"gradient_booster":{"name":"gbtree","model":{"trees":[{"split_indices":[0,0,0],"split_conditions":[1,2,3],"left_children":[1,0,-1],"right_children":[2,0,-1],"default_left":[0,0,0]}]}}}}`))
	if b, err := os.ReadFile("../../models/default/model.json"); err == nil && !testing.Short() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		x := make([]float32, len(m.FeatureNames()))
		contrib := make([]float64, len(x))
		for _, v := range []float32{0, -1e30, 1e30, float32(math.NaN())} {
			for i := range x {
				x[i] = v
			}
			p := m.Predict(x)
			if p < 0 || p > 1 {
				if !math.IsNaN(p) {
					t.Fatalf("probability %v", p)
				}
			}
			m.Contributions(x, contrib)
		}
	})
}
