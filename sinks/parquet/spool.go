package parquet

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// The spool is the sink's durable buffer: one append-only row log per open Parquet file.
//
//	file   = magic header-length(u32) header-json block*
//	block  = payload-length(u32) crc32c(payload)(u32) row-count(u32) payload
//	payload = row*
//
// Flush appends one block per file that has new rows and fsyncs it. A block that is
// incomplete or fails its checksum was never acknowledged (its fsync did not return), so
// recovery truncates the file there.

const (
	spoolMagic  = "FPSPOOL1"
	spoolExt    = ".spool"
	blockHeader = 12
	// maxBlock bounds a block read back from disk, so a corrupt length cannot ask for
	// gigabytes.
	maxBlock = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// spoolHeader describes the Parquet object a spool file becomes.
type spoolHeader struct {
	Version  int      `json:"version"`
	Key      string   `json:"key"`      // object key below the destination, e.g. dt=2026-11-25/hour=10/part-....parquet
	Features []string `json:"features"` // feature column names, in row order
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendF64(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

const (
	flagGeo = 1 << iota
	flagScore
	flagLate
	flagFeatures
)

// appendRow encodes one decided event; nfeat is the number of feature columns of the file.
func appendRow(b []byte, ev *pipeline.Event, nfeat int) []byte {
	tx := &ev.Tx
	d := &ev.Decision
	b = binary.AppendUvarint(b, ev.Seq)
	b = binary.AppendVarint(b, tx.TS)
	b = appendString(b, tx.ID)
	b = appendString(b, tx.CardID)
	b = appendString(b, tx.AccountID)
	b = appendString(b, tx.MerchantID)
	b = appendString(b, tx.CustomerID)
	b = appendString(b, tx.TerminalID)
	b = appendString(b, tx.MCC)
	b = appendString(b, tx.Country)
	b = appendString(b, tx.Currency.Code)
	b = binary.AppendVarint(b, tx.Amount)
	var flags byte
	if tx.HasGeo {
		flags |= flagGeo
	}
	if d.HasScore {
		flags |= flagScore
	}
	if ev.Late {
		flags |= flagLate
	}
	if nfeat > 0 && len(ev.Features) >= nfeat {
		flags |= flagFeatures
	}
	b = append(b, byte(tx.Currency.Digits), byte(tx.Channel), byte(d.Outcome), byte(d.Ledger), flags)
	if tx.HasGeo {
		b = appendF64(b, tx.Lat)
		b = appendF64(b, tx.Lon)
	}
	if d.HasScore {
		b = appendF64(b, d.Score)
	}
	b = binary.AppendUvarint(b, uint64(len(d.Reasons)))
	for _, r := range d.Reasons {
		b = appendString(b, r)
	}
	b = appendString(b, d.Model)
	b = appendString(b, d.Rules)
	if flags&flagFeatures != 0 {
		for _, f := range ev.Features[:nfeat] {
			b = appendF64(b, f)
		}
	}
	return b
}

// row is a decoded spool row. Its byte slices point into the block they were read from.
type row struct {
	seq                                                           uint64
	ts, amount                                                    int64
	id, card, account, merchant, customer, terminal, mcc, country []byte
	currency                                                      []byte
	digits, channel, outcome, ledger, flags                       byte
	lat, lon, score                                               float64
	reasons                                                       [][]byte
	model, rules                                                  []byte
	features                                                      []byte // nfeat little-endian float64s, when flagFeatures
}

var errCorrupt = errors.New("corrupt spool row")

type rowDecoder struct {
	b   []byte
	err error
}

func (d *rowDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = errCorrupt, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *rowDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = errCorrupt, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *rowDecoder) bytes(n uint64) []byte {
	if uint64(len(d.b)) < n {
		d.err, d.b = errCorrupt, nil
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *rowDecoder) str() []byte { return d.bytes(d.uvarint()) }

func (d *rowDecoder) f64() float64 {
	s := d.bytes(8)
	if s == nil {
		return 0
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(s))
}

// next decodes one row into r, reusing r.reasons.
func (d *rowDecoder) next(r *row, nfeat int) error {
	r.seq = d.uvarint()
	r.ts = d.varint()
	r.id = d.str()
	r.card = d.str()
	r.account = d.str()
	r.merchant = d.str()
	r.customer = d.str()
	r.terminal = d.str()
	r.mcc = d.str()
	r.country = d.str()
	r.currency = d.str()
	r.amount = d.varint()
	fixed := d.bytes(5)
	if fixed != nil {
		r.digits, r.channel, r.outcome, r.ledger, r.flags = fixed[0], fixed[1], fixed[2], fixed[3], fixed[4]
	}
	if r.flags&flagGeo != 0 {
		r.lat, r.lon = d.f64(), d.f64()
	}
	if r.flags&flagScore != 0 {
		r.score = d.f64()
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return errCorrupt
	}
	r.reasons = r.reasons[:0]
	for range n {
		r.reasons = append(r.reasons, d.str())
	}
	r.model = d.str()
	r.rules = d.str()
	r.features = nil
	if r.flags&flagFeatures != 0 {
		r.features = d.bytes(uint64(nfeat) * 8)
	}
	return d.err
}

// spoolFile is one open row log.
type spoolFile struct {
	hour     int64 // event-time hour bucket: Unix ms / 3,600,000
	path     string
	header   spoolHeader
	f        *os.File // nil until the first Flush creates it
	synced   bool     // the file and its directory entry were fsynced once
	rowBytes int64    // encoded row bytes, pending ones included: what rolling by size counts
	rows     int64
	lastSeq  uint64 // engine sequence of the last row written
	pending  []byte // rows written since the last Flush
	pendRows int
	opened   int64 // wall clock of the first row, Unix ns
	full     bool  // no more rows go here; sealed at the next Flush
}

// flush appends the pending rows as one block and fsyncs the file.
func (sf *spoolFile) flush(dir string) error {
	if sf.pendRows == 0 && sf.f != nil {
		return nil
	}
	var buf []byte
	if sf.f == nil {
		f, err := os.OpenFile(sf.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("parquet spool: %w", err)
		}
		sf.f = f
		h, _ := json.Marshal(sf.header)
		buf = append(buf, spoolMagic...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(h)))
		buf = append(buf, h...)
	}
	if sf.pendRows > 0 {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(sf.pending)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(sf.pending, castagnoli))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(sf.pendRows))
	}
	if _, err := sf.f.Write(buf); err != nil {
		return fmt.Errorf("parquet spool %s: %w", sf.path, err)
	}
	if _, err := sf.f.Write(sf.pending); err != nil {
		return fmt.Errorf("parquet spool %s: %w", sf.path, err)
	}
	if err := sf.f.Sync(); err != nil {
		return fmt.Errorf("parquet spool %s: %w", sf.path, err)
	}
	if !sf.synced {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("parquet spool: %w", err)
		}
		sf.synced = true
	}
	sf.pending = sf.pending[:0]
	sf.pendRows = 0
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// spoolReader reads a spool file back block by block.
type spoolReader struct {
	f      *os.File
	r      *bufio.Reader
	header spoolHeader
	off    int64 // end of the last good block
	block  []byte
}

func openSpool(path string) (*spoolReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	sr := &spoolReader{f: f, r: bufio.NewReaderSize(f, 1<<20)}
	var pre [len(spoolMagic) + 4]byte
	if _, err := io.ReadFull(sr.r, pre[:]); err != nil || string(pre[:len(spoolMagic)]) != spoolMagic {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, errNoHeader)
	}
	n := binary.LittleEndian.Uint32(pre[len(spoolMagic):])
	h := make([]byte, n)
	if _, err := io.ReadFull(sr.r, h); err != nil || json.Unmarshal(h, &sr.header) != nil || sr.header.Key == "" {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, errNoHeader)
	}
	sr.off = int64(len(pre)) + int64(n)
	return sr, nil
}

var errNoHeader = errors.New("no complete spool header")

// next returns the next complete, intact block and its row count; io.EOF at the end or at
// the first torn or corrupt block.
func (sr *spoolReader) next() ([]byte, int, error) {
	var h [blockHeader]byte
	if _, err := io.ReadFull(sr.r, h[:]); err != nil {
		return nil, 0, io.EOF
	}
	n := binary.LittleEndian.Uint32(h[0:])
	if n > maxBlock {
		return nil, 0, io.EOF
	}
	if cap(sr.block) < int(n) {
		// With room to spare: blocks differ a little in size, and a block is read into
		// again for later ones.
		sr.block = make([]byte, n, int(n)+int(n)/8)
	}
	sr.block = sr.block[:n]
	if _, err := io.ReadFull(sr.r, sr.block); err != nil {
		return nil, 0, io.EOF
	}
	if crc32.Checksum(sr.block, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
		return nil, 0, io.EOF
	}
	sr.off += blockHeader + int64(n)
	return sr.block, int(binary.LittleEndian.Uint32(h[8:])), nil
}

// Close closes the spool file.
func (sr *spoolReader) Close() error { return sr.f.Close() }

// recoverSpool checks one spool file left by an earlier process: it truncates a torn tail
// and returns the number of durable rows (0: the file was removed, nothing in it was ever
// acknowledged).
func recoverSpool(path string) (int64, error) {
	sr, err := openSpool(path)
	if errors.Is(err, errNoHeader) {
		return 0, os.Remove(path)
	}
	if err != nil {
		return 0, err
	}
	var rows int64
	for {
		_, n, err := sr.next()
		if err != nil {
			break
		}
		rows += int64(n)
	}
	sr.Close()
	if rows == 0 {
		return 0, os.Remove(path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if st.Size() > sr.off {
		if err := os.Truncate(path, sr.off); err != nil {
			return 0, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return 0, err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return 0, err
		}
	}
	return rows, nil
}

// listSpool returns the spool files in dir, oldest name first.
func listSpool(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), spoolExt) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// rows counts the rows of the blocks after the header from their block headers alone,
// seeking past the data (no checksums: a count for metrics, not for reading).
func (sr *spoolReader) rows() int {
	total := 0
	off := sr.off
	var h [blockHeader]byte
	for {
		if _, err := sr.f.ReadAt(h[:], off); err != nil {
			return total
		}
		n := binary.LittleEndian.Uint32(h[0:])
		if n > maxBlock {
			return total
		}
		total += int(binary.LittleEndian.Uint32(h[8:]))
		off += blockHeader + int64(n)
	}
}
