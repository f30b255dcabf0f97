package rules

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

const ruleV1 = `rules:
  - id: big
    description: a big payment
    expr: tx.amount > 100.0
    action: review
`

const ruleV2 = `rules:
  - id: big
    description: a big payment
    expr: tx.amount > 100.0
    action: decline
`

func TestLiveReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(path, []byte(ruleV1), 0o644)
	l, err := NewLive(path, testSchema(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, v1 := l.Version()
	sc, _ := l.NewScorer(0)
	score := func() *pipeline.Eval {
		ev := &pipeline.Eval{Tx: &pipeline.Transaction{ID: "t", Amount: 50000, Currency: pipeline.Currency{Code: "EUR", Digits: 2}}, Features: make([]float64, len(testFeatures))}
		sc.Score(ev)
		return ev
	}
	if ev := score(); len(ev.Hits) != 1 || ev.Hits[0].Outcome != pipeline.Review || ev.Rules != v1 {
		t.Fatalf("v1: hits %v, rules %q", ev.Hits, ev.Rules)
	}
	if changed, err := l.Reload(); changed || err != nil {
		t.Fatalf("Reload of an unchanged file = %v, %v", changed, err)
	}
	os.WriteFile(path, []byte(ruleV2), 0o644)
	if changed, err := l.Reload(); !changed || err != nil {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	ev := score()
	if len(ev.Hits) != 1 || ev.Hits[0].Outcome != pipeline.Decline || ev.Rules == v1 || ev.Rules != Version([]byte(ruleV2)) {
		t.Fatalf("v2: hits %v, rules %q", ev.Hits, ev.Rules)
	}
	// A broken file keeps v2 in force and says where it is broken.
	os.WriteFile(path, []byte("rules:\n  - id: big\n    expr: tx.amount >\n    action: decline\n"), 0o644)
	if changed, err := l.Reload(); changed || err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("Reload of a broken file = %v, %v", changed, err)
	}
	if ev := score(); ev.Hits[0].Outcome != pipeline.Decline || ev.Rules != Version([]byte(ruleV2)) {
		t.Fatalf("after a broken file: hits %v, rules %q", ev.Hits, ev.Rules)
	}
	if r, f, last := l.ReloadStats(); r != 1 || f != 1 || !strings.Contains(last, "line 3") {
		t.Errorf("ReloadStats = %d %d %q", r, f, last)
	}
}

// TestLiveReloadWhileScoring reloads while partitions score (run with -race): each
// transaction is decided by one version whole, old or new.
func TestLiveReloadWhileScoring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(path, []byte(ruleV1), 0o644)
	l, err := NewLive(path, testSchema(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := Version([]byte(ruleV1)), Version([]byte(ruleV2))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := range 3 {
		sc, _ := l.NewScorer(p)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ev := &pipeline.Eval{Tx: &pipeline.Transaction{ID: "t", Amount: 50000, Currency: pipeline.Currency{Code: "EUR", Digits: 2}}, Features: make([]float64, len(testFeatures))}
				sc.Score(ev)
				want := pipeline.Review
				if ev.Rules == v2 {
					want = pipeline.Decline
				} else if ev.Rules != v1 {
					t.Errorf("unknown version %q", ev.Rules)
					return
				}
				if len(ev.Hits) != 1 || ev.Hits[0].Outcome != want {
					t.Errorf("version %s gave %v", ev.Rules, ev.Hits)
					return
				}
			}
		})
	}
	for i := range 20 {
		body := ruleV1
		if i%2 == 0 {
			body = ruleV2
		}
		os.WriteFile(path, []byte(body), 0o644)
		if _, err := l.Reload(); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}
