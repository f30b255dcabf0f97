package enrich

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// stringSet is an allow or deny list of card, merchant or device ids.
type stringSet struct{ m map[string]struct{} }

func (s *stringSet) has(k string) bool {
	if s == nil || k == "" {
		return false
	}
	_, ok := s.m[k]
	return ok
}

// readList calls fn with every entry of a list file: one entry a line with # comments, or
// the value column of a CSV, NDJSON or Parquet table.
func readList(path string, fn func(where, v string) error) error {
	f, err := formatOf(path, true)
	if err != nil {
		return err
	}
	if f != formatLines {
		return readRowsAs(path, f, []string{"value"}, func(where string, v []string) error {
			if v[0] == "" {
				return nil
			}
			return fn(where, v[0])
		})
	}
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	line := 0
	for sc.Scan() {
		line++
		v := sc.Text()
		if line == 1 {
			v = strings.TrimPrefix(v, "\ufeff")
		}
		if i := strings.IndexByte(v, '#'); i >= 0 {
			v = v[:i]
		}
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if strings.ContainsAny(v, " \t") {
			return fmt.Errorf("%s:%d: %q holds blanks: put one entry on each line", path, line, v)
		}
		if err := fn(path+":"+strconv.Itoa(line), v); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: line longer than %d bytes", path, line+1, maxLine)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func loadStringSet(path string) (*stringSet, int, error) {
	s := &stringSet{m: make(map[string]struct{})}
	err := readList(path, func(_, v string) error {
		s.m[strings.Clone(v)] = struct{}{}
		return nil
	})
	return s, len(s.m), err
}

// u128 is an IPv6 address (IPv4 as IPv4-mapped IPv6) as a 128-bit number.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func addrNum(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// ipRange is the addresses [first, last] of one or more merged prefixes.
type ipRange struct{ first, last u128 }

// mapped is the IPv4-mapped part of the IPv6 space, ::ffff:0:0/96.
var mapped = ipRange{u128{0, 0xffff << 32}, u128{0, 0xffff<<32 | 0xffffffff}}

// ipSet is a list of IP prefixes, IPv4 and IPv6, as sorted disjoint ranges: a lookup is a
// binary search, whatever the list's size. IPv4 addresses are IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d), so an IPv6 prefix that covers ::ffff:0:0/96 covers IPv4 too; their
// ranges are kept apart, as 32-bit numbers, so that the common IPv4 search is short.
type ipSet struct {
	v4First, v4Last []uint32
	v6              []ipRange
}

// hasText reports whether the address in s lies in a prefix of the set; text that is not
// an address is in no set.
func (s *ipSet) hasText(ip string) bool {
	if s == nil || ip == "" || len(s.v4First)+len(s.v6) == 0 {
		return false
	}
	if v4, ok := parseIPv4(ip); ok {
		return s.has4(v4)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return s.has(a)
}

func (s *ipSet) has(a netip.Addr) bool {
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		return s.has4(binary.BigEndian.Uint32(b[:]))
	}
	n := addrNum(a)
	r := s.v6
	lo, hi := 0, len(r)
	for lo < hi { // first range starting after n
		m := int(uint(lo+hi) >> 1)
		if n.less(r[m].first) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo > 0 && !r[lo-1].last.less(n)
}

func (s *ipSet) has4(n uint32) bool {
	f := s.v4First
	lo, hi := 0, len(f)
	for lo < hi { // first range starting after n
		m := int(uint(lo+hi) >> 1)
		if n < f[m] {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo > 0 && n <= s.v4Last[lo-1]
}

// parseIPv4 reads a dotted-quad IPv4 address in its canonical form (no leading zeros). It
// is the fast path of the common case: anything else goes to netip.ParseAddr, so it only
// needs to accept a subset of what netip accepts, with the same meaning.
func parseIPv4(s string) (uint32, bool) {
	var n uint32
	field, digits, dots := uint32(0), 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && field == 0 {
				return 0, false // a leading zero
			}
			field = field*10 + uint32(c-'0')
			digits++
			if field > 255 {
				return 0, false
			}
		case c == '.' && digits > 0 && dots < 3:
			n = n<<8 | field
			field, digits = 0, 0
			dots++
		default:
			return 0, false
		}
	}
	if dots != 3 || digits == 0 {
		return 0, false
	}
	return n<<8 | field, true
}

// prefixRange gives the addresses a prefix covers, an IPv4 prefix as IPv4-mapped IPv6.
func prefixRange(p netip.Prefix) ipRange {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	first := addrNum(p.Masked().Addr())
	last := first
	switch {
	case bits <= 64:
		last.lo = ^uint64(0)
		if bits < 64 {
			last.hi |= ^uint64(0) >> bits
		}
	default: // a shift by 64 or more gives 0 in Go: a /128 is one address
		last.lo |= ^uint64(0) >> (bits - 64)
	}
	return ipRange{first, last}
}

// parsePrefix reads a prefix (10.0.0.0/8, 2001:db8::/32) or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP prefix such as 10.0.0.0/8 or 2001:db8::/32", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or prefix", s)
	}
	return netip.PrefixFrom(a.WithZone(""), a.BitLen()), nil
}

func newIPSet(prefixes []netip.Prefix) *ipSet {
	rs := make([]ipRange, len(prefixes))
	for i, p := range prefixes {
		rs[i] = prefixRange(p)
	}
	slices.SortFunc(rs, func(a, b ipRange) int {
		if c := cmp.Compare(a.first.hi, b.first.hi); c != 0 {
			return c
		}
		return cmp.Compare(a.first.lo, b.first.lo)
	})
	merged := rs[:0]
	for _, r := range rs {
		if n := len(merged); n > 0 && !merged[n-1].last.less(r.first) {
			// Overlapping (nested or equal) prefixes become one range.
			if merged[n-1].last.less(r.last) {
				merged[n-1].last = r.last
			}
			continue
		}
		merged = append(merged, r)
	}
	s := &ipSet{}
	for _, r := range merged {
		// The part inside ::ffff:0:0/96 serves IPv4 lookups; a range wholly inside it serves
		// nothing else.
		if !r.last.less(mapped.first) && !mapped.last.less(r.first) {
			first, last := r.first, r.last
			if first.less(mapped.first) {
				first = mapped.first
			}
			if mapped.last.less(last) {
				last = mapped.last
			}
			s.v4First = append(s.v4First, uint32(first.lo))
			s.v4Last = append(s.v4Last, uint32(last.lo))
			if !r.first.less(mapped.first) && !mapped.last.less(r.last) {
				continue
			}
		}
		s.v6 = append(s.v6, r)
	}
	return s
}

func loadIPSet(path string) (*ipSet, int, error) {
	var ps []netip.Prefix
	err := readList(path, func(where, v string) error {
		p, err := parsePrefix(v)
		if err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		ps = append(ps, p)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return newIPSet(ps), len(ps), nil
}
