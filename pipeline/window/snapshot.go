package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"
)

// Snapshot format, version 1 (all integers varints unless said otherwise):
//
//	magic "FPWS" | version byte 1
//	config: uvarint n, n × uvarint duration ms, uvarint max events, uvarint ttl ms
//	uvarint key count, then per key in ascending byte order:
//	  uvarint len, key bytes
//	  uvarint exact count (>= 1), per event: TS (varint for the first, then uvarint delta
//	    from the previous one), varint amount, uvarint distinct
//	  uvarint bucket count, per bucket: first (varint for the first bucket, then uvarint
//	    delta from the previous bucket's last), uvarint last-first, uvarint count, varint
//	    sum, varint max
//	CRC32-C (Castagnoli) of everything before it, 4 bytes little-endian
const (
	snapshotMagic   = "FPWS"
	snapshotVersion = 1
)

// ErrCorrupt is wrapped by UnmarshalBinary's errors for input that is not a whole, intact
// snapshot of a supported version.
var ErrCorrupt = errors.New("window: corrupt snapshot")

// ErrConfigMismatch is wrapped by UnmarshalBinary's error when a configured Store is given
// a snapshot taken under a different Config.
var ErrConfigMismatch = errors.New("window: snapshot config differs from the store's")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary returns a snapshot of the whole store (configuration and every key's
// state) for a checkpoint. Equal states give equal bytes.
func (s *Store) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(nil)
}

// AppendBinary appends the snapshot that MarshalBinary returns to b.
func (s *Store) AppendBinary(b []byte) ([]byte, error) {
	s.ensure()
	start := len(b)
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	b = binary.AppendUvarint(b, uint64(len(s.cfg.Durations)))
	for _, d := range s.cfg.Durations {
		b = binary.AppendUvarint(b, uint64(d.Milliseconds()))
	}
	b = binary.AppendUvarint(b, uint64(s.cfg.MaxEvents))
	b = binary.AppendUvarint(b, uint64(s.cfg.TTL.Milliseconds()))

	keys := make([]string, 0, len(s.keys))
	for k := range s.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		sr := s.keys[k]
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(sr.ev.n))
		for i := 0; i < sr.ev.n; i++ {
			e := sr.ev.at(i)
			if i == 0 {
				b = binary.AppendVarint(b, e.TS)
			} else {
				b = binary.AppendUvarint(b, uint64(e.TS-sr.ev.at(i-1).TS))
			}
			b = binary.AppendVarint(b, e.Amount)
			b = binary.AppendUvarint(b, e.Distinct)
		}
		b = binary.AppendUvarint(b, uint64(sr.bk.n()))
		for i := 0; i < sr.bk.n(); i++ {
			bk := sr.bk.at(i)
			if i == 0 {
				b = binary.AppendVarint(b, bk.first)
			} else {
				b = binary.AppendUvarint(b, uint64(bk.first-sr.bk.at(i-1).last))
			}
			b = binary.AppendUvarint(b, uint64(bk.last-bk.first))
			b = binary.AppendUvarint(b, uint64(bk.count))
			b = binary.AppendVarint(b, bk.sum)
			b = binary.AppendVarint(b, bk.max)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

// UnmarshalBinary replaces the store's state with the snapshot in data. A zero Store takes
// the snapshot's Config; a Store that already has one (from NewStore, first use or an
// earlier UnmarshalBinary) accepts only a snapshot taken under an equal Config, else the
// error wraps ErrConfigMismatch. Input that is truncated, corrupt, of another version or
// breaks the store's invariants gives an error wrapping ErrCorrupt. On error the store is
// unchanged.
func (s *Store) UnmarshalBinary(data []byte) error {
	const hdr = len(snapshotMagic) + 1
	if len(data) < hdr+4 {
		return fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(data))
	}
	if string(data[:len(snapshotMagic)]) != snapshotMagic {
		return fmt.Errorf("%w: bad magic %q", ErrCorrupt, data[:len(snapshotMagic)])
	}
	if v := data[len(snapshotMagic)]; v != snapshotVersion {
		return fmt.Errorf("%w: unsupported version %d", ErrCorrupt, v)
	}
	body := data[:len(data)-4]
	if want, got := binary.LittleEndian.Uint32(data[len(data)-4:]), crc32.Checksum(body, castagnoli); want != got {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	d := decoder{b: body[hdr:], off: hdr}
	ns, err := d.decode()
	if err != nil {
		return err
	}
	if s.keys != nil && !s.cfg.equal(ns.cfg) {
		return fmt.Errorf("%w: snapshot has %v, store has %v", ErrConfigMismatch, ns.cfg, s.cfg)
	}
	free := s.free
	*s = *ns
	s.free = free
	return nil
}

// decoder reads a snapshot body; off is the offset of b in the whole input, for errors.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrCorrupt, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad or truncated %s", what)
		return 0
	}
	d.b, d.off = d.b[n:], d.off+n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad or truncated %s", what)
		return 0
	}
	d.b, d.off = d.b[n:], d.off+n
	return v
}

// count reads a count that must be in [lo, hi] and, each item taking at least minBytes,
// fit in what is left of the input.
func (d *decoder) count(what string, lo, hi uint64, minBytes int) int {
	v := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if v < lo || v > hi || v > uint64(len(d.b)/minBytes) {
		d.fail("%s %d out of range", what, v)
		return 0
	}
	return int(v)
}

// delta returns a+u, failing if it overflows int64.
func (d *decoder) delta(a int64, u uint64, what string) int64 {
	if room := uint64(math.MaxInt64) - uint64(a); u > room { // room is MaxInt64-a, exactly
		d.fail("%s overflows", what)
		return 0
	}
	return a + int64(u)
}

// decode reads a whole snapshot body into a new Store.
func (d *decoder) decode() (*Store, error) {
	var cfg Config
	n := d.count("duration count", 1, MaxDurations, 1)
	for range n {
		ms := d.uvarint("duration")
		if ms == 0 || ms > uint64(maxDurationMs) {
			d.fail("duration %d ms out of range", ms)
		}
		cfg.Durations = append(cfg.Durations, time.Duration(ms)*time.Millisecond)
	}
	maxEv := d.uvarint("max events")
	if maxEv == 0 || maxEv > MaxMaxEvents {
		d.fail("max events %d out of range", maxEv)
	}
	cfg.MaxEvents = int(maxEv)
	ttl := d.uvarint("ttl")
	if ttl == 0 || ttl > uint64(maxDurationMs) {
		d.fail("ttl %d ms out of range", ttl)
	}
	cfg.TTL = time.Duration(ttl) * time.Millisecond
	if d.err != nil {
		return nil, d.err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	s := &Store{}
	s.init(cfg)

	// A key takes at least 3 bytes (length, exact count, bucket count) plus 3 per event.
	nk := d.count("key count", 0, math.MaxInt, 6)
	if d.err == nil {
		s.keys = make(map[string]*series, nk)
	}
	prevKey := ""
	for i := 0; i < nk && d.err == nil; i++ {
		kl := d.count("key length", 0, math.MaxInt, 1)
		if d.err != nil {
			break
		}
		key := string(d.b[:kl])
		d.b, d.off = d.b[kl:], d.off+kl
		if i > 0 && key <= prevKey {
			d.fail("keys out of order")
			break
		}
		prevKey = key
		sr := d.series(s)
		if d.err != nil {
			break
		}
		s.add(s.index.Hash(key), key, sr)
		s.minNewest = min(s.minNewest, sr.newest())
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

// series reads one key's state, checking the invariants the store relies on.
func (d *decoder) series(s *Store) *series {
	sr := &series{}
	ne := d.count("event count", 1, uint64(s.maxEvents), 3)
	if d.err != nil {
		return nil
	}
	sr.ev = ring[Event]{buf: make([]Event, ne), n: ne}
	var ts int64
	for i := range ne {
		if i == 0 {
			ts = d.varint("event time")
		} else {
			ts = d.delta(ts, d.uvarint("event time delta"), "event time")
		}
		sr.ev.buf[i] = Event{TS: ts, Amount: d.varint("amount"), Distinct: d.uvarint("distinct")}
	}
	nb := d.count("bucket count", 0, uint64(s.maxBuckets), 5)
	if d.err != nil {
		return nil
	}
	if nb > 0 {
		if ne != s.maxEvents { // events are folded only out of a full buffer
			d.fail("buckets with %d of %d exact events", ne, s.maxEvents)
			return nil
		}
		sr.bk.r = ring[bucket]{buf: make([]bucket, nb), n: nb}
	}
	var last int64
	for i := range nb {
		var b bucket
		if i == 0 {
			b.first = d.varint("bucket first")
		} else {
			b.first = d.delta(last, d.uvarint("bucket gap"), "bucket first")
			if d.err == nil && hourOf(b.first) <= hourOf(last) {
				d.fail("buckets out of order")
			}
		}
		b.last = d.delta(b.first, d.uvarint("bucket span"), "bucket last")
		if d.err == nil && hourOf(b.last) != hourOf(b.first) {
			d.fail("bucket spans more than one hour")
		}
		c := d.uvarint("bucket count")
		if d.err == nil && (c == 0 || c > math.MaxInt64) {
			d.fail("bucket count %d out of range", c)
		}
		b.count = int64(c)
		b.sum = d.varint("bucket sum")
		b.max = d.varint("bucket max")
		last = b.last
		sr.bk.r.buf[i] = b
	}
	if d.err == nil && nb > 0 && last > sr.ev.buf[0].TS {
		d.fail("bucketed event later than an exact one")
	}
	sr.bk.rebuild(s.maxBuckets)
	sr.markLater(&s.set)
	return sr
}
