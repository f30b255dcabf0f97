package enrich

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func TestStringListFormats(t *testing.T) {
	dir := t.TempDir()
	lines := writeFile(t, dir, "cards.txt", "\ufeff# stolen cards, 2026-11\ncard-1\n  card-2   # reported by the bank\n\n#card-3\n")
	csv := writeFile(t, dir, "cards.csv", "source,value\nbank,card-1\n# a comment\nbank, card-2\nbank,\n")
	ndjson := writeFile(t, dir, "cards.ndjson", `{"value":"card-1"}`+"\n\n"+`{"value":"card-2","note":"x"}`+"\n"+`{"value":null}`+"\n")
	for _, p := range []string{lines, csv, ndjson} {
		s, n, err := loadStringSet(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if n != 2 || !s.has("card-1") || !s.has("card-2") || s.has("card-3") || s.has("") {
			t.Errorf("%s: %d entries %v", p, n, s.m)
		}
	}
	var none *stringSet
	if none.has("card-1") {
		t.Error("a missing list holds an entry")
	}
}

func TestListErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, content, want string
		ips                 bool
	}{
		{"blanks.txt", "card-1\ncard 2\n", "blanks.txt:2: ", false},
		{"ips.txt", "10.0.0.0/8\n# fine\n300.1.2.3\n", "ips.txt:3: \"300.1.2.3\" is not an IP address", true},
		{"prefix.txt", "10.0.0.0/33\n", "prefix.txt:1: \"10.0.0.0/33\" is not an IP prefix", true},
		{"ips.csv", "value\n10.0.0.1\nnope\n", "ips.csv:3: ", true},
		{"novalue.csv", "entry\n10.0.0.1\n", `no column "value"`, true},
		{"bad.ndjson", "{\"value\":\"10.0.0.1\"}\n{\"value\":\n", "bad.ndjson:2: not a JSON object", true},
	} {
		p := writeFile(t, dir, c.name, c.content)
		var err error
		if c.ips {
			_, _, err = loadIPSet(p)
		} else {
			_, _, err = loadStringSet(p)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestIPSetMatchesPrefixes(t *testing.T) {
	p := writeFile(t, t.TempDir(), "deny-ips.txt", `
10.0.0.0/8
192.168.1.7          # one address
203.0.113.64/26
203.0.113.0/24       # contains the line above
2001:db8::/32
2001:db8:1::/48      # inside the line above
fe80::1%eth0         # a zone is ignored
`)
	s, n, err := loadIPSet(p)
	if err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Errorf("%d entries, want 7", n)
	}
	for addr, want := range map[string]bool{
		"10.0.0.0": true, "10.255.255.255": true, "11.0.0.0": false, "9.255.255.255": false,
		"192.168.1.7": true, "192.168.1.6": false, "192.168.1.8": false,
		"203.0.113.1": true, "203.0.113.255": true, "203.0.114.0": false,
		// An IPv4-mapped IPv6 address is the IPv4 address.
		"::ffff:10.1.2.3": true,
		"2001:db8::1":     true, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff": true, "2001:db9::": false,
		"2001:db7:ffff::": false, "fe80::1": true, "fe80::2": false, "::": false, "::a00:1": false,
		"": false, "not-an-ip": false, "10.0.0.1:443": false,
	} {
		if got := s.hasText(addr); got != want {
			t.Errorf("%q: %v, want %v", addr, got, want)
		}
	}
	if got := len(s.v4First) + len(s.v6); got != 5 {
		t.Errorf("%d ranges after merging nested prefixes, want 5", got)
	}
	var none *ipSet
	if none.hasText("10.0.0.1") {
		t.Error("a missing list holds an address")
	}
}

// TestIPSetAgainstLinearScan checks the range search against netip's own Contains over
// random prefixes and addresses, IPv4 and IPv6, many of them overlapping.
func TestIPSetAgainstLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randAddr := func(v6 bool) netip.Addr {
		if !v6 {
			// Few distinct high bytes, so that prefixes nest and overlap.
			return netip.AddrFrom4([4]byte{byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		}
		var b [16]byte
		b[0], b[1] = 0x20, byte(rng.IntN(4))
		for i := 2; i < 16; i++ {
			b[i] = byte(rng.IntN(256))
		}
		return netip.AddrFrom16(b)
	}
	for round := range 20 {
		var ps []netip.Prefix
		for range 50 {
			v6 := rng.IntN(2) == 0
			a := randAddr(v6)
			bits := rng.IntN(a.BitLen() + 1)
			if round%2 == 0 {
				bits = max(bits, a.BitLen()/4)
			}
			ps = append(ps, netip.PrefixFrom(a, bits))
		}
		if round == 1 {
			ps = append(ps, netip.MustParsePrefix("::/1"))
		}
		s := newIPSet(ps)
		for range 2000 {
			a := randAddr(rng.IntN(2) == 0)
			// An IPv4 address is also the IPv4-mapped IPv6 address, which IPv6 prefixes
			// as short as ::/1 cover.
			mapped := netip.AddrFrom16(a.As16())
			want := false
			for _, p := range ps {
				if p.Contains(a) || p.Contains(mapped) {
					want = true
					break
				}
			}
			if got := s.has(a); got != want {
				t.Fatalf("round %d: %v: %v, want %v (prefixes %v)", round, a, got, want, ps)
			}
			if got := s.hasText(mapped.String()); a.Is4() && got != want {
				t.Fatalf("round %d: %v: %v, want %v (prefixes %v)", round, mapped, got, want, ps)
			}
		}
	}
}

func TestParseIPv4AgreesWithNetip(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "1.2.3.4", "255.255.255.255", "10.0.0.1", "192.168.001.1",
		"256.1.1.1", "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", "01.2.3.4", "1.2.3.00", "::1", "a.b.c.d", ""} {
		checkParseIPv4(t, s)
	}
}

func FuzzParseIPv4(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "255.255.255.255", "01.2.3.4", "1.2.3.256", "::ffff:1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(checkParseIPv4)
}

// checkParseIPv4 holds the fast path to netip: whatever it accepts, netip accepts as the
// same IPv4 address.
func checkParseIPv4(t *testing.T, s string) {
	n, ok := parseIPv4(s)
	if !ok {
		return
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || a.As4() != [4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} {
		t.Errorf("parseIPv4(%q) = %x; netip: %v, %v", s, n, a, err)
	}
}
