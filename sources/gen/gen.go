// Package gen writes a labelled synthetic transaction stream: a Go port of the transaction
// simulator of the "Reproducible Machine Learning for Credit Card Fraud Detection – Practical
// Handbook" (Le Borgne et al., chapter 3), with its three fraud scenarios, in the
// Transaction format of CONTRACT.md.
//
// The model, as in the handbook:
//
//   - Customers sit uniformly on a 100×100 grid, with mean_amount ~ U(5, 100),
//     std_amount = mean_amount/2 and mean_nb_tx_per_day ~ U(0, 4). Terminals sit uniformly
//     on the same grid; a customer uses the terminals closer than Options.Radius.
//   - Every day each customer makes Poisson(mean_nb_tx_per_day) transactions, at a second
//     of the day ~ N(43200, 20000) (kept only within the day), of amount
//     ~ N(mean_amount, std_amount) (redrawn U(0, 2·mean_amount) when negative, rounded to
//     cents), at a terminal drawn uniformly among the customer's.
//   - Scenario 1: an amount over 220 is fraud. Scenario 2: every day 2 terminals drawn at
//     random are compromised for 28 days, and all their transactions then are fraud.
//     Scenario 3: every day 3 customers drawn at random are compromised for 14 days, and a
//     third of their transactions then have their amount multiplied by 5 and are fraud.
//     A later scenario's label wins (3 over 2 over 1), as in the handbook.
//
// The stream is statistically equivalent to the handbook's, not bit for bit: scenario 3
// marks each transaction of a compromised customer as fraud with probability 1/3 (the
// handbook picks exactly a third of the window's transactions, which needs the future).
// The output is sorted by ts (ties by customer, then by the customer's order of the day)
// and is a function of the Options only: byte-identical on every machine and Go
// architecture.
package gen

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// Options sets the size, seed and fraud parameters of a simulation. DefaultOptions gives
// the handbook's values; fields are used as they are (a zero is not replaced by a default).
type Options struct {
	// Seed selects the random stream; the same Options always give the same bytes.
	Seed uint64
	// Customers is the number of customers (and cards and accounts), numbered from 0.
	Customers int
	// Terminals is the number of terminals (one merchant each), numbered from 0.
	Terminals int
	// Days is the number of simulated days.
	Days int
	// Start is when day 0 begins; it is written in UTC, truncated to the millisecond.
	Start time.Time
	// Radius is the distance on the 100×100 grid within which a customer uses terminals.
	Radius float64
	// EcomShare is the share of customers whose transactions are e-commerce (channel
	// "ecom"); the others' are "pos".
	EcomShare float64
	// CompromisedTerminalsPerDay is how many terminals are compromised each day (scenario 2).
	CompromisedTerminalsPerDay int
	// TerminalCompromiseDays is how many days, from the day it is drawn, a compromised
	// terminal's transactions are fraud.
	TerminalCompromiseDays int
	// CompromisedCustomersPerDay is how many customers are compromised each day (scenario 3).
	CompromisedCustomersPerDay int
	// CustomerCompromiseDays is how many days, from the day it is drawn, a third of a
	// compromised customer's transactions are fraud.
	CustomerCompromiseDays int
}

// DefaultOptions returns the handbook's simulation: seed 0, 5000 customers, 10000
// terminals, 183 days from 2018-04-01 UTC, radius 5, 2 terminals compromised a day for 28
// days, 3 customers a day for 14 days, and 20% of customers on e-commerce.
func DefaultOptions() Options {
	return Options{
		Seed:                       0,
		Customers:                  5000,
		Terminals:                  10000,
		Days:                       183,
		Start:                      time.Date(2018, 4, 1, 0, 0, 0, 0, time.UTC),
		Radius:                     5,
		EcomShare:                  0.2,
		CompromisedTerminalsPerDay: 2,
		TerminalCompromiseDays:     28,
		CompromisedCustomersPerDay: 3,
		CustomerCompromiseDays:     14,
	}
}

// Limits of Options that keep ids, times and internal indexes in range.
const (
	maxCount = math.MaxInt32 // customers, terminals, compromised per day
	maxDays  = 3_000_000     // about 8200 years
)

// Validate reports the first field of o that is out of range, or nil.
func (o Options) Validate() error {
	switch {
	case o.Customers < 0 || o.Customers > maxCount:
		return errors.New("gen: customers must be between 0 and " + strconv.Itoa(maxCount))
	case o.Terminals < 0 || o.Terminals > maxCount:
		return errors.New("gen: terminals must be between 0 and " + strconv.Itoa(maxCount))
	case o.Days < 0 || o.Days > maxDays:
		return errors.New("gen: days must be between 0 and " + strconv.Itoa(maxDays))
	case !(o.Radius > 0) || math.IsInf(o.Radius, 0):
		return errors.New("gen: radius must be a positive number")
	case !(o.EcomShare >= 0 && o.EcomShare <= 1):
		return errors.New("gen: ecom share must be between 0 and 1")
	case o.CompromisedTerminalsPerDay < 0 || o.CompromisedTerminalsPerDay > maxCount:
		return errors.New("gen: compromised terminals per day must be between 0 and " + strconv.Itoa(maxCount))
	case o.CompromisedCustomersPerDay < 0 || o.CompromisedCustomersPerDay > maxCount:
		return errors.New("gen: compromised customers per day must be between 0 and " + strconv.Itoa(maxCount))
	case o.TerminalCompromiseDays < 0 || o.TerminalCompromiseDays > maxDays:
		return errors.New("gen: terminal compromise days must be between 0 and " + strconv.Itoa(maxDays))
	case o.CustomerCompromiseDays < 0 || o.CustomerCompromiseDays > maxDays:
		return errors.New("gen: customer compromise days must be between 0 and " + strconv.Itoa(maxDays))
	}
	first := o.Start.UTC()
	last := first.AddDate(0, 0, o.Days)
	if first.Year() < 0 || last.Year() > 9999 {
		return errors.New("gen: start and days must stay within years 0000-9999")
	}
	return nil
}

// Summary counts the transactions of a stream.
type Summary struct {
	// Transactions is the number of transactions.
	Transactions int64
	// Fraud is the number labelled fraud (scenarios 1 to 3).
	Fraud int64
	// ByScenario counts transactions by label scenario; index 0 is genuine.
	ByScenario [4]int64
}

// FraudRate is the share of fraud among the transactions (0 when there are none).
func (s Summary) FraudRate() float64 {
	if s.Transactions == 0 {
		return 0
	}
	return float64(s.Fraud) / float64(s.Transactions)
}

// Write streams the whole data set as NDJSON to w, one transaction a line in ts order,
// holding no more than one simulated day in memory, and returns its counts. Invalid
// Options are an error before anything is written; after a write error the Summary counts
// the lines generated so far.
func Write(w io.Writer, o Options) (Summary, error) {
	return WriteProgress(w, o, nil)
}

// WriteProgress is Write that calls report, when not nil, with the simulated days begun
// and the days in all, as the days go by (for a progress display).
func WriteProgress(w io.Writer, o Options, report func(day, days int)) (Summary, error) {
	g := New(o)
	if g.err != nil {
		return Summary{}, g.err
	}
	lastDay := -1
	const flushAt = 64 << 10
	buf := make([]byte, 0, flushAt+4096)
	for {
		var ok bool
		buf, ok = g.Next(buf)
		if !ok {
			break
		}
		buf = append(buf, '\n')
		if report != nil && g.day != lastDay {
			lastDay = g.day
			report(g.day, o.Days)
		}
		if len(buf) >= flushAt {
			if _, err := w.Write(buf); err != nil {
				return g.sum, err
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return g.sum, err
		}
	}
	return g.sum, nil
}

// String summarises the counts on one line.
func (s Summary) String() string {
	return fmt.Sprintf("%d transactions, %d fraud (%.2f%%: scenario 1 %d, 2 %d, 3 %d)",
		s.Transactions, s.Fraud, 100*s.FraudRate(), s.ByScenario[1], s.ByScenario[2], s.ByScenario[3])
}
