package rules

import (
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// activation feeds one transaction to the rule programs without building a map: it resolves
// each variable straight from the current Eval, and caches the CEL value of a variable for
// the rest of the transaction so that rules reading the same field box it once. One
// activation belongs to one scorer, hence one partition goroutine.
type activation struct {
	ev    *pipeline.Eval
	slots map[string]int // shared, read-only: variable name → slot
	feat  []int          // shared, read-only: feature slot - numTxVars → Eval.Features index
	vals  []ref.Val      // cached values, valid where stamp == gen
	stamp []uint32
	gen   uint32
}

var _ interpreter.Activation = (*activation)(nil)

func newActivation(c *compiler) *activation {
	n := int(numTxVars) + len(c.featIndex)
	return &activation{
		slots: c.slots,
		feat:  c.featIndex,
		vals:  make([]ref.Val, n),
		stamp: make([]uint32, n),
	}
}

// reset points the activation at the next transaction and forgets the cached values.
func (a *activation) reset(ev *pipeline.Eval) {
	a.ev = ev
	a.gen++
	if a.gen == 0 { // wrapped: stale stamps could match again
		clear(a.stamp)
		a.gen = 1
	}
}

// ResolveName returns the value of a declared variable for the current transaction.
func (a *activation) ResolveName(name string) (any, bool) {
	slot, ok := a.slots[name]
	if !ok {
		return nil, false
	}
	if a.stamp[slot] == a.gen {
		return a.vals[slot], true
	}
	v := a.value(slot)
	a.vals[slot] = v
	a.stamp[slot] = a.gen
	return v, true
}

// Parent returns nil: the activation is the only scope.
func (a *activation) Parent() interpreter.Activation { return nil }

// Pre-boxed values, so that the common cases allocate nothing.
var (
	emptyString ref.Val = types.String("")
	channelVals         = [...]ref.Val{types.String("pos"), types.String("ecom"), types.String("atm"), types.String("transfer")}
	unknownChan ref.Val = types.String("unknown")
)

func str(s string) ref.Val {
	if s == "" {
		return emptyString
	}
	return types.String(s)
}

// value computes the CEL value of a slot for the current transaction.
func (a *activation) value(slot int) ref.Val {
	if slot >= int(numTxVars) {
		i := a.feat[slot-int(numTxVars)]
		if i >= len(a.ev.Features) {
			return types.NewErr("feature %d not computed", i)
		}
		return types.Double(a.ev.Features[i])
	}
	tx := a.ev.Tx
	switch txVar(slot) {
	case txID:
		return str(tx.ID)
	case txCardID:
		return str(tx.CardID)
	case txAccountID:
		return str(tx.AccountID)
	case txMerchantID:
		return str(tx.MerchantID)
	case txCustomerID:
		return str(tx.CustomerID)
	case txTerminalID:
		return str(tx.TerminalID)
	case txCurrency:
		return str(tx.Currency.Code)
	case txAmount:
		return types.Double(majorUnits(tx))
	case txAmountMinor:
		return types.Int(tx.Amount)
	case txChannel:
		if int(tx.Channel) < len(channelVals) {
			return channelVals[tx.Channel]
		}
		return unknownChan
	case txMCC:
		return str(tx.MCC)
	case txCountry:
		return str(tx.Country)
	case txDeviceID:
		return str(tx.DeviceID)
	case txIP:
		return str(tx.IP)
	case txHour:
		h, _ := hourWeekday(tx.TS)
		return types.Int(h)
	case txWeekday:
		_, d := hourWeekday(tx.TS)
		return types.Int(d)
	case txLat:
		return types.Double(tx.Lat)
	case txLon:
		return types.Double(tx.Lon)
	case txHasGeo:
		return types.Bool(tx.HasGeo)
	}
	return types.NewErr("no variable in slot %d", slot)
}

// majorUnits is the amount in major units as a float64: fine for comparing against a
// threshold, never for money arithmetic, which stays in integer minor units.
func majorUnits(tx *pipeline.Transaction) float64 {
	return float64(tx.Amount) / tx.Currency.MinorPerMajor()
}

// hourWeekday returns the UTC hour (0-23) and weekday (0 = Sunday) of a time in Unix
// milliseconds.
func hourWeekday(ms int64) (hour, weekday int64) {
	secs := floorDiv(ms, 1000)
	days := floorDiv(secs, 86400)
	hour = (secs - days*86400) / 3600
	weekday = (days + 4) % 7 // 1970-01-01 was a Thursday
	if weekday < 0 {
		weekday += 7
	}
	return hour, weekday
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// slotKind is the CEL type of a slot, for the fast path.
type slotKind uint8

const (
	slotOther slotKind = iota
	slotDouble
	slotInt
)

func slotType(slot int) slotKind {
	if slot >= int(numTxVars) {
		return slotDouble
	}
	switch txVar(slot) {
	case txAmount, txLat, txLon:
		return slotDouble
	case txAmountMinor, txHour, txWeekday:
		return slotInt
	}
	return slotOther
}

// rawDouble reads a double slot without boxing; false when the Eval lacks the feature.
func (a *activation) rawDouble(slot int) (float64, bool) {
	if slot >= int(numTxVars) {
		i := a.feat[slot-int(numTxVars)]
		if i >= len(a.ev.Features) {
			return 0, false
		}
		return a.ev.Features[i], true
	}
	switch txVar(slot) {
	case txAmount:
		return majorUnits(a.ev.Tx), true
	case txLat:
		return a.ev.Tx.Lat, true
	case txLon:
		return a.ev.Tx.Lon, true
	}
	return 0, false
}

// rawInt reads an int slot without boxing.
func (a *activation) rawInt(slot int) (int64, bool) {
	switch txVar(slot) {
	case txAmountMinor:
		return a.ev.Tx.Amount, true
	case txHour:
		h, _ := hourWeekday(a.ev.Tx.TS)
		return h, true
	case txWeekday:
		_, d := hourWeekday(a.ev.Tx.TS)
		return d, true
	}
	return 0, false
}
