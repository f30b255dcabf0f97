package parquet

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/apache/arrow/go/v17/arrow/memory"
	pq "github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// The spool's rows are written with parquet's column writers directly, not through Arrow
// records: strings go from the spool block to the encoders without a copy, and the Arrow
// builders, which cost as much as the encoding itself, are skipped. The Parquet schema is
// still derived from Schema, so the files read back as that Arrow schema.

// chunk holds the columns of up to batchRows rows, in the column writers' input form.
type chunk struct {
	n       int
	str     [numFixed][]pq.ByteArray // string columns, non-null values only
	def     [numFixed][]int16        // definition levels of the nullable columns
	ts      []int64
	minor   []int64
	seq     []int64
	amount  []pq.FixedLenByteArray
	decBuf  []byte
	idBuf   []byte // copies of the ids: see reset
	lat     []float64
	lon     []float64
	score   []float64
	late    []bool
	reasons []pq.ByteArray
	rDef    []int16
	rRep    []int16
	feats   [][]float64
	fDef    []int16
	dict    [numFixed]dictColumn // dictionary state of the string columns
	first   bool                 // the chunk is the first of its row group
}

const decimalBytes = 9 // FIXED_LEN_BYTE_ARRAY size of DECIMAL(20,4)

var (
	strCols      = []int{colID, colCard, colAccount, colMerchant, colCustomer, colTerminal, colChannel, colMCC, colCountry, colCurrency, colDecision, colLedger, colModel, colRules}
	dictCols     = []int{colCard, colAccount, colMerchant, colCustomer, colTerminal, colChannel, colMCC, colCountry, colCurrency, colDecision, colReasons, colLedger, colModel, colRules}
	nullableCols = []int{colCustomer, colTerminal, colMCC, colCountry, colModel, colRules, colLat, colLon, colScore}
	enumBytes    = func(names []string) []pq.ByteArray {
		out := make([]pq.ByteArray, len(names)+1)
		for i, n := range names {
			out[i] = pq.ByteArray(n)
		}
		out[len(names)] = pq.ByteArray(unknownString)
		return out
	}
	channelBytes = enumBytes(channelNames[:])
	outcomeBytes = enumBytes(outcomeNames[:])
	ledgerBytes  = enumBytes(ledgerNames[:])
)

// enumIndex is the index in names of enum number i: unknown numbers share the last name.
func enumIndex(names []pq.ByteArray, i byte) int {
	return min(int(i), len(names)-1)
}

// requiredEnum appends the value of a required enum column.
func (c *chunk) requiredEnum(col int, names []pq.ByteArray, i byte) {
	k := enumIndex(names, i)
	c.str[col] = append(c.str[col], names[k])
	c.dict[col].addEnum(k, names[k])
}

func (c *chunk) reset(nfeat int) {
	c.n = 0
	for _, i := range strCols {
		c.str[i] = c.str[i][:0]
	}
	for _, i := range nullableCols {
		c.def[i] = c.def[i][:0]
	}
	c.ts, c.minor, c.seq, c.amount = c.ts[:0], c.minor[:0], c.seq[:0], c.amount[:0]
	// Statistics keep references to the min and max values they saw, so value bytes are
	// never reused: a new decimal buffer per chunk, and a new buffer for the ids, the one
	// string column never dictionary-encoded. The other string values point into spool
	// blocks, which are read into again once the chunk is written: the dictionary columns
	// give the statistics copies of their own (dictColumn), and copy the values of a column
	// that fell back to plain encoding.
	c.decBuf = make([]byte, 0, batchRows*decimalBytes)
	c.idBuf = make([]byte, 0, batchRows*32)
	c.lat, c.lon, c.score, c.late = c.lat[:0], c.lon[:0], c.score[:0], c.late[:0]
	c.reasons, c.rDef, c.rRep = c.reasons[:0], c.rDef[:0], c.rRep[:0]
	if len(c.feats) != nfeat {
		c.feats = make([][]float64, nfeat)
	}
	for i := range c.feats {
		c.feats[i] = c.feats[i][:0]
	}
	c.fDef = c.fDef[:0]
}

func (c *chunk) optional(col int, v []byte) {
	if len(v) == 0 {
		c.def[col] = append(c.def[col], 0)
		return
	}
	c.def[col] = append(c.def[col], 1)
	c.str[col] = append(c.str[col], v)
	c.dict[col].add(v)
}

// required appends the value of a required string column.
func (c *chunk) required(col int, v []byte) {
	c.str[col] = append(c.str[col], v)
	c.dict[col].add(v)
}

// newRowGroup starts the dictionaries of the next row group's column chunks.
func (c *chunk) newRowGroup() {
	for _, i := range dictCols {
		c.dict[i].reset()
	}
	c.first = true
}

// add appends one row; reasonDef is the definition level of a present list element.
func (c *chunk) add(r *row, reasonDef int16) {
	c.n++
	start := len(c.idBuf)
	c.idBuf = append(c.idBuf, r.id...)
	c.str[colID] = append(c.str[colID], c.idBuf[start:len(c.idBuf):len(c.idBuf)])
	c.ts = append(c.ts, r.ts)
	c.required(colCard, r.card)
	c.required(colAccount, r.account)
	c.required(colMerchant, r.merchant)
	c.optional(colCustomer, r.customer)
	c.optional(colTerminal, r.terminal)
	c.requiredEnum(colChannel, channelBytes, r.channel)
	c.optional(colMCC, r.mcc)
	c.optional(colCountry, r.country)
	c.required(colCurrency, r.currency)

	// DECIMAL as FIXED_LEN_BYTE_ARRAY: big-endian two's complement.
	d := scaleAmount(r.amount, r.digits)
	var be [16]byte
	binary.BigEndian.PutUint64(be[:8], uint64(d.HighBits()))
	binary.BigEndian.PutUint64(be[8:], d.LowBits())
	start = len(c.decBuf)
	c.decBuf = append(c.decBuf, be[16-decimalBytes:]...)
	c.amount = append(c.amount, c.decBuf[start:len(c.decBuf):len(c.decBuf)])
	c.minor = append(c.minor, r.amount)

	if r.flags&flagGeo != 0 {
		c.def[colLat] = append(c.def[colLat], 1)
		c.def[colLon] = append(c.def[colLon], 1)
		c.lat = append(c.lat, r.lat)
		c.lon = append(c.lon, r.lon)
	} else {
		c.def[colLat] = append(c.def[colLat], 0)
		c.def[colLon] = append(c.def[colLon], 0)
	}
	c.requiredEnum(colDecision, outcomeBytes, r.outcome)
	if r.flags&flagScore != 0 {
		c.def[colScore] = append(c.def[colScore], 1)
		c.score = append(c.score, r.score)
	} else {
		c.def[colScore] = append(c.def[colScore], 0)
	}
	if len(r.reasons) == 0 {
		c.rDef = append(c.rDef, 0)
		c.rRep = append(c.rRep, 0)
	}
	for i, s := range r.reasons {
		c.reasons = append(c.reasons, s)
		c.dict[colReasons].add(s)
		c.rDef = append(c.rDef, reasonDef)
		c.rRep = append(c.rRep, int16(min(i, 1)))
	}
	c.requiredEnum(colLedger, ledgerBytes, r.ledger)
	c.optional(colModel, r.model)
	c.optional(colRules, r.rules)
	c.late = append(c.late, r.flags&flagLate != 0)
	c.seq = append(c.seq, int64(r.seq))
	if r.features != nil {
		c.fDef = append(c.fDef, 1)
		for i := range c.feats {
			c.feats[i] = append(c.feats[i], math.Float64frombits(binary.LittleEndian.Uint64(r.features[i*8:])))
		}
	} else {
		c.fDef = append(c.fDef, 0)
	}
}

// write hands the chunk to the row group's column writers.
func (c *chunk) write(rg file.BufferedRowGroupWriter) error {
	col := func(i int) (file.ColumnChunkWriter, error) { return rg.Column(i) }
	for i := range numFixed + len(c.feats) {
		cw, err := col(i)
		if err != nil {
			return err
		}
		switch w := cw.(type) {
		case *file.ByteArrayColumnChunkWriter:
			switch i {
			case colID:
				_, err = w.WriteBatch(c.str[i], nil, nil)
			case colReasons:
				if writerDict {
					_, err = w.WriteBatch(c.reasons, c.rDef, c.rRep)
				} else {
					err = c.dict[i].write(w, c.reasons, c.rDef, c.rRep)
				}
				if err == nil && c.first {
					c.dict[i].maybeFallBack(w, c.reasons)
				}
			default:
				if writerDict {
					_, err = w.WriteBatch(c.str[i], defOrNil(c.def[i]), nil)
				} else {
					err = c.dict[i].write(w, c.str[i], defOrNil(c.def[i]), nil)
				}
				if err == nil && c.first {
					c.dict[i].maybeFallBack(w, c.str[i])
				}
			}
		case *file.Int64ColumnChunkWriter:
			switch i {
			case colTS:
				_, err = w.WriteBatch(c.ts, nil, nil)
			case colAmountMinor:
				_, err = w.WriteBatch(c.minor, nil, nil)
			case colSeq:
				_, err = w.WriteBatch(c.seq, nil, nil)
			default:
				err = fmt.Errorf("column %d: unexpected int64 column", i)
			}
		case *file.FixedLenByteArrayColumnChunkWriter:
			_, err = w.WriteBatch(c.amount, nil, nil)
		case *file.Float64ColumnChunkWriter:
			switch i {
			case colLat:
				_, err = w.WriteBatch(c.lat, c.def[i], nil)
			case colLon:
				_, err = w.WriteBatch(c.lon, c.def[i], nil)
			case colScore:
				_, err = w.WriteBatch(c.score, c.def[i], nil)
			default:
				_, err = w.WriteBatch(c.feats[i-numFixed], c.fDef, nil)
			}
		case *file.BooleanColumnChunkWriter:
			_, err = w.WriteBatch(c.late, nil, nil)
		default:
			err = fmt.Errorf("column %d: unexpected writer %T", i, cw)
		}
		if err != nil {
			return fmt.Errorf("parquet column %d: %w", i, err)
		}
	}
	c.first = false
	return nil
}

func defOrNil(d []int16) []int16 {
	if len(d) == 0 {
		return nil
	}
	return d
}

// converter turns rolled spool files into Parquet files, one at a time. It keeps what one
// file leaves behind for the next: the chunk's column buffers, the spool blocks read back,
// and the dictionary sizes of the last column chunks.
type converter struct {
	rowGroupBytes int64            // target encoded size of a row group
	mem           memory.Allocator // arrow's buffers
	compression   Compression      // the pages' codec; empty is zstd

	sizes dictSizes
	c     chunk
	free  [][]byte // spool blocks no value points into, to read the next ones into
}

// maxFreeBlocks bounds the spool blocks a converter keeps between files: a chunk of rows
// spans at most a few blocks of the sizes Flush writes.
const maxFreeBlocks = 4

// convert reads the spool file of sr and writes it to w as one Parquet file, cutting row
// groups when their encoded size reaches cv.rowGroupBytes. Memory stays near one row group
// plus one chunk of rows, whatever the file's size.
func (cv *converter) convert(sr *spoolReader, w io.Writer) (int64, error) {
	nfeat := len(sr.header.Features)
	props, err := writerProps(cv.mem, cv.rowGroupBytes, sr.header.Features, cv.compression)
	if err != nil {
		return 0, err
	}
	sc, err := pqarrow.ToParquet(Schema(sr.header.Features), props, pqarrow.DefaultWriterProps())
	if err != nil {
		return 0, fmt.Errorf("parquet schema: %w", err)
	}
	if sc.NumColumns() != numFixed+nfeat {
		return 0, fmt.Errorf("parquet schema: %d leaf columns, want %d", sc.NumColumns(), numFixed+nfeat)
	}
	reasonDef := sc.Column(colReasons).MaxDefinitionLevel()
	fw := file.NewParquetWriter(w, sc.Root(), file.WithWriterProps(props))
	var (
		rows int64
		r    row
		c    = &cv.c
		rg   file.BufferedRowGroupWriter
		// Spool blocks the chunk's values point into, the last one being decoded.
		held [][]byte
		free = cv.free
	)
	defer func() { cv.free = free[:min(len(free), maxFreeBlocks)] }()
	for _, i := range dictCols {
		c.dict[i].size = &cv.sizes[i]
	}
	c.reset(nfeat)
	c.newRowGroup()
	flushChunk := func() error {
		if rg == nil {
			rg = fw.AppendBufferedRowGroup()
		}
		if err := c.write(rg); err != nil {
			return err
		}
		c.reset(nfeat)
		if len(held) > 1 && !writerDict {
			free = append(free, held[:len(held)-1]...)
			clear(held[:len(held)-1])
			held = append(held[:0], held[len(held)-1])
		}
		if rg.TotalCompressedBytes()+rg.TotalBytesWritten() >= cv.rowGroupBytes {
			if err := rg.Close(); err != nil {
				return err
			}
			rg = nil
			c.newRowGroup()
		}
		return nil
	}
	for {
		sr.block = nil
		if k := len(free); k > 0 {
			sr.block, free[k-1], free = free[k-1], nil, free[:k-1]
		}
		block, n, err := sr.next()
		if err != nil {
			break
		}
		held = append(held, block)
		d := rowDecoder{b: block}
		for range n {
			if err := d.next(&r, nfeat); err != nil {
				return rows, fmt.Errorf("%s: %w", sr.f.Name(), err)
			}
			c.add(&r, reasonDef)
			rows++
			if c.n == batchRows {
				if err := flushChunk(); err != nil {
					return rows, err
				}
			}
		}
	}
	if c.n > 0 {
		if err := flushChunk(); err != nil {
			return rows, err
		}
	}
	if rg != nil {
		if err := rg.Close(); err != nil {
			return rows, err
		}
	}
	if err := fw.Close(); err != nil {
		return rows, fmt.Errorf("parquet close: %w", err)
	}
	if !writerDict {
		free = append(free, held...)
	}
	return rows, nil
}
