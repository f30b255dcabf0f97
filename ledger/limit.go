package ledger

import (
	"fmt"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// maxLimitDigits is the most minor-unit digits a currency has (UYW has 4).
const maxLimitDigits = 4

var limitScale = [...]int64{1, 10, 100, 1000, 10000}

// MajorUnitsLimit returns an Options.DefaultLimit that gives every currency the same limit
// in major units, such as the config's ledger.default_limit "10000.00": 1000000 minor
// units of EUR, 10000 of JPY, 10000000 of KWD. Fraction digits a currency lacks are
// dropped ("10.50" is 10 JPY). The decimal must be >= 0 with at most 4 fraction digits.
func MajorUnitsLimit(decimal string) (func(pipeline.Currency) int64, error) {
	v, err := pipeline.ParseAmount(decimal, maxLimitDigits)
	if err != nil {
		return nil, fmt.Errorf("ledger: default limit %q: %w", decimal, err)
	}
	if v < 0 {
		return nil, fmt.Errorf("ledger: default limit %q: negative", decimal)
	}
	return func(c pipeline.Currency) int64 {
		d := min(max(c.Digits, 0), maxLimitDigits)
		return v / limitScale[maxLimitDigits-d]
	}, nil
}
