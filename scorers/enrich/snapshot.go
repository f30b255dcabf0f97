package enrich

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// snapshotVersion is the first byte of a snapshot; Restore refuses any other.
const snapshotVersion = 1

// Snapshot layout (integers are varints unless sized):
//
//	version byte | maxTS | nextExpire | uvarint cards | card...
//	card: uvarint len(id) | id | seen | flags byte (1 position, 2 country)
//	      [position: seen-geoTS | lat radians float64 LE | lon radians float64 LE]
//	      [country: uint16 LE | seen-countryTS]
//	      devices byte | device hash uint64 LE...
//
// Cards are written in id order, so equal states give equal bytes.
const (
	flagGeo     = 1
	flagCountry = 2
)

// Snapshot encodes the partition's card state for a checkpoint.
func (s *Scorer) Snapshot() ([]byte, error) {
	b := make([]byte, 0, s.lastSnap+s.lastSnap/8+64)
	b = append(b, snapshotVersion)
	b = binary.AppendVarint(b, s.maxTS)
	b = binary.AppendVarint(b, s.nextExpire)
	order := s.sorted(func(a, b *card) int { return strings.Compare(a.key, b.key) })
	b = binary.AppendUvarint(b, uint64(len(order)))
	for _, slot := range order {
		c := &s.cards[slot]
		b = binary.AppendUvarint(b, uint64(len(c.key)))
		b = append(b, c.key...)
		b = binary.AppendVarint(b, c.seen)
		var flags byte
		if c.hasGeo {
			flags |= flagGeo
		}
		if c.country != 0 {
			flags |= flagCountry
		}
		b = append(b, flags)
		if c.hasGeo {
			b = binary.AppendVarint(b, c.seen-c.geoTS)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.pos.lat))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.pos.lon))
		}
		if c.country != 0 {
			b = binary.LittleEndian.AppendUint16(b, c.country)
			b = binary.AppendVarint(b, c.seen-c.countryTS)
		}
		b = append(b, c.nDev)
		for _, d := range c.devs[:c.nDev] {
			b = binary.LittleEndian.AppendUint64(b, d)
		}
	}
	s.lastSnap = len(b)
	return b, nil
}

// errCorrupt is wrapped by every error of Restore.
var errCorrupt = errors.New("enrich: corrupt snapshot")

// snapReader reads a snapshot, remembering the first error.
type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errCorrupt, what)
		r.b = nil
	}
}

func (r *snapReader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *snapReader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *snapReader) bytes(n uint64, what string) []byte {
	if uint64(len(r.b)) < n {
		r.fail(what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// Restore replaces the partition's card state with a snapshot's.
func (s *Scorer) Restore(data []byte) error {
	if len(data) == 0 || data[0] != snapshotVersion {
		if len(data) == 0 {
			return fmt.Errorf("%w: empty", errCorrupt)
		}
		return fmt.Errorf("enrich: snapshot version %d, this build reads version %d: restore from a checkpoint of a matching build", data[0], snapshotVersion)
	}
	r := &snapReader{b: data[1:]}
	maxTS := r.varint("newest event time")
	next := r.varint("next sweep time")
	n := r.uvarint("card count")
	if n > uint64(len(r.b))/4 { // a card takes at least four bytes
		r.fail("card count larger than the snapshot")
	}
	if r.err != nil {
		return r.err
	}
	cards := make([]card, 0, n)
	index := make(map[string]int32, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		var c card
		c.key = string(r.bytes(r.uvarint("card id length"), "card id"))
		c.seen = r.varint("last seen")
		flags := r.bytes(1, "flags")
		if r.err != nil {
			break
		}
		if flags[0]&flagGeo != 0 {
			c.geoTS = c.seen - r.varint("position time")
			ll := r.bytes(16, "position")
			if r.err != nil {
				break
			}
			lat := math.Float64frombits(binary.LittleEndian.Uint64(ll))
			lon := math.Float64frombits(binary.LittleEndian.Uint64(ll[8:]))
			if !(math.Abs(lat) <= math.Pi/2 && math.Abs(lon) <= math.Pi) {
				r.fail("position out of range")
				break
			}
			c.pos = point{lat: lat, lon: lon, cosLat: math.Cos(lat)}
			c.hasGeo = true
		}
		if flags[0]&flagCountry != 0 {
			cc := r.bytes(2, "country")
			if r.err != nil {
				break
			}
			c.country = binary.LittleEndian.Uint16(cc)
			if _, ok := countryCode(string([]byte{byte(c.country >> 8), byte(c.country)})); !ok {
				r.fail("bad country code")
				break
			}
			c.countryTS = c.seen - r.varint("country time")
		}
		nd := r.bytes(1, "device count")
		if r.err != nil {
			break
		}
		if nd[0] > DeviceMemory {
			r.fail("too many devices")
			break
		}
		c.nDev = nd[0]
		devs := r.bytes(8*uint64(c.nDev), "devices")
		if r.err != nil {
			break
		}
		for j := range int(c.nDev) {
			c.devs[j] = binary.LittleEndian.Uint64(devs[8*j:])
		}
		if _, dup := index[c.key]; dup {
			r.fail("card " + c.key + " twice")
			break
		}
		index[c.key] = int32(len(cards))
		cards = append(cards, c)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return r.err
	}
	s.cards, s.index, s.free = cards, index, nil
	s.maxTS, s.nextExpire = maxTS, next
	s.nCards.Store(int64(len(index)))
	return nil
}
