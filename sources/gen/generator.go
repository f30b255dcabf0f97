package gen

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// Time-of-day model: seconds ~ N(dayMid, daySpread), kept within [0, secondsPerDay).
const (
	secondsPerDay = 86400
	msPerDay      = secondsPerDay * 1000
	dayMid        = secondsPerDay / 2
	daySpread     = 20000
	bigAmount     = 22000 // scenario 1: amounts above 220.00, in cents
	keyShift      = 47    // Generator.order: second of the day << keyShift | index in txs
)

// The 100×100 grid is drawn onto a box over Germany for lat and lon.
const (
	gridSize = 100.0
	latMin   = 47.3
	latScale = (55.0 - 47.3) / gridSize
	lonMin   = 5.9
	lonScale = (15.0 - 5.9) / gridSize
)

// mccs are the merchant category codes given to terminals, with their weights (of 100).
var mccs = [...]struct {
	code   string
	weight int
}{
	{"5411", 25}, // grocery stores, supermarkets
	{"5812", 12}, // restaurants
	{"5814", 10}, // fast food
	{"5541", 10}, // service stations
	{"5912", 8},  // drug stores, pharmacies
	{"5999", 8},  // miscellaneous retail
	{"5311", 6},  // department stores
	{"5651", 6},  // family clothing
	{"5732", 4},  // electronics
	{"4111", 4},  // local commuter transport
	{"5499", 3},  // miscellaneous food stores
	{"5942", 2},  // book stores
	{"7011", 2},  // hotels
}

// Label tails by scenario, closing the line.
var labelTails = [4]string{
	`false,"scenario":0}}`,
	`true,"scenario":1}}`,
	`true,"scenario":2}}`,
	`true,"scenario":3}}`,
}

// Channel parts by customer: what follows the amount's digits.
const (
	posPart  = `","currency":"EUR","channel":"pos"`
	ecomPart = `","currency":"EUR","channel":"ecom"`
)

type customer struct {
	mean, std, lambda float64
	ecom              bool
}

// tx is one simulated transaction of the current day.
type tx struct {
	sec   int32 // second of the day
	cents int64
	cust  int32
	term  int32
	scen  uint8
}

// Generator produces the stream of a simulation one transaction at a time. It simulates a
// day when the previous one is exhausted, so it holds one day of transactions at most. A
// Generator is not safe for concurrent use.
type Generator struct {
	o   Options
	err error

	cust     []customer
	availOff []int   // customer c uses terminals avail[availOff[c]:availOff[c+1]]
	avail    []int32 // ascending within a customer
	custPart []string
	termPart []string // `,"merchant_id":…,"terminal_id":…,"amount":"`
	geoPart  []string // `,"mcc":…,"country":…,"lat":…,"lon":…,"label":{"fraud":`

	termUntil []int32 // a terminal is compromised on days < termUntil
	custUntil []int32 // a customer is compromised on days < custUntil

	s       *stream
	picked  []int
	txs     []tx     // the day's transactions in the order of generation
	order   []uint64 // second of the day << keyShift | index in txs, sorted
	pos     int      // next index in order
	day     int      // the next day to simulate
	dayMs   int64    // Unix milliseconds at the start of the day in txs
	seq     int64    // global index of the next transaction
	sum     Summary
	dateDay int64 // the Unix day date holds
	date    []byte
}

// New returns a Generator of the stream that Write would write for o. If o is invalid the
// Generator produces nothing and Err reports why.
func New(o Options) *Generator {
	g := &Generator{o: o, dateDay: math.MinInt64}
	if err := o.Validate(); err != nil {
		g.err = err
		return g
	}
	g.dayMs = o.Start.UnixMilli()
	g.s = newStream(o.Seed, tagTx, 0, 0)
	xs, ys := g.buildTerminals()
	g.buildCustomers(xs, ys)
	g.termUntil = make([]int32, o.Terminals)
	g.custUntil = make([]int32, o.Customers)
	return g
}

// Err returns the Options' validation error, or nil.
func (g *Generator) Err() error { return g.err }

// Summary returns the counts of the transactions produced so far.
func (g *Generator) Summary() Summary { return g.sum }

// Next appends the next transaction's JSON line, without a trailing newline, to dst and
// returns it; at the end of the stream it returns dst unchanged and false.
func (g *Generator) Next(dst []byte) ([]byte, bool) {
	for g.pos >= len(g.order) {
		if g.err != nil || g.day >= g.o.Days {
			g.txs, g.order, g.pos = g.txs[:0], g.order[:0], 0
			return dst, false
		}
		g.simulate(g.day)
		g.day++
	}
	t := &g.txs[g.order[g.pos]&(1<<keyShift-1)]
	g.pos++
	dst = append(dst, `{"id":"tx-`...)
	dst = appendPadded(dst, g.seq, 9)
	dst = append(dst, `","ts":"`...)
	dst = g.appendTS(dst, g.dayMs+int64(t.sec)*1000)
	dst = append(dst, '"')
	dst = append(dst, g.custPart[t.cust]...)
	dst = append(dst, g.termPart[t.term]...)
	dst = appendCents(dst, t.cents)
	if g.cust[t.cust].ecom {
		dst = append(dst, ecomPart...)
	} else {
		dst = append(dst, posPart...)
	}
	dst = append(dst, g.geoPart[t.term]...)
	dst = append(dst, labelTails[t.scen]...)
	g.seq++
	g.sum.Transactions++
	g.sum.ByScenario[t.scen]++
	if t.scen != 0 {
		g.sum.Fraud++
	}
	return dst, true
}

// buildTerminals draws the terminals' locations, categories and countries, prepares their
// parts of a line, and returns their grid coordinates.
func (g *Generator) buildTerminals() (xs, ys []float64) {
	n := g.o.Terminals
	xs, ys = make([]float64, n), make([]float64, n)
	loc := newStream(g.o.Seed, tagTerminals, 0, 0)
	attr := newStream(g.o.Seed, tagTermAttr, 0, 0)
	g.termPart = make([]string, n)
	g.geoPart = make([]string, n)
	var b []byte
	for i := range n {
		x, y := float64(gridSize*loc.float()), float64(gridSize*loc.float())
		xs[i], ys[i] = x, y
		mcc := pickMCC(attr.intN(100))
		country := pickCountry(x, y, attr.float(), attr.float())

		b = append(b[:0], `,"merchant_id":"m-`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `","terminal_id":"term-`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `","amount":"`...)
		g.termPart[i] = string(b)

		b = append(b[:0], `,"mcc":"`...)
		b = append(b, mcc...)
		b = append(b, `","country":"`...)
		b = append(b, country...)
		b = append(b, `","lat":`...)
		b = strconv.AppendFloat(b, latMin+float64(y*latScale), 'f', 5, 64)
		b = append(b, `,"lon":`...)
		b = strconv.AppendFloat(b, lonMin+float64(x*lonScale), 'f', 5, 64)
		b = append(b, `,"label":{"fraud":`...)
		g.geoPart[i] = string(b)
	}
	return xs, ys
}

// pickMCC maps a uniform draw in [0, 100) to a category code by weight.
func pickMCC(u int) string {
	for _, m := range mccs {
		if u < m.weight {
			return m.code
		}
		u -= m.weight
	}
	return mccs[0].code
}

// pickCountry gives a terminal its country: Germany, except that a quarter of the terminals
// near the edge of the grid are across the nearest border (the grid's top is north).
func pickCountry(x, y, u, v float64) string {
	const band = 8
	west, east, south, north := x, gridSize-x, y, gridSize-y
	edge := min(west, east, south, north)
	if edge >= band || u >= 0.25 {
		return "DE"
	}
	switch edge {
	case north:
		return "DK"
	case south:
		if x < 40 {
			return "CH"
		}
		return "AT"
	case west:
		switch {
		case y >= 60:
			return "NL"
		case y >= 40:
			return "BE"
		case y >= 30 && v < 0.5:
			return "LU"
		default:
			return "FR"
		}
	default: // east
		if y >= 45 {
			return "PL"
		}
		return "CZ"
	}
}

// buildCustomers draws the customers' profiles and channels, prepares their parts of a
// line, and finds the terminals within the radius of each, through a grid of cells.
func (g *Generator) buildCustomers(xs, ys []float64) {
	n := g.o.Customers
	r := g.o.Radius
	r2 := float64(r * r)

	// Terminals bucketed by cell, cells about r wide.
	cell := max(r, gridSize/1024)
	nc := max(int(math.Ceil(gridSize/cell)), 1)
	cellOf := func(v float64) int { return min(max(int(math.Floor(v/cell)), 0), nc-1) }
	start := make([]int32, nc*nc+1)
	for i := range xs {
		start[cellOf(ys[i])*nc+cellOf(xs[i])+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	byCell := make([]int32, len(xs))
	fill := slices.Clone(start[:nc*nc])
	for i := range xs {
		c := cellOf(ys[i])*nc + cellOf(xs[i])
		byCell[fill[c]] = int32(i)
		fill[c]++
	}

	prof := newStream(g.o.Seed, tagCustomers, 0, 0)
	chn := newStream(g.o.Seed, tagChannel, 0, 0)
	g.cust = make([]customer, n)
	g.custPart = make([]string, n)
	g.availOff = make([]int, n+1)
	var b []byte
	for c := range n {
		x, y := float64(gridSize*prof.float()), float64(gridSize*prof.float())
		mean := 5 + float64(95*prof.float())
		g.cust[c] = customer{
			mean:   mean,
			std:    mean / 2,
			lambda: float64(4 * prof.float()),
			ecom:   chn.float() < g.o.EcomShare,
		}

		b = append(b[:0], `,"card_id":"card-`...)
		b = strconv.AppendInt(b, int64(c), 10)
		b = append(b, `","customer_id":"cust-`...)
		b = strconv.AppendInt(b, int64(c), 10)
		b = append(b, `","account_id":"acct-`...)
		b = strconv.AppendInt(b, int64(c), 10)
		b = append(b, '"')
		g.custPart[c] = string(b)

		first := len(g.avail)
		for cy := cellOf(y - r); cy <= cellOf(y+r); cy++ {
			for cx := cellOf(x - r); cx <= cellOf(x+r); cx++ {
				k := cy*nc + cx
				for _, t := range byCell[start[k]:start[k+1]] {
					dx, dy := xs[t]-x, ys[t]-y
					if float64(dx*dx)+float64(dy*dy) < r2 {
						g.avail = append(g.avail, t)
					}
				}
			}
		}
		slices.Sort(g.avail[first:])
		g.availOff[c+1] = len(g.avail)
	}
}

// compromise draws the terminals (scenario 2) and customers (scenario 3) compromised from
// day d on.
func (g *Generator) compromise(d int) {
	g.s.reseed(g.o.Seed, tagCompromise, uint64(d), 0)
	until := int32(d + g.o.TerminalCompromiseDays)
	for _, t := range g.pick(g.o.Terminals, g.o.CompromisedTerminalsPerDay) {
		g.termUntil[t] = max(g.termUntil[t], until)
	}
	until = int32(d + g.o.CustomerCompromiseDays)
	for _, c := range g.pick(g.o.Customers, g.o.CompromisedCustomersPerDay) {
		g.custUntil[c] = max(g.custUntil[c], until)
	}
}

// pick draws k distinct numbers in [0, n) (all of them when k >= n).
func (g *Generator) pick(n, k int) []int {
	g.picked = g.picked[:0]
	if k >= n {
		for i := range n {
			g.picked = append(g.picked, i)
		}
		return g.picked
	}
	var seen map[int]bool
	if k > 64 {
		seen = make(map[int]bool, k)
	}
	for len(g.picked) < k {
		i := g.s.intN(n)
		if seen != nil {
			if seen[i] {
				continue
			}
			seen[i] = true
		} else if slices.Contains(g.picked, i) {
			continue
		}
		g.picked = append(g.picked, i)
	}
	return g.picked
}

// simulate fills txs with day d's transactions, labelled and sorted by time.
func (g *Generator) simulate(d int) {
	g.compromise(d)
	g.txs, g.order, g.pos = g.txs[:0], g.order[:0], 0
	g.dayMs = g.o.Start.UnixMilli() + int64(d)*msPerDay
	day := int32(d)
	s := g.s
	for c := range g.cust {
		avail := g.avail[g.availOff[c]:g.availOff[c+1]]
		if len(avail) == 0 {
			continue
		}
		p := &g.cust[c]
		s.reseed(g.o.Seed, tagTx, uint64(d), uint64(c))
		n := s.poisson(p.lambda)
		compromised := g.custUntil[c] > day
		for range n {
			sec := math.Floor(dayMid + float64(daySpread*s.norm()))
			if !(sec >= 0 && sec < secondsPerDay) {
				continue
			}
			a := p.mean + float64(p.std*s.norm())
			if a < 0 {
				a = float64(2*p.mean) * s.float()
			}
			cents := max(int64(math.Round(float64(a*100))), 1) // CONTRACT.md: amount > 0
			t := avail[s.intN(len(avail))]
			var scen uint8
			if cents > bigAmount {
				scen = 1
			}
			if g.termUntil[t] > day {
				scen = 2
			}
			if compromised && s.float() < 1.0/3 {
				cents *= 5
				scen = 3
			}
			g.order = append(g.order, uint64(sec)<<keyShift|uint64(len(g.txs)))
			g.txs = append(g.txs, tx{
				sec:   int32(sec),
				cents: cents,
				cust:  int32(c),
				term:  t,
				scen:  scen,
			})
		}
	}
	slices.Sort(g.order) // by time, then customer, then the customer's order of the day
}

// appendTS appends Unix milliseconds ms as RFC 3339 UTC with milliseconds.
func (g *Generator) appendTS(dst []byte, ms int64) []byte {
	day := ms / msPerDay
	if ms%msPerDay < 0 {
		day--
	}
	if day != g.dateDay {
		g.dateDay = day
		g.date = time.UnixMilli(day*msPerDay).UTC().AppendFormat(g.date[:0], "2006-01-02T")
	}
	r := ms - day*msPerDay
	h, m, s, f := r/3600000, r/60000%60, r/1000%60, r%1000
	return append(append(dst, g.date...),
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+m/10), byte('0'+m%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10), 'Z')
}

// appendPadded appends n >= 0 in decimal, zero-padded to width digits.
func appendPadded(dst []byte, n int64, width int) []byte {
	var b [20]byte
	i := len(b)
	for n >= 10 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	b[i] = byte('0' + n)
	for k := len(b) - i; k < width; k++ {
		dst = append(dst, '0')
	}
	return append(dst, b[i:]...)
}

// appendCents appends an amount in cents as a decimal with 2 fraction digits.
func appendCents(dst []byte, cents int64) []byte {
	dst = strconv.AppendInt(dst, cents/100, 10)
	f := cents % 100
	return append(dst, '.', byte('0'+f/10), byte('0'+f%10))
}
