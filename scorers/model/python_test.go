package model

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const python = "/usr/bin/python3"

// TestParityRetrained trains a tiny model end to end with models/train/train.py and checks
// that Go and XGBoost agree on it. It needs Debian's python3-xgboost, python3-pandas and
// python3-sklearn (scripts/install-python-deps) and is skipped without them.
func TestParityRetrained(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the Python training run")
	}
	if err := exec.Command(python, "-c", "import xgboost, pandas, sklearn").Run(); err != nil {
		t.Skipf("%s cannot import xgboost, pandas and sklearn (%v): run scripts/install-python-deps to test training end to end", python, err)
	}
	dir := t.TempDir()
	csv := filepath.Join(dir, "features.csv")
	writeToyFeatures(t, csv)
	out := filepath.Join(dir, "toy")
	cmd := exec.Command(python, "../../models/train/train.py", "--features", csv, "--out-dir", out,
		"--train-start", "2018-04-01", "--train-days", "7", "--delay-days", "7", "--test-days", "7",
		"--trees", "12", "--depth", "4", "--top-k", "5", "--fixture-rows", "80", "--threads", "1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("train.py: %v\n%s", err, b)
	}
	for _, f := range []string{"model.json", "parity.json", "MODEL_CARD.md"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("train.py did not write %s: %v", f, err)
		}
	}
	checkParity(t, filepath.Join(out, "model.json"), filepath.Join(out, "parity.json"))
}

// writeToyFeatures writes a features CSV as `fraudpipe features` does: 21 days of rows for
// 40 cards, fraud more likely with a high amount or many payments.
func writeToyFeatures(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id,ts,card_id,amount,card_count_1d,is_night,label_fraud,label_scenario")
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2018, 4, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	for day := range 21 {
		for range 120 {
			ts := start.Add(time.Duration(day)*24*time.Hour + time.Duration(rng.IntN(86400))*time.Second)
			amount := float64(rng.IntN(30000)) / 100
			count := 1 + rng.IntN(8)
			night := rng.IntN(2)
			fraud := 0
			if rng.Float64() < amount/3000+float64(count)/200 {
				fraud = 1
			}
			fmt.Fprintf(w, "tx-%d,%s,card-%d,%g,%d,%d,%d,%d\n", n, ts.Format(time.RFC3339), rng.IntN(2000), amount, count, night, fraud, fraud)
			n++
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}
