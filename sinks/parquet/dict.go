package parquet

import (
	"fmt"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	pq "github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/metadata"
)

// Arrow's dictionary encoder for byte arrays hashes every value through an interface (one
// allocation a value) into its memo table, which made it the largest cost of the sink. The
// string columns are therefore dictionary-encoded here: a Go map per column chunk gives each
// value its index as the row is decoded from the spool (while its bytes are still in the
// cache), known values go to the encoder as indices (PutIndices, as pqarrow does for Arrow
// dictionary arrays), and only a value seen for the first time in the column chunk goes
// through the encoder's own PutByteArray, which appends it to the encoder's dictionary at the
// same index (memo tables number values in insertion order; this is checked on every insert).
// The levels, page cuts, page statistics and the fallback to plain encoding when the
// dictionary outgrows its page limit stay the column writer's: values are handed over one
// write batch at a time, right before WriteBatch writes that batch's levels, so a page always
// holds the values of the levels it holds.

// writerDict makes the string columns go through the column writer's own dictionary
// encoder instead, as they did before: the tests compare the two outputs byte for byte.
var writerDict = false

// byteArrayDictEncoder is the part of arrow's dictionary encoder for byte arrays used here.
type byteArrayDictEncoder interface {
	PutByteArray(pq.ByteArray)
	PutIndices(arrow.Array) error
	NumEntries() int
}

// dictColumn mirrors the dictionary of one string column's current column chunk. Its ids
// are assigned by add as rows are decoded, and handed to the column writer by write; reset
// starts the next column chunk (row group).
type dictColumn struct {
	ids       map[string]int32 // value → dictionary index; keys point into arena
	vals      []pq.ByteArray   // by index: the value, in arena
	stamp     []uint32         // by index: the last write batch the value was seen in
	batch     uint32
	arena     []byte
	codes     []int32                          // indices of the chunk's values, in order
	cw        *file.ByteArrayColumnChunkWriter // the writer of the column chunk
	inserted  int                              // values in the writer's dictionary: ids below
	plain     bool                             // the writer fell back to plain encoding
	idx       []int32                          // indices not yet handed to the encoder
	seen      []pq.ByteArray                   // distinct values of the batch, for the statistics
	levels    []int16                          // stand-in definition levels of a required column
	plainVals []pq.ByteArray                   // copies of the values of a batch written in plain
	size      *int                             // values of the previous column chunk, for sizing
	enum      [8]int32                         // by enum number: 1 + its dictionary index, 0 if not yet seen
}

// dictSizes holds the number of distinct values in the last column chunk of each dictionary
// column, kept from file to file to size the next chunk's dictionary from the start.
type dictSizes [numFixed]int

const arenaBytes = 64 << 10

// reset starts a new column chunk.
func (d *dictColumn) reset() {
	if !d.plain && len(d.vals) > 0 {
		*d.size = len(d.vals)
	}
	n := min(*d.size, 1<<17)
	d.ids = make(map[string]int32, n)
	clear(d.vals)
	d.vals = slices.Grow(d.vals[:0], n)
	d.stamp = slices.Grow(d.stamp[:0], n)
	d.batch = 0
	d.arena = nil
	d.codes = d.codes[:0]
	d.cw = nil
	d.inserted = 0
	d.plain = false
	d.idx = d.idx[:0]
	clear(d.enum[:])
}

// add gives the next value of the column its dictionary index.
func (d *dictColumn) add(v []byte) {
	if d.plain {
		return
	}
	// Runs of one value (a model version, a rule set, a country) skip the map.
	if n := len(d.codes); n > 0 && string(d.vals[d.codes[n-1]]) == string(v) {
		d.codes = append(d.codes, d.codes[n-1])
		return
	}
	id, ok := d.ids[string(v)]
	if !ok {
		id = int32(len(d.vals))
		c := d.intern(v)
		d.vals = append(d.vals, c)
		d.stamp = append(d.stamp, 0)
		d.ids[unsafe.String(unsafe.SliceData(c), len(c))] = id
	}
	d.codes = append(d.codes, id)
}

// minProfileValues is the fewest values of a column chunk's first chunk of rows that
// maybeFallBack judges a dictionary by.
const minProfileValues = 1024

// maybeFallBack switches the column chunk to plain encoding after its first chunk of rows,
// vals, when the dictionary does not pay for itself there: when the dictionary page plus
// the bit-packed indices of those rows would take as many bytes as the plain values (the
// rule parquet-mr applies after a column chunk's first page). On columns of nearly unique
// values (card and account ids in an hour of traffic) the dictionary would otherwise grow
// to its page limit, costing hashing on every value, before the writer fell back anyway.
// The decision depends on the rows only, so the same rows give the same file.
func (d *dictColumn) maybeFallBack(cw *file.ByteArrayColumnChunkWriter, vals []pq.ByteArray) {
	if d.plain || len(vals) < minProfileValues || len(d.vals) == 0 {
		return
	}
	raw := 0
	for _, v := range vals {
		raw += 4 + len(v)
	}
	dict := 0
	for _, v := range d.vals {
		dict += 4 + len(v)
	}
	indices := (len(vals)*bits.Len(uint(len(d.vals)-1)) + 7) / 8
	if dict+indices < raw {
		return
	}
	cw.FallbackToPlain()
	d.fellBack()
}

// addEnum gives the next value of an enum column its dictionary index: v is the name of
// enum number k, and the index of a number already seen skips the map.
func (d *dictColumn) addEnum(k int, v []byte) {
	if d.plain {
		return
	}
	if k < len(d.enum) && d.enum[k] > 0 {
		d.codes = append(d.codes, d.enum[k]-1)
		return
	}
	d.add(v)
	if k < len(d.enum) {
		d.enum[k] = d.codes[len(d.codes)-1] + 1
	}
}

// fellBack drops the dictionary once the writer encodes the column chunk plainly.
func (d *dictColumn) fellBack() {
	d.plain = true
	*d.size = len(d.vals)
	d.ids, d.arena = nil, nil
	clear(d.vals)
	d.vals = d.vals[:0]
	d.stamp = d.stamp[:0]
}

// write writes the values and levels of the chunk's rows: vals holds the non-null values
// (those add saw, in the same order); def and rep are nil for a required, non-repeated
// column.
func (d *dictColumn) write(cw *file.ByteArrayColumnChunkWriter, vals []pq.ByteArray, def, rep []int16) error {
	if d.cw == nil {
		d.cw = cw
	} else if d.cw != cw {
		return fmt.Errorf("dictionary state of another column chunk")
	}
	defer func() { d.codes = d.codes[:0] }()
	if !d.plain && len(d.codes) != len(vals) {
		return fmt.Errorf("%d dictionary indices for %d values", len(d.codes), len(vals))
	}
	if rep != nil && cw.Properties().DataPageVersion() != pq.DataPageV1 {
		// Version 2 pages cut repeated columns at row boundaries, not every write batch.
		return fmt.Errorf("dictionary encoding of a repeated column needs version 1 data pages")
	}
	maxDef := cw.Descr().MaxDefinitionLevel()
	batch := int(cw.Properties().WriteBatchSize())
	nlev := len(vals)
	if def != nil {
		nlev = len(def)
	}
	for lo, vi := 0, 0; lo < nlev; lo += batch {
		hi := min(lo+batch, nlev)
		n := hi - lo
		var bdef, brep []int16
		if def != nil {
			bdef = def[lo:hi]
			if maxDef > 0 {
				n = 0
				for _, l := range bdef {
					if l == maxDef {
						n++
					}
				}
			}
		}
		if rep != nil {
			brep = rep[lo:hi]
		}
		bvals := vals[vi : vi+n]
		vi += n
		enc, ok := cw.CurrentEncoder().(byteArrayDictEncoder)
		if d.plain || !ok || cw.CurrentEncoder().Encoding() != pq.Encodings.PlainDict {
			if !d.plain {
				d.fellBack()
			}
			if _, err := cw.WriteBatch(d.copied(bvals), bdef, brep); err != nil {
				return err
			}
			continue
		}
		if err := d.put(enc, d.codes[vi-n:vi], cw.PageStatistics()); err != nil {
			return err
		}
		if bdef == nil {
			// WriteBatch counts levels from the definition levels when it is given no
			// values; a required column ignores their content.
			if cap(d.levels) < n {
				d.levels = make([]int16, batch)
			}
			bdef = d.levels[:n]
		}
		if _, err := cw.WriteBatch(nil, bdef, brep); err != nil {
			return err
		}
	}
	return nil
}

// put hands one write batch's values to the dictionary encoder and its distinct values to
// the page statistics.
func (d *dictColumn) put(enc byteArrayDictEncoder, codes []int32, stats metadata.TypedStatistics) error {
	d.batch++
	d.seen = d.seen[:0]
	for _, id := range codes {
		switch {
		case int(id) < d.inserted:
			d.idx = append(d.idx, id)
		case int(id) == d.inserted:
			if err := d.flushIndices(enc); err != nil {
				return err
			}
			enc.PutByteArray(d.vals[id])
			d.inserted++
			if enc.NumEntries() != d.inserted {
				return fmt.Errorf("dictionary of %d values after inserting value %d", enc.NumEntries(), id)
			}
		default:
			return fmt.Errorf("dictionary index %d before index %d", id, d.inserted)
		}
		if d.stamp[id] != d.batch {
			d.stamp[id] = d.batch
			d.seen = append(d.seen, d.vals[id])
		}
	}
	if err := d.flushIndices(enc); err != nil {
		return err
	}
	if s, ok := stats.(*metadata.ByteArrayStatistics); ok && s != nil {
		s.Update(d.seen, 0)
		s.IncNumValues(int64(len(codes) - len(d.seen)))
	}
	clear(d.seen)
	return nil
}

// copied returns a copy of vals in one new buffer, for the statistics to keep.
func (d *dictColumn) copied(vals []pq.ByteArray) []pq.ByteArray {
	if writerDict {
		return vals
	}
	n := 0
	for _, v := range vals {
		n += len(v)
	}
	buf := make([]byte, 0, n)
	d.plainVals = d.plainVals[:0]
	for _, v := range vals {
		start := len(buf)
		buf = append(buf, v...)
		d.plainVals = append(d.plainVals, buf[start:len(buf):len(buf)])
	}
	return d.plainVals
}

// intern copies v into the arena and returns the copy, never nil (to the statistics a nil
// value is no value, an empty one is the empty string).
func (d *dictColumn) intern(v []byte) pq.ByteArray {
	if d.arena == nil || len(d.arena)+len(v) > cap(d.arena) {
		d.arena = make([]byte, 0, max(arenaBytes, len(v)))
	}
	n := len(d.arena)
	d.arena = append(d.arena, v...)
	return d.arena[n:len(d.arena):len(d.arena)]
}

// flushIndices hands the pending indices of known values to the encoder.
func (d *dictColumn) flushIndices(enc byteArrayDictEncoder) error {
	if len(d.idx) == 0 {
		return nil
	}
	buf := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(d.idx))
	data := array.NewData(arrow.PrimitiveTypes.Int32, len(d.idx), []*memory.Buffer{nil, buf}, nil, 0, 0)
	arr := array.NewInt32Data(data)
	err := enc.PutIndices(arr)
	arr.Release()
	data.Release()
	d.idx = d.idx[:0]
	return err
}
