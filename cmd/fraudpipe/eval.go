package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/eval"
)

func cmdEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", "--input LABELLED --decisions FILE [--from DATE --days N] [--drop-known DELAY --known-since DATE] [--top-k K]",
		`Measures detection quality: joins the decisions (from replay) with the labels of the
stream they were made from, by transaction id, and prints JSON: AUC ROC and average
precision of the decisions' score, card precision@K the fraud-detection handbook's way
(per day: each card's highest score, the top K cards, cards found compromised on earlier
days dropped), and precision and recall of the decisions (review or decline as positive;
decline alone). --from and --days restrict the evaluation to those days (UTC). With
--drop-known DELAY, the handbook's test protocol: on each evaluated day D, cards with a
fraud on a day from --known-since to D-DELAY-1 are dropped, as investigators know them.`, stdout)
	input := fs.String("input", "", "the labelled stream the decisions were made from (required)")
	decisions := fs.String("decisions", "", "decisions file written by replay (required)")
	from := fs.String("from", "", "first day to evaluate, YYYY-MM-DD (default: the first day of the input)")
	days := fs.Int("days", 0, "number of days to evaluate from --from (0: all)")
	dropKnown := fs.Int("drop-known", -1, "drop cards known compromised with labels this many days late (-1: keep them)")
	knownSince := fs.String("known-since", "", "first day whose frauds count as known, for --drop-known (default: the first day of the input)")
	topK := fs.Int("top-k", 100, "K of card precision@K")
	shadow := fs.Bool("shadow", false, "measure the challenger's shadow_score instead of the score (decision precision stays the decisions')")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *input == "" || *decisions == "" {
		return &usageError{"--input and --decisions are required"}
	}
	if *topK <= 0 || *days < 0 {
		return &usageError{"--top-k must be positive and --days not negative"}
	}
	fromDay, err := flagDay("--from", *from)
	if err != nil {
		return err
	}
	sinceDay, err := flagDay("--known-since", *knownSince)
	if err != nil {
		return err
	}
	labels, first, err := readLabels(*input)
	if err != nil {
		return err
	}
	if *from == "" {
		fromDay = first
	}
	if *knownSince == "" {
		sinceDay = first
	}
	toDay := int64(math.MaxInt64)
	if *days > 0 {
		toDay = fromDay + int64(*days)
	}
	var known *eval.Known
	if *dropKnown >= 0 {
		all := make([]eval.Obs, 0, len(labels))
		for _, l := range labels {
			all = append(all, eval.Obs{Day: l.day, Card: l.card, Fraud: l.fraud})
		}
		known = eval.NewKnown(all, sinceDay, int64(*dropKnown))
	}
	r, err := evaluate(*decisions, labels, func(l label) bool {
		return l.day >= fromDay && l.day < toDay && (known == nil || !known.At(l.card, l.day))
	}, *topK, *shadow)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// flagDay parses a YYYY-MM-DD flag into days since 1970-01-01; "" gives 0.
func flagDay(name, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return 0, &usageError{fmt.Sprintf("%s %q is not a date like 2018-08-08", name, s)}
	}
	return t.Unix() / 86400, nil
}

// label is what eval needs of one labelled transaction.
type label struct {
	card  string
	day   int64
	fraud bool
}

const dayMillis = 86_400_000

// readLabels reads the labelled stream: each valid, labelled transaction's card, day and
// label by id, and the first day seen.
func readLabels(path string) (map[string]label, int64, error) {
	labels := make(map[string]label)
	first := int64(math.MaxInt64)
	var tx pipeline.Transaction
	err := eachLine(path, func(line []byte) error {
		if len(strings.TrimSpace(string(line))) == 0 {
			return nil
		}
		if pipeline.DecodeTransaction(line, &tx) != nil || !tx.Label.Present {
			return nil // dead letters have no decision; unlabelled lines cannot be scored
		}
		day := floorDiv(tx.TS, dayMillis)
		labels[tx.ID] = label{card: tx.CardID, day: day, fraud: tx.Label.Fraud}
		first = min(first, day)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if len(labels) == 0 {
		return nil, 0, fmt.Errorf("%s: no labelled transactions", path)
	}
	return labels, first, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// evalReport is the JSON that eval prints. Metrics that cannot be computed (no fraud, no
// score) are null.
type evalReport struct {
	Transactions       int               `json:"transactions"`
	Frauds             int               `json:"frauds"`
	Scored             int               `json:"scored"`
	AUCROC             *float64          `json:"auc_roc"`
	AveragePrecision   *float64          `json:"average_precision"`
	CardPrecisionAtK   *float64          `json:"card_precision_at_k"`
	K                  int               `json:"k"`
	CardPrecisionByDay []dayPrecision    `json:"card_precision_by_day,omitempty"`
	Decisions          map[string]prRate `json:"decisions"`
	Unlabelled         int               `json:"unlabelled_decisions"`
}

type dayPrecision struct {
	Day       string  `json:"day"`
	Precision float64 `json:"precision"`
}

type prRate struct {
	Flagged   int      `json:"flagged"`
	TP        int      `json:"true_positives"`
	Precision *float64 `json:"precision"`
	Recall    *float64 `json:"recall"`
}

func num(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// evaluate reads the decisions, keeps those whose label passes keep, and computes the report.
func evaluate(path string, labels map[string]label, keep func(label) bool, k int, useShadow bool) (*evalReport, error) {
	r := &evalReport{K: k}
	var scores []float64
	var ys []bool
	var obs []eval.Obs
	var flagged, declined eval.Confusion
	var d struct {
		ID       string   `json:"id"`
		Decision string   `json:"decision"`
		Score    *float64 `json:"score"`
		Shadow   *float64 `json:"shadow_score"`
	}
	n := 0
	err := eachLine(path, func(line []byte) error {
		n++
		if len(strings.TrimSpace(string(line))) == 0 {
			return nil
		}
		d.ID, d.Decision, d.Score, d.Shadow = "", "", nil, nil
		if err := json.Unmarshal(line, &d); err != nil {
			return fmt.Errorf("%s: line %d: %v", path, n, err)
		}
		if useShadow {
			d.Score = d.Shadow
		}
		out, ok := pipeline.ParseOutcome(d.Decision)
		if !ok {
			return fmt.Errorf("%s: line %d: decision %q is not approve, review or decline", path, n, d.Decision)
		}
		l, ok := labels[d.ID]
		if !ok {
			r.Unlabelled++
			return nil
		}
		if !keep(l) {
			return nil
		}
		r.Transactions++
		if l.fraud {
			r.Frauds++
		}
		flagged.Count(out >= pipeline.Review, l.fraud)
		declined.Count(out == pipeline.Decline, l.fraud)
		if d.Score != nil {
			scores = append(scores, *d.Score)
			ys = append(ys, l.fraud)
			obs = append(obs, eval.Obs{Day: l.day, Card: l.card, Score: *d.Score, Fraud: l.fraud})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r.Transactions == 0 {
		return nil, fmt.Errorf("no decision of %s matches a labelled transaction in the evaluated days", path)
	}
	r.Scored = len(scores)
	if r.Scored == len(ys) && r.Scored > 0 && r.Scored == r.Transactions {
		r.AUCROC = num(eval.AUC(scores, ys))
		r.AveragePrecision = num(eval.AveragePrecision(scores, ys))
		mean, perDay, days := eval.CardPrecisionAtK(obs, k)
		r.CardPrecisionAtK = num(mean)
		for i, p := range perDay {
			r.CardPrecisionByDay = append(r.CardPrecisionByDay, dayPrecision{
				Day: time.Unix(days[i]*86400, 0).UTC().Format("2006-01-02"), Precision: p})
		}
	}
	r.Decisions = map[string]prRate{
		"review_or_decline": rate(flagged),
		"decline":           rate(declined),
	}
	return r, nil
}

func rate(c eval.Confusion) prRate {
	return prRate{Flagged: c.TP + c.FP, TP: c.TP, Precision: num(c.Precision()), Recall: num(c.Recall())}
}

// eachLine calls fn with each line of path (plain, or gzip when it ends in .gz; - for
// standard input), without its line end.
func eachLine(path string, fn func([]byte) error) error {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open input: %w", err)
		}
		defer f.Close()
		r = f
		if strings.HasSuffix(path, ".gz") {
			gz, err := gzip.NewReader(f)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			defer gz.Close()
			r = gz
		}
	}
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line over the buffer: collect it whole.
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			if e := fn(trimEOL(line)); e != nil {
				return e
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}
