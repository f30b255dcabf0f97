package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and prints days and weeks as well as Go's units:
// "500ms", "1h30m", "36h", "7d", "30d", "2w", "1d12h". Config files use it for every
// length of time, so a month-long window is written 30d rather than 720h.
type Duration time.Duration

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// ParseDuration parses a duration: a sequence of decimal numbers, each with a unit, with an
// optional sign in front. The units are Go's (ns, us, µs, ms, s, m, h) plus d (24h) and
// w (7d). "0" alone needs no unit.
func ParseDuration(s string) (Duration, error) {
	invalid := func() (Duration, error) {
		return 0, fmt.Errorf("invalid duration %q: write a number and a unit, such as 500ms, 90s, 1h30m, 7d or 2w", s)
	}
	rest := s
	neg := false
	if rest != "" && (rest[0] == '-' || rest[0] == '+') {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	if rest == "0" {
		return 0, nil
	}
	if rest == "" {
		return invalid()
	}
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && (isDigit(rest[i]) || rest[i] == '.') {
			i++
		}
		j := i
		for j < len(rest) && !isDigit(rest[j]) && rest[j] != '.' {
			j++
		}
		if i == 0 || j == i {
			return invalid()
		}
		num, unit := rest[:i], rest[i:j]
		rest = rest[j:]
		var part time.Duration
		var err error
		switch unit {
		case "d":
			part, err = scaledHours(num, 24)
		case "w":
			part, err = scaledHours(num, 24*7)
		default:
			part, err = time.ParseDuration(num + unit)
		}
		if err != nil || part < 0 {
			return invalid()
		}
		if total > math.MaxInt64-part {
			return 0, fmt.Errorf("invalid duration %q: longer than the longest duration (about 292 years)", s)
		}
		total += part
	}
	if neg {
		total = -total
	}
	return Duration(total), nil
}

// scaledHours returns num hours times mult, for the d and w units.
func scaledHours(num string, mult int64) (time.Duration, error) {
	h, err := time.ParseDuration(num + "h")
	if err != nil {
		return 0, err
	}
	if int64(h) > math.MaxInt64/mult {
		return 0, errors.New("overflow")
	}
	return h * time.Duration(mult), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// String prints the duration in its shortest form that ParseDuration reads back, preferring
// days when they are as short: "7d" for 168h, "30d", "36h", "1h30m", "500ms". Weeks are
// accepted on input but never printed, so 1w prints as 7d.
func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	u := uint64(d)
	sign := ""
	if d < 0 {
		u = -u // two's complement: correct even for math.MinInt64
		sign = "-"
	}
	s := clock(u)
	if u >= uint64(day) {
		withDays := strconv.FormatUint(u/uint64(day), 10) + "d" + clock(u%uint64(day))
		if len(withDays) <= len(s) {
			s = withDays
		}
	}
	return sign + s
}

// clock formats u nanoseconds as hours, minutes and Go's form of the rest, omitting zero
// parts: "36h", "1h30m", "1h5s", "1.5s"; "" for zero.
func clock(u uint64) string {
	var b strings.Builder
	if h := u / uint64(time.Hour); h > 0 {
		b.WriteString(strconv.FormatUint(h, 10))
		b.WriteByte('h')
	}
	u %= uint64(time.Hour)
	if m := u / uint64(time.Minute); m > 0 {
		b.WriteString(strconv.FormatUint(m, 10))
		b.WriteByte('m')
	}
	if u %= uint64(time.Minute); u > 0 {
		b.WriteString(time.Duration(u).String())
	}
	return b.String()
}

// MarshalText implements encoding.TextMarshaler with String's form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Decimal is a decimal amount of money kept as the exact text it was written as ("10000.00"),
// so that no binary floating point ever touches it. Its zero value is 0.
type Decimal struct {
	text string
}

// MaxDecimalFractionDigits is the most fraction digits a Decimal may have: more than any
// currency's minor units (ISO 4217 uses at most 4).
const MaxDecimalFractionDigits = 6

// maxDecimalIntDigits bounds the integer part so that Minor's arithmetic stays in int64.
const maxDecimalIntDigits = 18

// Errors returned by Decimal.Minor; callers may branch on them.
var (
	// ErrDecimalPrecision means the amount has non-zero digits beyond the minor unit.
	ErrDecimalPrecision = errors.New("more fraction digits than the unit allows")
	// ErrDecimalRange means the amount in minor units does not fit in an int64.
	ErrDecimalRange = errors.New("out of range")
)

// ParseDecimal parses a plain decimal number: an optional sign, digits, and optionally a
// point and 1 to 6 fraction digits ("10000.00", "-0.5", "3"). Exponents ("1e4"), digit
// separators, and forms such as ".5" or "5." are refused, so the text is always exact.
func ParseDecimal(s string) (Decimal, error) {
	if reason := decimalSyntax(s); reason != "" {
		return Decimal{}, fmt.Errorf("invalid decimal %q: %s", s, reason)
	}
	return Decimal{text: s}, nil
}

// decimalSyntax returns why s is not a valid decimal, or "" when it is.
func decimalSyntax(s string) string {
	body := s
	if body != "" && (body[0] == '-' || body[0] == '+') {
		body = body[1:]
	}
	intPart, frac, hasPoint := strings.Cut(body, ".")
	switch {
	case body == "":
		return "no digits"
	case strings.ContainsAny(body, "eE") && !strings.ContainsFunc(body, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r == '.' || r == 'e' || r == 'E' || r == '+' || r == '-')
	}):
		return "exponents are not allowed; write the amount in full"
	case strings.ContainsAny(body, ",_ '"):
		return "digit separators are not allowed; write 10000.00, not 10,000.00"
	case !allDigits(intPart) || hasPoint && !allDigits(frac):
		return "not a plain decimal number such as 10000.00"
	case len(intPart) > maxDecimalIntDigits:
		return fmt.Sprintf("more than %d digits before the point", maxDecimalIntDigits)
	case len(frac) > MaxDecimalFractionDigits:
		return fmt.Sprintf("more than %d fraction digits", MaxDecimalFractionDigits)
	}
	return ""
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// String returns the decimal's text exactly as it was written ("0" for the zero value).
func (d Decimal) String() string {
	if d.text == "" {
		return "0"
	}
	return d.text
}

// Sign returns -1, 0 or +1 as the decimal is negative, zero or positive.
func (d Decimal) Sign() int {
	s := d.String()
	neg := s[0] == '-'
	for i := 0; i < len(s); i++ {
		if s[i] >= '1' && s[i] <= '9' {
			if neg {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Minor converts the decimal to integer minor units of a currency with the given number of
// fraction digits, exactly: "0.10" with 2 digits is 10, "10000.00" with 2 is 1000000, and
// "1.005" with 2 fails with ErrDecimalPrecision. Fraction digits beyond digits are accepted
// when they are zeros ("1.500" with 2 is 150). A result beyond int64 fails with
// ErrDecimalRange.
func (d Decimal) Minor(digits int) (int64, error) {
	if digits < 0 || digits > 18 {
		return 0, fmt.Errorf("decimal %s: %d minor digits: %w", d, digits, ErrDecimalRange)
	}
	s := d.String() // valid: only ParseDecimal sets the text
	neg := s[0] == '-'
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) > digits {
		if strings.Trim(frac[digits:], "0") != "" {
			return 0, fmt.Errorf("decimal %s has more than %d fraction digits: %w", d, digits, ErrDecimalPrecision)
		}
		frac = frac[:digits]
	}
	var v int64
	push := func(c byte) bool {
		x := int64(c - '0')
		if v > (math.MaxInt64-x)/10 {
			return false
		}
		v = v*10 + x
		return true
	}
	for i := 0; i < len(intPart); i++ {
		if !push(intPart[i]) {
			return 0, fmt.Errorf("decimal %s in %d minor digits: %w", d, digits, ErrDecimalRange)
		}
	}
	for i := 0; i < digits; i++ {
		c := byte('0')
		if i < len(frac) {
			c = frac[i]
		}
		if !push(c) {
			return 0, fmt.Errorf("decimal %s in %d minor digits: %w", d, digits, ErrDecimalRange)
		}
	}
	if neg {
		v = -v
	}
	return v, nil
}

// MarshalText implements encoding.TextMarshaler with the decimal's exact text.
func (d Decimal) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseDecimal.
func (d *Decimal) UnmarshalText(b []byte) error {
	v, err := ParseDecimal(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
