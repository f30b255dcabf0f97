package pipeline

import (
	"errors"
	"testing"
)

func TestParseAmount(t *testing.T) {
	tests := []struct {
		in     string
		digits int
		want   int64
		err    error
	}{
		{"123.45", 2, 12345, nil},
		{"0.01", 2, 1, nil},
		{"10", 2, 1000, nil},
		{"10.5", 2, 1050, nil},
		{"10.500", 2, 1050, nil},
		{"10.501", 2, 0, ErrAmountPrecision},
		{"1000", 0, 1000, nil},
		{"1000.0", 0, 1000, nil},
		{"1000.5", 0, 0, ErrAmountPrecision},
		{"1.234", 3, 1234, nil},
		{"-5.00", 2, -500, nil},
		{"+5", 2, 500, nil},
		{"", 2, 0, ErrAmountSyntax},
		{".5", 2, 0, ErrAmountSyntax},
		{"5.", 2, 0, ErrAmountSyntax},
		{"1e3", 2, 0, ErrAmountSyntax},
		{"12,50", 2, 0, ErrAmountSyntax},
		{" 1", 2, 0, ErrAmountSyntax},
		{"0x10", 2, 0, ErrAmountSyntax},
		{"NaN", 2, 0, ErrAmountSyntax},
		{"10000000000000.01", 2, 0, ErrAmountRange},
		{"99999999999999999999999", 2, 0, ErrAmountRange},
		{"9999999999999.99", 2, 999999999999999, nil},
	}
	for _, tt := range tests {
		got, err := ParseAmount(tt.in, tt.digits)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("ParseAmount(%q, %d) = %d, %v; want %d, %v", tt.in, tt.digits, got, err, tt.want, tt.err)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	tests := []struct {
		minor  int64
		digits int
		want   string
	}{
		{12345, 2, "123.45"}, {5, 2, "0.05"}, {-5, 2, "-0.05"}, {1000, 0, "1000"}, {1, 3, "0.001"}, {0, 2, "0.00"},
	}
	for _, tt := range tests {
		if got := FormatAmount(tt.minor, tt.digits); got != tt.want {
			t.Errorf("FormatAmount(%d, %d) = %q, want %q", tt.minor, tt.digits, got, tt.want)
		}
		if back, err := ParseAmount(tt.want, tt.digits); err != nil || back != tt.minor {
			t.Errorf("round trip %q: %d, %v", tt.want, back, err)
		}
	}
}

func TestCurrencies(t *testing.T) {
	for code, want := range map[string]int{"EUR": 2, "USD": 2, "JPY": 0, "KWD": 3, "CLP": 0} {
		c, ok := LookupCurrency(code)
		if !ok || c.Digits != want {
			t.Errorf("LookupCurrency(%s) = %+v, %v; want %d digits", code, c, ok, want)
		}
	}
	if _, ok := LookupCurrency("XYZ"); ok {
		t.Error("XYZ is not a currency")
	}
}
