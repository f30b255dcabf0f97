package s3batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Parquet-only columns: the amount in integer minor units of the row's currency (what the
// project's Parquet sink writes beside the decimal amount), and the label as a struct.
const (
	colAmountMinor = "amount_minor"
	colLabel       = "label"
)

// maxRowGroupBytes bounds the compressed size of the columns read from one row group: the
// reader holds them in memory while it decodes the group.
const maxRowGroupBytes = 1 << 30

// parquetBatchRows is how many rows are decoded at a time.
const parquetBatchRows = 1024

// maxRowGroupRows bounds the rows (and values of a column) a footer may declare for one
// row group, 64 Mi, pyarrow's largest default: a footer claiming more is damaged or hostile,
// and reading it would stream nulls for hours.
const maxRowGroupRows = 1 << 26

// maxParquetAlloc bounds one buffer the Parquet reader allocates: a page, a dictionary, a
// batch's column. Page headers say how large a page is uncompressed, and a damaged or hostile
// file could claim gigabytes in a few bytes; past this bound the object is refused instead.
const maxParquetAlloc = 128 << 20

// boundedAllocator refuses, by panicking with errParquetAlloc, any one allocation over max;
// the reader's recover turns that into an error about the object. It keeps the process from
// being killed for memory by a file that lies about its sizes.
type boundedAllocator struct {
	memory.Allocator
	max int
}

// errParquetAlloc is the panic value of an allocation over the bound.
type errParquetAlloc int

func (e errParquetAlloc) Error() string {
	return fmt.Sprintf("a buffer of %d bytes, over the %d bytes this source allocates at once (a damaged file, or pages too large)", int(e), maxParquetAlloc)
}

func (a boundedAllocator) Allocate(size int) []byte {
	if size > a.max {
		panic(errParquetAlloc(size))
	}
	return a.Allocator.Allocate(size)
}

func (a boundedAllocator) Reallocate(size int, b []byte) []byte {
	if size > a.max {
		panic(errParquetAlloc(size))
	}
	return a.Allocator.Reallocate(size, b)
}

// parquetAllocator is the allocator of every Parquet object read.
var parquetAllocator memory.Allocator = boundedAllocator{Allocator: memory.DefaultAllocator, max: maxParquetAlloc}

// s3ReaderAt reads an object with ranged GETs, each pinned to the object's ETag so that an
// object overwritten while it is read is noticed instead of mixing two files.
type s3ReaderAt struct {
	ctx    context.Context
	client *s3.Client
	bucket string
	key    string
	etag   string
	size   int64
	off    int64 // for Seek
	err    error // the last download error, to tell a broken download from a bad file
}

func (r *s3ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= r.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), r.size-off)
	in := &s3.GetObjectInput{
		Bucket: aws.String(r.bucket), Key: aws.String(r.key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+want-1)),
	}
	if r.etag != "" {
		in.IfMatch = aws.String(r.etag)
	}
	out, err := r.client.GetObject(r.ctx, in)
	if err != nil {
		if isPreconditionFailed(err) {
			err = &problem{"changed (new ETag) while it was being read; the rest is not read"}
		} else {
			err = &transportError{err}
		}
		r.err = err
		return 0, err
	}
	defer out.Body.Close()
	n, err := io.ReadFull(out.Body, p[:want])
	if err != nil {
		r.err = &transportError{err}
		return n, r.err
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

func (r *s3ReaderAt) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("bad whence")
	}
	if offset < 0 {
		return 0, errors.New("negative offset")
	}
	r.off = offset
	return offset, nil
}

// pqColumn is one column read from a Parquet object.
type pqColumn struct {
	name string
	kind int
	idx  int // index in the record
}

// parquetRows reads a Parquet object row group by row group, each row as transaction JSON.
// Only the columns the contract names are read.
type parquetRows struct {
	ctx      context.Context
	ra       objectReader
	fr       *pqarrow.FileReader
	leaves   []int
	nrg      int
	rg       int // the next row group to open
	rr       pqarrow.RecordReader
	rec      arrow.Record
	i        int // next row of rec
	rows     int64
	declared int64 // rows the footer declares for the row group being read
	inGroup  int64 // rows decoded from it so far
	cols     []pqColumn
	amount   int // index of the amount column in cols, -1 if none
	minor    int // amount_minor, -1 if none
	currency int // currency, -1 if none
}

// objectReader is how the Parquet reader reads an object: an s3ReaderAt, or the bytes
// themselves in tests.
type objectReader interface {
	parquet.ReaderAtSeeker
	// failed is the download error behind the last failed read, nil when reads succeeded
	// (then a problem is the object's content).
	failed() error
}

func (r *s3ReaderAt) failed() error { return r.err }

func (s *Source) openParquet(c *current) (rows rowReader, err error) {
	if c.size < 12 {
		return nil, &problem{fmt.Sprintf("is %d bytes long, too short to be a Parquet file", c.size)}
	}
	ra := &s3ReaderAt{ctx: s.life, client: s.client, bucket: s.bucket, key: c.key, etag: c.etag, size: c.size}
	p, err := newParquetRows(s.life, ra, c.size)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// newParquetRows opens a Parquet object of size bytes read through ra.
func newParquetRows(ctx context.Context, ra objectReader, size int64) (rows *parquetRows, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &problem{fmt.Sprintf("not a valid Parquet file: %v", r)}
		}
		if err != nil && ra.failed() != nil {
			err = ra.failed()
		}
	}()
	props := parquet.NewReaderProperties(parquetAllocator)
	rdr, err := file.NewParquetReader(ra, file.WithReadProps(props))
	if err != nil {
		return nil, &problem{"not a valid Parquet file: " + err.Error()}
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: parquetBatchRows}, parquetAllocator)
	if err != nil {
		return nil, &problem{"not a valid Parquet file: " + err.Error()}
	}
	sc, err := fr.Schema()
	if err != nil {
		return nil, &problem{"Parquet schema: " + err.Error()}
	}
	want := map[string]int{}
	for _, f := range sc.Fields() {
		kind, ok := parquetKind(f.Name)
		if !ok {
			continue
		}
		if err := checkType(f.Name, kind, f.Type); err != nil {
			return nil, &problem{err.Error()}
		}
		want[f.Name] = kind
	}
	for _, f := range requiredFields {
		if _, ok := want[f]; !ok && !(f == "amount" && want[colAmountMinor] == kindAmountMinor) {
			return nil, &problem{fmt.Sprintf("has no %s column; it needs id, ts, card_id, account_id, merchant_id, currency and amount (or amount_minor)", f)}
		}
	}
	md := rdr.MetaData()
	var leaves []int
	for i := 0; i < md.Schema.NumColumns(); i++ {
		if p := md.Schema.Column(i).ColumnPath(); len(p) > 0 {
			if _, ok := want[p[0]]; ok {
				leaves = append(leaves, i)
			}
		}
	}
	// The footer says where each column chunk lies: refuse one that points outside the
	// object or would need more memory than a row group may take.
	for g := 0; g < rdr.NumRowGroups(); g++ {
		rgm := md.RowGroup(g)
		if n := rgm.NumRows(); n < 0 || n > maxRowGroupRows {
			return nil, &problem{fmt.Sprintf("row group %d declares %d rows, more than the %d this source reads in one row group: a damaged footer, or write smaller row groups", g, n, maxRowGroupRows)}
		}
		var total int64
		for _, l := range leaves {
			cc, err := rgm.ColumnChunk(l)
			if err != nil {
				return nil, &problem{fmt.Sprintf("row group %d: %v", g, err)}
			}
			if n := cc.NumValues(); n < 0 || n > maxRowGroupRows {
				return nil, &problem{fmt.Sprintf("row group %d: column %s declares %d values, more than the %d this source reads in one row group: a damaged footer", g, md.Schema.Column(l).Path(), n, maxRowGroupRows)}
			}
			start := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 {
				start = min(start, cc.DictionaryPageOffset())
			}
			n := cc.TotalCompressedSize()
			if start < 0 || n < 0 || start+n > size {
				return nil, &problem{fmt.Sprintf("row group %d: column %s lies outside the file: a damaged footer", g, md.Schema.Column(l).Path())}
			}
			total += n
		}
		if total > maxRowGroupBytes {
			return nil, &problem{fmt.Sprintf("row group %d holds %d bytes of the columns read, over the %d bytes this source reads at once: write smaller row groups", g, total, maxRowGroupBytes)}
		}
	}
	return &parquetRows{ctx: ctx, ra: ra, fr: fr, leaves: leaves, nrg: rdr.NumRowGroups()}, nil
}

// parquetKind is the kind of a Parquet column by its name.
func parquetKind(name string) (int, bool) {
	switch name {
	case colAmountMinor:
		return kindAmountMinor, true
	case colLabel:
		return kindLabel, true
	}
	k, ok := fieldKinds[name]
	return k, ok
}

func isInt(id arrow.Type) bool {
	switch id {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

func isString(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY:
		return true
	case arrow.DICTIONARY:
		return isString(dt.(*arrow.DictionaryType).ValueType)
	}
	return false
}

// checkType says whether a column of type dt can fill a field of the given kind.
func checkType(name string, kind int, dt arrow.DataType) error {
	id := dt.ID()
	ok := false
	switch kind {
	case kindString, kindMCC, kindLabelScenario:
		ok = isString(dt) || isInt(id)
	case kindTime:
		ok = isString(dt) || id == arrow.TIMESTAMP
	case kindAmount:
		ok = isString(dt) || id == arrow.DECIMAL128 || id == arrow.DECIMAL256
		if isInt(id) {
			return fmt.Errorf("column amount is an integer (%s), which could mean whole units or minor units: store it as a decimal or a string, or name it amount_minor if it holds minor units", dt)
		}
	case kindAmountMinor:
		ok = isInt(id)
	case kindNumber:
		ok = id == arrow.FLOAT32 || id == arrow.FLOAT64 || id == arrow.DECIMAL128 || id == arrow.DECIMAL256 || isInt(id)
	case kindLabelFraud:
		ok = id == arrow.BOOL
	case kindLabel:
		if st, isStruct := dt.(*arrow.StructType); isStruct {
			ok = true
			for _, f := range st.Fields() {
				switch f.Name {
				case "fraud":
					ok = ok && f.Type.ID() == arrow.BOOL
				case "scenario":
					ok = ok && (isString(f.Type) || isInt(f.Type.ID()))
				}
			}
		}
	}
	if !ok {
		return fmt.Errorf("column %s has type %s, which this source cannot read as %s (see docs/sources.md for the types accepted)", name, dt, name)
	}
	return nil
}

func (p *parquetRows) row() int64 { return p.rows }

func (p *parquetRows) close() {
	if p.rec != nil {
		p.rec.Release()
		p.rec = nil
	}
	if p.rr != nil {
		p.rr.Release()
		p.rr = nil
	}
}

// load makes p.rec hold a row not yet read, opening row groups as needed.
func (p *parquetRows) load() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged Parquet data in row group %d: %v", p.rg-1, r)
		}
		if err != nil && err != errEOF && p.ra.failed() != nil {
			err = p.ra.failed()
		}
	}()
	for p.rec == nil || p.i >= int(p.rec.NumRows()) {
		if p.rec != nil {
			p.rec.Release()
			p.rec = nil
		}
		if p.rr != nil {
			if p.rr.Next() {
				p.rec = p.rr.Record()
				p.rec.Retain()
				p.i = 0
				if p.inGroup += p.rec.NumRows(); p.inGroup > p.declared {
					return fmt.Errorf("row group %d holds more rows than the %d its footer declares: a damaged file", p.rg-1, p.declared)
				}
				p.bind()
				continue
			}
			err := p.rr.Err()
			p.rr.Release()
			p.rr = nil
			if err != nil && err != io.EOF {
				return fmt.Errorf("row group %d: %w", p.rg-1, err)
			}
		}
		if p.rg >= p.nrg {
			return errEOF
		}
		if err := p.checkNested(p.rg); err != nil {
			return fmt.Errorf("row group %d: %w", p.rg, err)
		}
		rr, err := p.fr.GetRecordReader(p.ctx, p.leaves, []int{p.rg})
		if err != nil {
			return fmt.Errorf("row group %d: %w", p.rg, err)
		}
		p.rr = rr
		p.declared, p.inGroup = p.fr.ParquetReader().MetaData().RowGroup(p.rg).NumRows(), 0
		p.rg++
	}
	return nil
}

// checkNested decodes, in this goroutine, the columns of row group g that lie inside a
// struct (label.fraud, label.scenario), and throws the values away. pqarrow decodes a
// struct's children in goroutines of its own, where a panic on damaged data (a nil page
// header, an allocation over maxParquetAlloc) cannot be recovered and would end the
// process; decoding them here first turns such data into an error about the object. The
// columns are small (a boolean and a short string), so the second decoding costs little.
func (p *parquetRows) checkNested(g int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged Parquet data: %v", r)
		}
	}()
	rdr := p.fr.ParquetReader()
	sch := rdr.MetaData().Schema
	var rg *file.RowGroupReader
	for _, l := range p.leaves {
		if len(sch.Column(l).ColumnPath()) < 2 {
			continue
		}
		if rg == nil {
			rg = rdr.RowGroup(g)
		}
		cr, err := rg.Column(l)
		if err != nil {
			return err
		}
		if err := drainColumn(cr); err != nil {
			return fmt.Errorf("column %s: %w", sch.Column(l).Path(), err)
		}
	}
	return nil
}

// drainColumn reads every value of a column chunk.
func drainColumn(cr file.ColumnChunkReader) error {
	switch r := cr.(type) {
	case *file.BooleanColumnChunkReader:
		return drainValues(cr, r.ReadBatch)
	case *file.ByteArrayColumnChunkReader:
		return drainValues(cr, r.ReadBatch)
	case *file.Int32ColumnChunkReader:
		return drainValues(cr, r.ReadBatch)
	case *file.Int64ColumnChunkReader:
		return drainValues(cr, r.ReadBatch)
	case *file.FixedLenByteArrayColumnChunkReader:
		return drainValues(cr, r.ReadBatch)
	}
	return fmt.Errorf("physical type %s inside a struct is not read by this source", cr.Type())
}

func drainValues[T any](cr file.ColumnChunkReader, read func(int64, []T, []int16, []int16) (int64, int, error)) error {
	const n = parquetBatchRows
	vals, def, rep := make([]T, n), make([]int16, n), make([]int16, n)
	for cr.HasNext() {
		if _, _, err := read(n, vals, def, rep); err != nil {
			return err
		}
	}
	return cr.Err()
}

// bind maps the columns of a new record.
func (p *parquetRows) bind() {
	p.cols = p.cols[:0]
	p.amount, p.minor, p.currency = -1, -1, -1
	for i, f := range p.rec.Schema().Fields() {
		kind, ok := parquetKind(f.Name)
		if !ok {
			continue
		}
		switch f.Name {
		case "amount":
			p.amount = len(p.cols)
		case colAmountMinor:
			p.minor = len(p.cols)
		case "currency":
			p.currency = len(p.cols)
		}
		p.cols = append(p.cols, pqColumn{name: f.Name, kind: kind, idx: i})
	}
}

func (p *parquetRows) skip(n int64) error {
	if p.rr == nil && p.rec == nil {
		md := p.fr.ParquetReader().MetaData()
		for p.rg < p.nrg && p.rows+md.RowGroup(p.rg).NumRows() <= n {
			p.rows += md.RowGroup(p.rg).NumRows()
			p.rg++
		}
	}
	for p.rows < n {
		if err := p.load(); err != nil {
			return err
		}
		k := min(n-p.rows, p.rec.NumRows()-int64(p.i))
		p.i += int(k)
		p.rows += k
	}
	return nil
}

func (p *parquetRows) next(dst []byte) (out []byte, pos int64, err error) {
	if err := p.load(); err != nil {
		return dst, 0, err
	}
	start := len(dst)
	defer func() {
		if r := recover(); r != nil {
			out, err = dst[:start], fmt.Errorf("damaged Parquet data at row %d: %v", p.rows+1, r)
		}
	}()
	dst = p.appendRow(dst, p.i)
	p.i++
	p.rows++
	if len(dst)-start > pipeline.MaxLineBytes {
		dst = dst[:start+pipeline.MaxLineBytes+1] // refused by the engine as too long
	}
	return dst, p.rows, nil
}

// appendRow writes row i of the current record as transaction JSON. Null cells are left
// out; amount_minor is used only when there is no amount.
func (p *parquetRows) appendRow(dst []byte, i int) []byte {
	dst = append(dst, '{')
	first := true
	field := func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, name)
		dst = append(dst, ':')
	}
	var fraud, scen arrow.Array
	for _, c := range p.cols {
		arr := p.rec.Column(c.idx)
		if arr.IsNull(i) {
			continue
		}
		switch c.kind {
		case kindLabelFraud:
			fraud = arr
			continue
		case kindLabelScenario:
			scen = arr
			continue
		case kindAmountMinor:
			if p.amount >= 0 && !p.rec.Column(p.cols[p.amount].idx).IsNull(i) {
				continue
			}
			field("amount")
			digits := -1
			if p.currency >= 0 {
				if code, ok := stringAt(p.rec.Column(p.cols[p.currency].idx), i); ok {
					if cur, known := pipeline.LookupCurrency(code); known {
						digits = cur.Digits
					}
				}
			}
			dst = appendMinor(dst, arr, i, digits)
			continue
		}
		field(c.name)
		dst = appendValue(dst, c.kind, arr, i)
	}
	if (fraud != nil) || (scen != nil) {
		field("label")
		dst = append(dst, '{')
		if fraud != nil {
			dst = append(dst, `"fraud":`...)
			dst = strconv.AppendBool(dst, fraud.(*array.Boolean).Value(i))
			if scen != nil {
				dst = append(dst, ',')
			}
		}
		if scen != nil {
			dst = append(dst, `"scenario":`...)
			dst = appendValue(dst, kindLabelScenario, scen, i)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// stringAt is a string cell's value.
func stringAt(arr arrow.Array, i int) (string, bool) {
	switch a := arr.(type) {
	case *array.String:
		return a.Value(i), true
	case *array.LargeString:
		return a.Value(i), true
	case *array.Binary:
		return string(a.Value(i)), true
	case *array.LargeBinary:
		return string(a.Value(i)), true
	case *array.Dictionary:
		return stringAt(a.Dictionary(), a.GetValueIndex(i))
	}
	return "", false
}

// appendInt appends an integer cell's digits.
func appendInt(dst []byte, arr arrow.Array, i int) []byte {
	switch a := arr.(type) {
	case *array.Int8:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10)
	case *array.Int16:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10)
	case *array.Int32:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10)
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(i), 10)
	case *array.Uint8:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10)
	case *array.Uint16:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10)
	case *array.Uint32:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10)
	case *array.Uint64:
		return strconv.AppendUint(dst, a.Value(i), 10)
	}
	return dst
}

// appendMinor writes integer minor units as a decimal string with the currency's digits;
// with an unknown currency (digits < 0) the integer is written as it is, and the engine
// refuses the row for its currency.
func appendMinor(dst []byte, arr arrow.Array, i int, digits int) []byte {
	var buf [24]byte
	v := appendInt(buf[:0], arr, i)
	if digits < 0 {
		return appendJSONBytes(dst, v)
	}
	dst = append(dst, '"')
	dst = appendScaled(dst, string(v), int(digits))
	return append(dst, '"')
}

// appendScaled writes an integer's digits (with an optional sign) divided by 10^scale,
// exactly: "12345", 2 → "123.45"; "-5", 3 → "-0.005"; "7", -2 → "700".
func appendScaled(dst []byte, v string, scale int) []byte {
	if strings.HasPrefix(v, "-") {
		dst = append(dst, '-')
		v = v[1:]
	}
	if scale <= 0 {
		dst = append(dst, v...)
		for range -scale {
			dst = append(dst, '0')
		}
		return dst
	}
	if len(v) <= scale {
		dst = append(dst, '0', '.')
		for range scale - len(v) {
			dst = append(dst, '0')
		}
		return append(dst, v...)
	}
	dst = append(dst, v[:len(v)-scale]...)
	dst = append(dst, '.')
	return append(dst, v[len(v)-scale:]...)
}

// appendDecimal writes a decimal cell exactly; ok is false for a column that is not decimal.
func appendDecimal(dst []byte, arr arrow.Array, i int) ([]byte, bool) {
	switch a := arr.(type) {
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		v := a.Value(i)
		if hi, lo := v.HighBits(), v.LowBits(); (hi == 0 && lo>>63 == 0) || (hi == -1 && lo>>63 == 1) {
			var buf [24]byte // fits in an int64: no big.Int
			return appendScaled(dst, string(strconv.AppendInt(buf[:0], int64(lo), 10)), int(scale)), true
		}
		return appendScaled(dst, v.BigInt().String(), int(scale)), true
	case *array.Decimal256:
		scale := a.DataType().(*arrow.Decimal256Type).Scale
		return appendScaled(dst, a.Value(i).BigInt().String(), int(scale)), true
	}
	return dst, false
}

// appendValue writes cell i of arr as the JSON value of a field of the given kind. The
// column's type was checked against the kind when the object was opened.
func appendValue(dst []byte, kind int, arr arrow.Array, i int) []byte {
	if d, ok := arr.(*array.Dictionary); ok {
		return appendValue(dst, kind, d.Dictionary(), d.GetValueIndex(i))
	}
	if s, ok := stringAt(arr, i); ok {
		if len(s) > pipeline.MaxLineBytes {
			s = s[:pipeline.MaxLineBytes+1] // the row is refused as too long: copy no more
		}
		return appendJSONString(dst, s)
	}
	switch kind {
	case kindString, kindLabelScenario:
		dst = append(dst, '"')
		dst = appendInt(dst, arr, i)
		return append(dst, '"')
	case kindMCC:
		var buf [24]byte
		v := appendInt(buf[:0], arr, i)
		dst = append(dst, '"')
		for range 4 - len(v) {
			dst = append(dst, '0')
		}
		dst = append(dst, v...)
		return append(dst, '"')
	case kindTime:
		a := arr.(*array.Timestamp)
		unit := a.DataType().(*arrow.TimestampType).Unit
		dst = append(dst, '"')
		dst = a.Value(i).ToTime(unit).UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	case kindAmount:
		dst = append(dst, '"')
		dst, _ = appendDecimal(dst, arr, i)
		return append(dst, '"')
	case kindNumber:
		if out, ok := appendDecimal(dst, arr, i); ok {
			return out
		}
		var f float64
		switch a := arr.(type) {
		case *array.Float32:
			f = float64(a.Value(i))
		case *array.Float64:
			f = a.Value(i)
		default:
			return appendInt(dst, arr, i)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return appendJSONString(dst, strconv.FormatFloat(f, 'g', -1, 64)) // refused by the engine
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case kindLabelFraud:
		return strconv.AppendBool(dst, arr.(*array.Boolean).Value(i))
	case kindLabel:
		a := arr.(*array.Struct)
		st := a.DataType().(*arrow.StructType)
		dst = append(dst, '{')
		n := 0
		for fi, f := range st.Fields() {
			var k int
			switch f.Name {
			case "fraud":
				k = kindLabelFraud
			case "scenario":
				k = kindLabelScenario
			default:
				continue
			}
			child := a.Field(fi)
			if child.IsNull(i) {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendJSONString(dst, f.Name)
			dst = append(dst, ':')
			dst = appendValue(dst, k, child, i)
		}
		return append(dst, '}')
	}
	return append(dst, "null"...)
}
