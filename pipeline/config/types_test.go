package config

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"500ms", 500 * time.Millisecond},
		{"90s", 90 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"1d", 24 * time.Hour},
		{"7d", 168 * time.Hour},
		{"30d", 720 * time.Hour},
		{"1w", 168 * time.Hour},
		{"2w", 336 * time.Hour},
		{"1w2d", 216 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1.5d", 36 * time.Hour},
		{"0.5w", 84 * time.Hour},
		{"1h5s", time.Hour + 5*time.Second},
		{"1.5µs", 1500 * time.Nanosecond},
		{"2us", 2 * time.Microsecond},
		{"-1h", -time.Hour},
		{"+2h", 2 * time.Hour},
		{"-7d", -168 * time.Hour},
		{"0", 0},
		{"0s", 0},
		{"0d", 0},
		{"106751d", 106751 * 24 * time.Hour},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil || time.Duration(got) != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, time.Duration(got), err, tt.want)
		}
	}
}

func TestParseDurationErrors(t *testing.T) {
	for _, in := range []string{
		"", "-", "+", "7", "d", "h1", "1x", "1D", "1h-5m", "2 days", " 1h", "1h ", "1.2.3h", ".d", "1..5d",
		"9999999999999999999d", "106752d", "15251w", "106751d24h", "1e3s", "--1h",
	} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, time.Duration(got))
		}
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{168 * time.Hour, "7d"},
		{720 * time.Hour, "30d"},
		{24 * time.Hour, "1d"},
		{48 * time.Hour, "2d"},
		{336 * time.Hour, "14d"},
		{36 * time.Hour, "36h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour, "1h"},
		{time.Minute, "1m"},
		{time.Hour + 5*time.Second, "1h5s"},
		{24*time.Hour + time.Millisecond, "1d1ms"},
		{500 * time.Millisecond, "500ms"},
		{1500 * time.Millisecond, "1.5s"},
		{time.Nanosecond, "1ns"},
		{-168 * time.Hour, "-7d"},
		{-90 * time.Minute, "-1h30m"},
	}
	for _, tt := range tests {
		if got := Duration(tt.in).String(); got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDurationRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := []Duration{0, 1, -1, math.MaxInt64, math.MinInt64 + 1, Duration(week), Duration(day - 1)}
	for range 2000 {
		v := Duration(r.Int64())
		if r.IntN(2) == 0 {
			v = -v
		}
		// Also values made of whole units, which print in the short forms.
		values = append(values, v, Duration(r.Int64N(1000))*Duration(day), Duration(r.Int64N(1000))*Duration(time.Minute))
	}
	for _, v := range values {
		s := v.String()
		back, err := ParseDuration(s)
		if err != nil || back != v {
			t.Fatalf("ParseDuration(%q) = %d, %v; want %d", s, back, err, v)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("2w")); err != nil || d != Duration(2*week) {
		t.Fatalf("UnmarshalText(2w) = %v, %v", d, err)
	}
	if b, _ := d.MarshalText(); string(b) != "14d" {
		t.Errorf("MarshalText = %q, want 14d", b)
	}
	if err := d.UnmarshalText([]byte("2 weeks")); err == nil {
		t.Error("UnmarshalText(2 weeks): no error")
	}
}

func mustDecimal(t testing.TB, s string) Decimal {
	t.Helper()
	d, err := ParseDecimal(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParseDecimal(t *testing.T) {
	for _, in := range []string{"0", "10000.00", "0.10", "-3", "+3", "1.123456", "007", "999999999999999999"} {
		d, err := ParseDecimal(in)
		if err != nil || d.String() != in {
			t.Errorf("ParseDecimal(%q) = %v, %v; want the same text back", in, d, err)
		}
	}
	for _, in := range []string{
		"", "-", "1e4", "1E4", "1.5e-3", ".5", "5.", "1.1234567", "10,000.00", "1_000", "1 000",
		"0x10", "inf", ".nan", "NaN", " 1", "1 ", "--1", "1.2.3", "1000000000000000000", "½",
	} {
		if d, err := ParseDecimal(in); err == nil {
			t.Errorf("ParseDecimal(%q) = %v, want an error", in, d)
		}
	}
}

func TestDecimalMinor(t *testing.T) {
	tests := []struct {
		in      string
		digits  int
		want    int64
		wantErr error
	}{
		{"0.10", 2, 10, nil},
		{"0.1", 2, 10, nil},
		{"10000.00", 2, 1000000, nil},
		{"10000", 0, 10000, nil},
		{"1.500", 2, 150, nil},
		{"3", 3, 3000, nil},
		{"-0.01", 2, -1, nil},
		{"0.000001", 6, 1, nil},
		{"9007199254740993", 0, 9007199254740993, nil}, // 2^53+1: not a float64
		{"92233720368547758.07", 2, math.MaxInt64, nil},
		{"1.005", 2, 0, ErrDecimalPrecision},
		{"1.5", 0, 0, ErrDecimalPrecision},
		{"0.000001", 5, 0, ErrDecimalPrecision},
		{"92233720368547758.08", 2, 0, ErrDecimalRange},
		{"999999999999999999", 2, 0, ErrDecimalRange},
		{"1", -1, 0, ErrDecimalRange},
		{"1", 19, 0, ErrDecimalRange},
	}
	for _, tt := range tests {
		got, err := mustDecimal(t, tt.in).Minor(tt.digits)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("Decimal(%s).Minor(%d) = %d, %v; want %d, %v", tt.in, tt.digits, got, err, tt.want, tt.wantErr)
		}
	}
	var zero Decimal
	if got, err := zero.Minor(2); got != 0 || err != nil || zero.String() != "0" || zero.Sign() != 0 {
		t.Errorf("zero Decimal: Minor(2) = %d, %v; String %q", got, err, zero.String())
	}
}

func TestDecimalSign(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "-0.00": 0, "+0": 0, "0.01": 1, "-0.01": -1, "12": 1, "-7": -1} {
		if got := mustDecimal(t, in).Sign(); got != want {
			t.Errorf("Decimal(%s).Sign() = %d, want %d", in, got, want)
		}
	}
}

func TestDecimalText(t *testing.T) {
	var d Decimal
	if err := d.UnmarshalText([]byte("12.50")); err != nil || d.String() != "12.50" {
		t.Fatalf("UnmarshalText(12.50) = %v, %v", d, err)
	}
	if b, _ := d.MarshalText(); string(b) != "12.50" {
		t.Errorf("MarshalText = %q", b)
	}
	if err := d.UnmarshalText([]byte("1e2")); err == nil || d.String() != "12.50" {
		t.Errorf("UnmarshalText(1e2) = %v, left %v", err, d)
	}
}
