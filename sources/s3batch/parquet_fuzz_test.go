package s3batch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// memObject is an object's bytes, read as the source reads an S3 object.
type memObject struct{ *bytes.Reader }

func (memObject) failed() error { return nil }

// readParquet opens data as a Parquet object and reads at most limit rows; it returns the
// rows read and the error that ended the object (nil at its end).
func readParquet(data []byte, limit int) (int, error) {
	rows, err := newParquetRows(context.Background(), memObject{bytes.NewReader(data)}, int64(len(data)))
	if err != nil {
		return 0, err
	}
	defer rows.close()
	var buf []byte
	for n := 0; n < limit; n++ {
		buf, _, err = rows.next(buf[:0])
		if errors.Is(err, errEOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return limit, fmt.Errorf("more than %d rows", limit)
}

// FuzzParquet opens arbitrary bytes as a Parquet object: the reader must answer with rows
// or an error, never a panic, a hang or an allocation past maxParquetAlloc.
func FuzzParquet(f *testing.F) {
	good := parquetFile(f, makeTxs("f", 5), false, 2)
	f.Add(good)
	f.Add(parquetFile(f, makeTxs("m", 3), true, 10))
	f.Add(good[:len(good)/2])
	f.Add([]byte("PAR1PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A small object may legitimately hold many rows (RLE, dictionaries): read a few
		// thousand, which is enough to go through every page of a fuzzed file.
		if _, err := readParquet(data, 4096); err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}

// TestParquetSeedReads checks the fuzz harness itself: the seed file reads back whole.
func TestParquetSeedReads(t *testing.T) {
	n, err := readParquet(parquetFile(t, makeTxs("f", 5), false, 2), 100)
	if err != nil || n != 5 {
		t.Fatalf("read %d rows, %v; want 5", n, err)
	}
}

// TestParquetAbsurdFooter rewrites the row count of a valid file's footer: the object is
// refused with an error, without reading a row.
func TestParquetAbsurdFooter(t *testing.T) {
	data := parquetFile(t, makeTxs("a", 3), false, 10)
	footerLen := int(binary.LittleEndian.Uint32(data[len(data)-8:]))
	footer := data[len(data)-8-footerLen : len(data)-8]
	// The footer is Thrift compact. num_rows, of the file and of each row group, is an i64
	// field with header 0x16 (field id +1, type i64) holding zigzag(3) = 6: make it 2^40.
	big := binary.AppendUvarint(nil, uint64(1)<<41)
	patched := bytes.ReplaceAll(footer, []byte{0x16, 0x06}, append([]byte{0x16}, big...))
	if bytes.Equal(patched, footer) {
		t.Fatal("no num_rows field found in the footer")
	}
	out := append([]byte(nil), data[:len(data)-8-footerLen]...)
	out = append(out, patched...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(patched)))
	out = append(out, "PAR1"...)
	n, err := readParquet(out, 100)
	if err == nil {
		t.Fatalf("a footer declaring 2^40 rows read %d rows without error", n)
	}
	if !strings.Contains(err.Error(), "declares") && !strings.Contains(err.Error(), "not a valid Parquet file") {
		t.Errorf("error %q does not say what is wrong", err)
	}
	t.Log(err)
}
