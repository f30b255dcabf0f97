// Package eval measures detection quality the way the fraud-detection literature does
// (Le Borgne et al., "Reproducible Machine Learning for Credit Card Fraud Detection",
// chapter 4): AUC ROC and average precision over transactions, card precision@k per day,
// and precision and recall of decisions. It is pure: no I/O, deterministic, exact on ties.
package eval

import (
	"cmp"
	"math"
	"slices"
)

// AUC is the area under the ROC curve of scores against labels (true: fraud): the chance
// that a random fraud scores above a random genuine transaction, ties counting one half
// (the Mann-Whitney statistic; scikit-learn's roc_auc_score gives the same). It is NaN when
// either class is absent.
func AUC(scores []float64, labels []bool) float64 {
	idx := order(scores)
	var pos, neg float64
	for _, l := range labels {
		if l {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	// Sum of the ranks of the frauds, ascending, ties given their average rank.
	var rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1..j
		for _, k := range idx[i:j] {
			if labels[k] {
				rankSum += avg
			}
		}
		i = j
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// AveragePrecision is the area under the precision-recall curve as scikit-learn's
// average_precision_score computes it: Σ (R_n - R_{n-1}) P_n over the distinct score
// thresholds, highest first, transactions with equal scores taken together. It is NaN
// without frauds.
func AveragePrecision(scores []float64, labels []bool) float64 {
	idx := order(scores)
	slices.Reverse(idx)
	var total float64
	for _, l := range labels {
		if l {
			total++
		}
	}
	if total == 0 {
		return math.NaN()
	}
	var tp, seen, ap float64
	for i := 0; i < len(idx); {
		j := i
		var newTP float64
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] {
				newTP++
			}
			j++
		}
		tp += newTP
		seen += float64(j - i)
		ap += newTP / total * (tp / seen)
		i = j
	}
	return ap
}

// order returns the indices of scores sorted by ascending score (stable).
func order(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(scores[a], scores[b]) })
	return idx
}

// Obs is one scored, labelled transaction for the card metrics.
type Obs struct {
	Day   int64 // the day it happened (days since 1970-01-01, UTC)
	Card  string
	Score float64
	Fraud bool
}

// CardPrecisionAtK is the handbook's card precision@k: for each day, in order, take each
// card's highest score of the day, rank the cards, and count the compromised ones (a fraud
// that day) among the top k, over k; a card found compromised on an earlier day is dropped
// from the later days (the investigators already know it). It returns the mean over days
// and the value of each day, days ascending. Cards with equal scores rank by card id, so
// the result is deterministic (the handbook leaves ties to pandas' sort).
func CardPrecisionAtK(obs []Obs, k int) (mean float64, perDay []float64, days []int64) {
	if k <= 0 || len(obs) == 0 {
		return math.NaN(), nil, nil
	}
	byDay := make(map[int64]map[string]*cardDay)
	for _, o := range obs {
		m := byDay[o.Day]
		if m == nil {
			m = make(map[string]*cardDay)
			byDay[o.Day] = m
		}
		c := m[o.Card]
		if c == nil {
			m[o.Card] = &cardDay{card: o.Card, score: o.Score, fraud: o.Fraud}
			continue
		}
		c.score = max(c.score, o.Score)
		c.fraud = c.fraud || o.Fraud
	}
	for d := range byDay {
		days = append(days, d)
	}
	slices.Sort(days)
	detected := make(map[string]bool)
	var sum float64
	for _, d := range days {
		cards := make([]*cardDay, 0, len(byDay[d]))
		for _, c := range byDay[d] {
			if !detected[c.card] {
				cards = append(cards, c)
			}
		}
		slices.SortFunc(cards, func(a, b *cardDay) int {
			return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.card, b.card))
		})
		found := 0
		for _, c := range cards[:min(k, len(cards))] {
			if c.fraud {
				found++
				detected[c.card] = true
			}
		}
		p := float64(found) / float64(k)
		perDay = append(perDay, p)
		sum += p
	}
	return sum / float64(len(days)), perDay, days
}

type cardDay struct {
	card  string
	score float64
	fraud bool
}

// Confusion counts a yes/no prediction against the labels.
type Confusion struct {
	TP, FP, FN, TN int
}

// Count adds one transaction: flagged by the prediction, fraud by its label.
func (c *Confusion) Count(flagged, fraud bool) {
	switch {
	case flagged && fraud:
		c.TP++
	case flagged:
		c.FP++
	case fraud:
		c.FN++
	default:
		c.TN++
	}
}

// Precision is the share of flagged transactions that are fraud; NaN when none is flagged.
func (c Confusion) Precision() float64 { return ratio(c.TP, c.TP+c.FP) }

// Recall is the share of frauds that are flagged; NaN without frauds.
func (c Confusion) Recall() float64 { return ratio(c.TP, c.TP+c.FN) }

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// Known tells which cards investigators already know to be compromised on a given day, the
// handbook's way: a card with a fraud on a day from `since` to `delay` days before the day
// before (labels arrive `delay` days late), so the test set can drop it.
type Known struct {
	first map[string]int64 // each card's first fraud day on or after since
	delay int64
}

// NewKnown records the first fraud day, on or after since, of each card in obs.
func NewKnown(obs []Obs, since, delay int64) *Known {
	k := &Known{first: make(map[string]int64), delay: delay}
	for _, o := range obs {
		if !o.Fraud || o.Day < since {
			continue
		}
		if f, ok := k.first[o.Card]; !ok || o.Day < f {
			k.first[o.Card] = o.Day
		}
	}
	return k
}

// At reports whether card is known compromised on day: it had a fraud on a day from since
// to day-delay-1.
func (k *Known) At(card string, day int64) bool {
	f, ok := k.first[card]
	return ok && f <= day-k.delay-1
}
