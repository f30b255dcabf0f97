package enrich

import (
	"os"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/scorers/rules"
)

// TestProposedRules compiles the rules proposed for the built-in set against the
// enrichment features and runs their tests.
func TestProposedRules(t *testing.T) {
	schema := pipeline.NewFeatureSchema()
	if _, err := New(Config{}, schema, nil); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("testdata/proposed_rules.yaml", schema)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("testdata/proposed_rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	results, err := rules.RunTestFile(rs, "testdata/proposed_rules_test.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatal("no rule tests ran")
	}
	for _, r := range results {
		if !r.Passed() {
			t.Error(r)
		}
	}
}
