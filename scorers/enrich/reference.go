package enrich

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// customer is one row of the customers table, with its home ready for distances.
type customer struct {
	home    point
	hasHome bool
	country uint16 // home country, packed by countryCode; 0 unknown
}

// customerTable maps customer_id to the customer.
type customerTable struct{ rows map[string]customer }

// merchant is one row of the merchants table.
type merchant struct {
	risk    float64 // 0 unknown
	country uint16  // 0 unknown
}

// merchantTable maps merchant_id to the merchant.
type merchantTable struct{ rows map[string]merchant }

// countryTable holds the risk of every country, indexed by countryIndex: an array, not a
// map, as there are only 26×26 codes.
type countryTable struct{ risk [26 * 26]float64 }

// countryIndex is the place of a packed country code in countryTable.
func countryIndex(c uint16) int { return int(c>>8-'A')*26 + int(c&0xff-'A') }

// Columns of each table, in the order the parsers receive them.
var (
	customerColumns = []string{"customer_id", "home_lat", "home_lon", "home_country"}
	merchantColumns = []string{"merchant_id", "country", "mcc", "risk"}
	countryColumns  = []string{"country", "risk"}
)

// dupCheck reports a key seen twice, naming where it was first.
type dupCheck map[string]string

func (d dupCheck) check(where, column, key string) error {
	if key == "" {
		return fmt.Errorf("%s: empty %s: every row needs one", where, column)
	}
	if first, ok := d[key]; ok {
		return fmt.Errorf("%s: %s %q appears twice (first at %s): keep one row per %s", where, column, key, first, column)
	}
	d[key] = where
	return nil
}

func loadCustomers(path string) (*customerTable, int, error) {
	t := &customerTable{rows: make(map[string]customer)}
	seen := dupCheck{}
	err := readRows(path, customerColumns, func(where string, v []string) error {
		if err := seen.check(where, "customer_id", v[0]); err != nil {
			return err
		}
		var c customer
		switch {
		case v[1] == "" && v[2] == "":
		case v[1] == "" || v[2] == "":
			return fmt.Errorf("%s: customer %q has only one of home_lat and home_lon: give both or neither", where, v[0])
		default:
			lat, err := parseCoord(where, "home_lat", v[1], 90)
			if err != nil {
				return err
			}
			lon, err := parseCoord(where, "home_lon", v[2], 180)
			if err != nil {
				return err
			}
			c.home, c.hasHome = newPoint(lat, lon), true
		}
		cc, err := parseCountry(where, "home_country", v[3])
		if err != nil {
			return err
		}
		c.country = cc
		t.rows[strings.Clone(v[0])] = c
		return nil
	})
	return t, len(t.rows), err
}

func loadMerchants(path string) (*merchantTable, int, error) {
	t := &merchantTable{rows: make(map[string]merchant)}
	seen := dupCheck{}
	err := readRows(path, merchantColumns, func(where string, v []string) error {
		if err := seen.check(where, "merchant_id", v[0]); err != nil {
			return err
		}
		var m merchant
		var err error
		if m.country, err = parseCountry(where, "country", v[1]); err != nil {
			return err
		}
		if v[2] != "" {
			if len(v[2]) != 4 || strings.Trim(v[2], "0123456789") != "" {
				return fmt.Errorf("%s: mcc %q is not a 4-digit merchant category code", where, v[2])
			}
		}
		if m.risk, err = parseRisk(where, v[3]); err != nil {
			return err
		}
		t.rows[strings.Clone(v[0])] = m
		return nil
	})
	return t, len(t.rows), err
}

func loadCountries(path string) (*countryTable, int, error) {
	t := &countryTable{}
	n := 0
	seen := dupCheck{}
	err := readRows(path, countryColumns, func(where string, v []string) error {
		c := strings.ToUpper(v[0])
		if err := seen.check(where, "country", c); err != nil {
			return err
		}
		cc, err := parseCountry(where, "country", c)
		if err != nil {
			return err
		}
		r, err := parseRisk(where, v[1])
		if err != nil {
			return err
		}
		t.risk[countryIndex(cc)] = r
		n++
		return nil
	})
	return t, n, err
}

func parseCoord(where, column, s string, limit float64) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < -limit || f > limit {
		return 0, fmt.Errorf("%s: %s %q is not a number in [%g, %g]", where, column, s, -limit, limit)
	}
	return f, nil
}

// parseRisk reads a risk in [0, 1]; empty is unknown, 0.
func parseRisk(where, s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return 0, fmt.Errorf("%s: risk %q is not a number in [0, 1]", where, s)
	}
	return f, nil
}

// parseCountry reads an ISO 3166-1 alpha-2 code (either case); empty is unknown, 0.
func parseCountry(where, column, s string) (uint16, error) {
	if s == "" {
		return 0, nil
	}
	c, ok := countryCode(strings.ToUpper(s))
	if !ok {
		return 0, fmt.Errorf("%s: %s %q is not an ISO 3166-1 alpha-2 code such as DE or US", where, column, s)
	}
	return c, nil
}

// countryCode packs a two-letter upper-case country code into 16 bits; 0 is no country.
func countryCode(s string) (uint16, bool) {
	if len(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' {
		return 0, false
	}
	return uint16(s[0])<<8 | uint16(s[1]), true
}
