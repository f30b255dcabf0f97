package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFeaturesMatchReplay checks that the training features are those the engine serves:
// every CSV row of `fraudpipe features` equals the features of the same transaction in the
// decisions of `fraudpipe replay` with output.features, and the labels are the input's.
func TestFeaturesMatchReplay(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(repo, "testdata/streams/small.ndjson")
	csvPath := filepath.Join(dir, "features.csv")
	code, _, stderr := fraudpipe(t, "features", "--input", input, "--out", csvPath)
	if code != 0 {
		t.Fatalf("features exited %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "1112 rows") {
		t.Errorf("summary: %s", stderr)
	}
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("engine:\n  partitions: 3\noutput:\n  features: true\nledger:\n  driver: none\n"), 0o644)
	decPath := filepath.Join(dir, "d.ndjson")
	if code, _, stderr := fraudpipe(t, "replay", "--config", cfg, "--input", input, "--out", decPath); code != 0 {
		t.Fatalf("replay exited %d: %s", code, stderr)
	}

	rows := readCSV(t, csvPath)
	header := rows[0]
	if strings.Join(header[:3], ",") != "id,ts,card_id" || strings.Join(header[len(header)-2:], ",") != "label_fraud,label_scenario" {
		t.Fatalf("header %v", header)
	}
	for _, h := range header {
		if h == "model_score" {
			t.Fatal("the CSV has the model's own score as a feature: training on it would leak")
		}
	}
	decisions := lines(t, decPath)
	labels := lines(t, input)
	if len(rows)-1 != len(decisions) || len(decisions) != len(labels) {
		t.Fatalf("%d rows, %d decisions, %d input lines", len(rows)-1, len(decisions), len(labels))
	}
	frauds := 0
	for i, row := range rows[1:] {
		var d struct {
			ID       string             `json:"id"`
			TS       string             `json:"ts"`
			Features map[string]float64 `json:"features"`
		}
		var in struct {
			CardID string `json:"card_id"`
			Label  struct {
				Fraud    bool `json:"fraud"`
				Scenario int  `json:"scenario"`
			} `json:"label"`
		}
		if err := json.Unmarshal([]byte(decisions[i]), &d); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal([]byte(labels[i]), &in)
		if row[0] != d.ID || row[1] != d.TS || row[2] != in.CardID {
			t.Fatalf("row %d: %v, want id %s ts %s card %s", i+1, row[:3], d.ID, d.TS, in.CardID)
		}
		for j, name := range header[3 : len(header)-2] {
			v, err := strconv.ParseFloat(row[3+j], 64)
			if err != nil || v != d.Features[name] {
				t.Fatalf("row %d (%s): %s = %s, replay served %v", i+1, d.ID, name, row[3+j], d.Features[name])
			}
		}
		wantFraud := "0"
		if in.Label.Fraud {
			wantFraud = "1"
			frauds++
		}
		if row[len(row)-2] != wantFraud || row[len(row)-1] != strconv.Itoa(in.Label.Scenario) {
			t.Fatalf("row %d: label %v, want %s %d", i+1, row[len(row)-2:], wantFraud, in.Label.Scenario)
		}
	}
	if frauds == 0 {
		t.Error("no fraud labels in the CSV")
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rows = append(rows, strings.Split(sc.Text(), ","))
	}
	return rows
}

func TestFeaturesFlags(t *testing.T) {
	for _, args := range [][]string{
		{"features", "--out", "x.csv"},
		{"features", "--input", "x.ndjson"},
	} {
		if code, _, stderr := fraudpipe(t, args...); code != 2 || !strings.Contains(stderr, "is required") {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
}

func TestCSVField(t *testing.T) {
	for in, want := range map[string]string{"a": "a", "a,b": `"a,b"`, `say "hi"`: `"say ""hi"""`, "": ""} {
		if got := csvField(in); got != want {
			t.Errorf("csvField(%q) = %q, want %q", in, got, want)
		}
	}
}
