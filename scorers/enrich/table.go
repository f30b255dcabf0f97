package enrich

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// format is how a reference file is encoded, chosen by its extension.
type format int

const (
	formatLines   format = iota // one entry a line, # comments: list files only
	formatCSV                   // .csv, with a header row
	formatNDJSON                // .ndjson, .jsonl: one JSON object a line
	formatParquet               // .parquet
)

// formatOf picks the format of path from its extension. Tables accept only CSV, NDJSON and
// Parquet; lists also accept any other extension as one entry a line.
func formatOf(path string, list bool) (format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return formatCSV, nil
	case ".ndjson", ".jsonl":
		return formatNDJSON, nil
	case ".parquet":
		return formatParquet, nil
	}
	if list {
		return formatLines, nil
	}
	return 0, fmt.Errorf("%s: unknown reference file format: name it .csv, .ndjson, .jsonl or .parquet", path)
}

// rowFunc receives one row of a table: where it is ("customers.csv:12", for errors) and the
// values of the requested columns, in the order asked for; a null or absent value is "".
type rowFunc func(where string, vals []string) error

// maxLine bounds an NDJSON or list line.
const maxLine = 1 << 20

// readRows calls fn with every row of the table at path, giving the values of cols. Every
// column must be present in the file; others are ignored. An error names the file and the
// line (or Parquet row) at fault.
func readRows(path string, cols []string, fn rowFunc) error {
	f, err := formatOf(path, false)
	if err != nil {
		return err
	}
	return readRowsAs(path, f, cols, fn)
}

func readRowsAs(path string, f format, cols []string, fn rowFunc) error {
	switch f {
	case formatCSV:
		return readCSV(path, cols, fn)
	case formatNDJSON:
		return readNDJSON(path, cols, fn)
	case formatParquet:
		return readParquet(path, cols, fn)
	}
	return fmt.Errorf("%s: not a table", path)
}

func readCSV(path string, cols []string, fn rowFunc) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	r := csv.NewReader(bufio.NewReaderSize(fh, 64<<10))
	r.Comment = '#'
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		return fmt.Errorf("%s: empty file: the first line must name the columns %s", path, strings.Join(cols, ", "))
	}
	if err != nil {
		return csvError(path, err)
	}
	names := make([]string, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		names[i] = strings.ToLower(strings.TrimSpace(h))
	}
	idx, err := columnIndex(path, cols, names)
	if err != nil {
		return err
	}
	vals := make([]string, len(cols))
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvError(path, err)
		}
		for i, j := range idx {
			vals[i] = strings.TrimSpace(rec[j])
		}
		line, _ := r.FieldPos(0)
		if err := fn(path+":"+strconv.Itoa(line), vals); err != nil {
			return err
		}
	}
}

func csvError(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %w", path, pe.Line, pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// columnIndex finds each wanted column among a file's column names.
func columnIndex(path string, cols, names []string) ([]int, error) {
	idx := make([]int, len(cols))
	for i, c := range cols {
		idx[i] = -1
		for j, n := range names {
			if n == c {
				idx[i] = j
				break
			}
		}
		if idx[i] < 0 {
			return nil, fmt.Errorf("%s: no column %q: the file needs the columns %s and has %s",
				path, c, strings.Join(cols, ", "), strings.Join(names, ", "))
		}
	}
	return idx, nil
}

func readNDJSON(path string, cols []string, fn rowFunc) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	vals := make([]string, len(cols))
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		where := path + ":" + strconv.Itoa(line)
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			return fmt.Errorf("%s: not a JSON object: %v", where, err)
		}
		for i, c := range cols {
			v, err := jsonScalar(obj[c])
			if err != nil {
				return fmt.Errorf("%s: field %q: %v", where, c, err)
			}
			vals[i] = v
		}
		if err := fn(where, vals); err != nil {
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

// jsonScalar gives a JSON string or number as text; absent and null are "".
func jsonScalar(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return strings.TrimSpace(s), err
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	}
	return "", fmt.Errorf("%s is not a string or a number", raw)
}

func readParquet(path string, cols []string, fn rowFunc) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	pr, err := file.NewParquetReader(fh)
	if err != nil {
		return fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	defer pr.Close()
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 16 << 10}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	names := make([]string, schema.NumFields())
	for i, fd := range schema.Fields() {
		names[i] = strings.ToLower(fd.Name)
	}
	idx, err := columnIndex(path, cols, names)
	if err != nil {
		return err
	}
	for i, j := range idx {
		if err := scalarType(schema.Field(j).Type); err != nil {
			return fmt.Errorf("%s: column %q: %v", path, cols[i], err)
		}
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer rr.Release()
	vals := make([]string, len(cols))
	row := 0
	for rr.Next() {
		rec := rr.Record()
		arrs := make([]arrow.Array, len(idx))
		for i, j := range idx {
			arrs[i] = rec.Column(j)
		}
		for r := 0; r < int(rec.NumRows()); r++ {
			row++
			for i, a := range arrs {
				vals[i] = strings.TrimSpace(arrowText(a, r))
			}
			if err := fn(path+": row "+strconv.Itoa(row), vals); err != nil {
				return err
			}
		}
	}
	if err := rr.Err(); err != nil && err != io.EOF {
		return fmt.Errorf("%s: row %d: %w", path, row+1, err)
	}
	return nil
}

// scalarType accepts the Arrow types a reference column may have: text and numbers.
func scalarType(t arrow.DataType) error {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY,
		arrow.FLOAT64, arrow.FLOAT32, arrow.INT64, arrow.INT32, arrow.INT16, arrow.INT8,
		arrow.UINT64, arrow.UINT32, arrow.UINT16, arrow.UINT8:
		return nil
	case arrow.DICTIONARY:
		return scalarType(t.(*arrow.DictionaryType).ValueType)
	}
	return fmt.Errorf("type %s is not supported: use a string or a number", t)
}

// arrowText gives row i of a as text ("" when null), for the types scalarType accepts.
func arrowText(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return ""
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	case *array.LargeBinary:
		return string(a.Value(i))
	case *array.Float64:
		return strconv.FormatFloat(a.Value(i), 'g', -1, 64)
	case *array.Float32:
		return strconv.FormatFloat(float64(a.Value(i)), 'g', -1, 32)
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Int32:
		return strconv.FormatInt(int64(a.Value(i)), 10)
	case *array.Int16:
		return strconv.FormatInt(int64(a.Value(i)), 10)
	case *array.Int8:
		return strconv.FormatInt(int64(a.Value(i)), 10)
	case *array.Uint64:
		return strconv.FormatUint(a.Value(i), 10)
	case *array.Uint32:
		return strconv.FormatUint(uint64(a.Value(i)), 10)
	case *array.Uint16:
		return strconv.FormatUint(uint64(a.Value(i)), 10)
	case *array.Uint8:
		return strconv.FormatUint(uint64(a.Value(i)), 10)
	case *array.Dictionary:
		return arrowText(a.Dictionary(), a.GetValueIndex(i))
	}
	return ""
}
