package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalSmallCase runs eval on a hand-made stream and decisions whose metrics are easy to
// compute by hand.
func TestEvalSmallCase(t *testing.T) {
	dir := t.TempDir()
	// Day 2018-08-08: a (fraud) 0.9 decline, b 0.8 review, c (fraud) 0.35 approve, d 0.1.
	// Day 2018-08-09: a (fraud) 0.2, e 0.4 review. Not labelled: z.
	txs := []struct {
		id, ts, card string
		fraud        bool
		decision     string
		score        float64
	}{
		{"t1", "2018-08-08T10:00:00Z", "a", true, "decline", 0.9},
		{"t2", "2018-08-08T11:00:00Z", "b", false, "review", 0.8},
		{"t3", "2018-08-08T12:00:00Z", "c", true, "approve", 0.35},
		{"t4", "2018-08-08T13:00:00Z", "d", false, "approve", 0.1},
		{"t5", "2018-08-09T10:00:00Z", "a", true, "approve", 0.2},
		{"t6", "2018-08-09T11:00:00Z", "e", false, "review", 0.4},
	}
	var in, dec strings.Builder
	for _, tx := range txs {
		fmt.Fprintf(&in, `{"id":%q,"ts":%q,"card_id":%q,"account_id":"x","merchant_id":"m","amount":"1.00","currency":"EUR","label":{"fraud":%v,"scenario":0}}`+"\n",
			tx.id, tx.ts, tx.card, tx.fraud)
		fmt.Fprintf(&dec, `{"id":%q,"ts":%q,"decision":%q,"score":%v,"reasons":[],"ledger":"skipped"}`+"\n", tx.id, tx.ts, tx.decision, tx.score)
	}
	dec.WriteString(`{"id":"z","ts":"2018-08-09T11:00:00Z","decision":"approve","score":0.5,"reasons":[],"ledger":"skipped"}` + "\n")
	input, decisions := filepath.Join(dir, "in.ndjson"), filepath.Join(dir, "d.ndjson")
	os.WriteFile(input, []byte(in.String()), 0o644)
	os.WriteFile(decisions, []byte(dec.String()), 0o644)

	code, stdout, stderr := fraudpipe(t, "eval", "--input", input, "--decisions", decisions, "--top-k", "2")
	if code != 0 {
		t.Fatalf("eval exited %d: %s", code, stderr)
	}
	var r evalReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	// Frauds 0.9, 0.35, 0.2 against genuine 0.8, 0.1, 0.4: pairs won 3 + 1 + 1 = 5 of 9.
	// Ranking 0.9 F, 0.8 G, 0.4 G, 0.35 F, 0.2 F: AP = 1/3·1 + 1/3·2/4 + 1/3·3/5.
	// Card precision@2: day 1 top a (F), b: 1/2; day 2 a dropped (found), e: 0/2. Mean 1/4.
	wantAP := (1 + 2.0/4 + 3.0/5) / 3
	if r.Transactions != 6 || r.Frauds != 3 || r.Scored != 6 || r.Unlabelled != 1 ||
		!approx(r.AUCROC, 5.0/9) || !approx(r.AveragePrecision, wantAP) || !approx(r.CardPrecisionAtK, 0.25) {
		t.Errorf("report %s", stdout)
	}
	if fl, de := r.Decisions["review_or_decline"], r.Decisions["decline"]; fl.Flagged != 3 || fl.TP != 1 ||
		!approx(fl.Precision, 1.0/3) || !approx(fl.Recall, 1.0/3) || de.Flagged != 1 || !approx(de.Precision, 1) {
		t.Errorf("decisions %+v", r.Decisions)
	}

	// The handbook's protocol on the second day only: a was a fraud the day before; with
	// a delay of 0 days it is known and dropped, leaving e alone: no fraud, AUC null.
	code, stdout, stderr = fraudpipe(t, "eval", "--input", input, "--decisions", decisions,
		"--from", "2018-08-09", "--days", "1", "--drop-known", "0")
	if code != 0 || !strings.Contains(stdout, `"transactions": 1`) || !strings.Contains(stdout, `"auc_roc": null`) {
		t.Errorf("eval with --drop-known: exit %d: %s %s", code, stdout, stderr)
	}
}

func approx(p *float64, want float64) bool { return p != nil && math.Abs(*p-want) < 1e-12 }

func TestEvalErrors(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.ndjson")
	os.WriteFile(input, []byte(`{"id":"t1","ts":"2018-08-08T10:00:00Z","card_id":"a","account_id":"x","merchant_id":"m","amount":"1.00","currency":"EUR","label":{"fraud":true,"scenario":1}}`+"\n"), 0o644)
	bad := filepath.Join(dir, "bad.ndjson")
	os.WriteFile(bad, []byte(`{"id":"t1","decision":"maybe"}`+"\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval", "--input", input}, 2, "--decisions are required"},
		{[]string{"eval", "--input", input, "--decisions", bad}, 1, `decision "maybe"`},
		{[]string{"eval", "--input", input, "--decisions", filepath.Join(dir, "none")}, 1, "no such file"},
		{[]string{"eval", "--input", input, "--decisions", bad, "--from", "8/8/2018"}, 2, "not a date"},
	} {
		code, _, stderr := fraudpipe(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d (want %d): %s (want %q)", c.args[1:], code, c.code, stderr, c.want)
		}
	}
}
