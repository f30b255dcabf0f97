package enrich

import (
	"path/filepath"
	"testing"
)

// FuzzLoadFiles feeds arbitrary bytes to every reference file parser in every text format:
// each must return data or an error, never panic.
func FuzzLoadFiles(f *testing.F) {
	f.Add([]byte(customersCSV))
	f.Add([]byte(customersNDJSON))
	f.Add([]byte("merchant_id,country,mcc,risk\nm-1,FR,5411,0.2\n"))
	f.Add([]byte("country,risk\nFR,0.1\n"))
	f.Add([]byte("value\n10.0.0.0/8\n"))
	f.Add([]byte("10.0.0.0/8 # comment\n2001:db8::/32\n"))
	f.Add([]byte(`{"value":"::ffff:1.2.3.4/120"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		for _, name := range []string{"f.csv", "f.ndjson", "f.txt"} {
			p := writeFile(t, dir, name, string(data))
			if filepath.Ext(name) != ".txt" {
				_, _, _ = loadCustomers(p)
				_, _, _ = loadMerchants(p)
				_, _, _ = loadCountries(p)
			}
			_, _, _ = loadStringSet(p)
			if s, _, err := loadIPSet(p); err == nil {
				s.hasText("10.1.2.3")
				s.hasText("2001:db8::1")
			}
		}
	})
}
