package pipeline

import (
	"errors"
	"math"
	"strconv"
)

// Currency is an ISO 4217 currency with the number of minor-unit digits it uses.
type Currency struct {
	Code   string
	Digits int
}

var minorPerMajor = [...]float64{1, 10, 100, 1000, 10000, 100000, 1000000}

// MinorPerMajor is 10^Digits as a float64: an amount in minor units divided by it is the
// amount in major units, for features and rule comparisons only; money arithmetic stays
// in integer minor units.
func (c Currency) MinorPerMajor() float64 {
	if c.Digits >= 0 && c.Digits < len(minorPerMajor) {
		return minorPerMajor[c.Digits]
	}
	return math.Pow10(c.Digits)
}

// currencies maps ISO 4217 alphabetic codes to their minor-unit digits. It lists the codes
// in active use; funds codes and precious metals (XAU, XDR, ...) are not payment currencies.
var currencies = map[string]int{
	"AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
	"BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BRL": 2,
	"BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2, "CHF": 2, "CLP": 0, "CNY": 2,
	"COP": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2,
	"ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2,
	"GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2,
	"IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2, "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0,
	"KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2,
	"LYD": 3, "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
	"MVR": 2, "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2,
	"NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0, "QAR": 2,
	"RON": 2, "RSD": 2, "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2,
	"SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2, "THB": 2,
	"TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0,
	"USD": 2, "UYI": 0, "UYU": 2, "UYW": 4, "UZS": 2, "VES": 2, "VND": 0, "VUV": 0, "WST": 2, "XAF": 0,
	"XCD": 2, "XOF": 0, "XPF": 0, "YER": 2, "ZAR": 2, "ZMW": 2, "ZWG": 2,
}

// LookupCurrency returns the currency for an ISO 4217 code, and false when the code is unknown.
func LookupCurrency(code string) (Currency, bool) {
	d, ok := currencies[code]
	return Currency{Code: code, Digits: d}, ok
}

// Errors returned by ParseAmount; callers branch on them to choose a dead-letter reason.
var (
	ErrAmountSyntax    = errors.New("not a decimal number")
	ErrAmountPrecision = errors.New("more fraction digits than the currency has")
	ErrAmountRange     = errors.New("out of range")
)

// maxMinor bounds amounts to 10^15 minor units, far above any payment and far below int64
// overflow, so sums of millions of amounts stay exact.
const maxMinor = 1_000_000_000_000_000

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000}

// ParseAmount parses a plain decimal ("123.45", "-3", "1e2" is rejected) into integer minor
// units of a currency with the given number of digits, exactly, without floating point.
// Trailing zero fraction digits beyond the currency's digits are accepted ("10.500" in EUR).
func ParseAmount(s string, digits int) (int64, error) {
	if len(s) == 0 {
		return 0, ErrAmountSyntax
	}
	neg := false
	i := 0
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		i++
	}
	var units int64
	intDigits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		units = units*10 + int64(s[i]-'0')
		intDigits++
		if units > maxMinor {
			return 0, ErrAmountRange
		}
	}
	frac := int64(0)
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if fracDigits < digits {
				frac = frac*10 + int64(s[i]-'0')
				fracDigits++
			} else if s[i] != '0' {
				return 0, ErrAmountPrecision
			}
		}
		if i == start {
			return 0, ErrAmountSyntax
		}
	}
	if i != len(s) || intDigits == 0 {
		return 0, ErrAmountSyntax
	}
	if digits < 0 || digits >= len(pow10) {
		return 0, ErrAmountRange
	}
	v := units*pow10[digits] + frac*pow10[digits-fracDigits]
	if v > maxMinor {
		return 0, ErrAmountRange
	}
	if neg {
		v = -v
	}
	return v, nil
}

// AppendAmount appends minor units formatted as a decimal with the currency's digits
// ("12345", 2 → "123.45").
func AppendAmount(dst []byte, minor int64, digits int) []byte {
	if minor < 0 {
		dst = append(dst, '-')
		minor = -minor
	}
	if digits <= 0 {
		return strconv.AppendInt(dst, minor, 10)
	}
	p := pow10[digits]
	dst = strconv.AppendInt(dst, minor/p, 10)
	dst = append(dst, '.')
	f := minor % p
	for d := digits - 1; d >= 0; d-- {
		dst = append(dst, byte('0'+f/pow10[d]%10))
	}
	return dst
}

// FormatAmount formats minor units as a decimal string with the currency's digits.
func FormatAmount(minor int64, digits int) string {
	return string(AppendAmount(nil, minor, digits))
}
