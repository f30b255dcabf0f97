package s3batch

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// rowReader reads the rows of one object as messages.
type rowReader interface {
	// next appends the next row's message to dst and returns it with the row's position in
	// the object (its 1-based line or row number). At the end it returns errEOF; a broken
	// download is a *transportError; any other error is the object's content.
	next(dst []byte) ([]byte, int64, error)
	// row is how many rows were consumed so far, the count that skip takes.
	row() int64
	// skip consumes n rows without returning them (errEOF if there are fewer).
	skip(n int64) error
	close()
}

var errEOF = errors.New("end of object")

// transportError is a failed read of the object's body, as opposed to bad content.
type transportError struct{ err error }

func (e *transportError) Error() string { return "download: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// transportReader marks the body's errors as transport errors.
type transportReader struct{ rc io.ReadCloser }

func (t *transportReader) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if err != nil && err != io.EOF {
		err = &transportError{err}
	}
	return n, err
}

func (t *transportReader) Close() error { return t.rc.Close() }

const readBuf = 256 << 10

// openBody wraps body in gzip when the key says so or the bytes start with gzip's magic.
func openBody(body io.ReadCloser, gz bool) (*bufio.Reader, io.Closer, error) {
	br := bufio.NewReaderSize(body, readBuf)
	magic, err := br.Peek(2)
	if err != nil && err != io.EOF {
		var te *transportError
		if errors.As(err, &te) {
			return nil, nil, err
		}
	}
	if !gz && !(len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
		return br, body, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		var te *transportError
		if errors.As(err, &te) {
			return nil, nil, err
		}
		body.Close()
		return nil, nil, &problem{"not a valid gzip stream: " + err.Error()}
	}
	return bufio.NewReaderSize(zr, readBuf), body, nil
}

// ndjsonRows passes the lines of an NDJSON object on as they are. Blank lines are skipped;
// a line longer than pipeline.MaxLineBytes is passed on cut to MaxLineBytes+1 bytes, so the
// engine refuses it as too long without it being held in memory.
type ndjsonRows struct {
	r     *bufio.Reader
	c     io.Closer
	lines int64
	eof   bool
}

func newNDJSONRows(body io.ReadCloser, gz bool) (rowReader, error) {
	r, c, err := openBody(body, gz)
	if err != nil {
		return nil, err
	}
	return &ndjsonRows{r: r, c: c}, nil
}

func (n *ndjsonRows) row() int64 { return n.lines }

func (n *ndjsonRows) close() {
	if n.c != nil {
		n.c.Close()
	}
}

func (n *ndjsonRows) skip(k int64) error {
	for n.lines < k {
		if _, err := n.line(nil, false); err != nil {
			return err
		}
	}
	return nil
}

func (n *ndjsonRows) next(dst []byte) ([]byte, int64, error) {
	for {
		start := len(dst)
		out, err := n.line(dst, true)
		if err != nil {
			return dst, 0, err
		}
		if len(bytes.TrimSpace(out[start:])) > 0 {
			return out, n.lines, nil
		}
		dst = out[:start]
	}
}

// line consumes one line, appending it (without its end, cut as described) to dst when
// keep is set.
func (n *ndjsonRows) line(dst []byte, keep bool) ([]byte, error) {
	if n.eof {
		return dst, errEOF
	}
	const limit = pipeline.MaxLineBytes + 1
	start := len(dst)
	got := false
	for {
		part, err := n.r.ReadSlice('\n')
		got = got || len(part) > 0
		if keep {
			if room := limit + 2 - (len(dst) - start); room > 0 {
				dst = append(dst, part[:min(room, len(part))]...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			n.eof = true
			if !got {
				return dst, errEOF
			}
		} else if err != nil {
			return dst, err
		}
		break
	}
	n.lines++
	rec := bytes.TrimRight(dst[start:], "\r\n")
	if len(rec) > limit {
		rec = rec[:limit]
	}
	return dst[:start+len(rec)], nil
}

// Contract fields a CSV header or a Parquet column may name, with how their values are
// written into the transaction JSON.
const (
	kindString = iota
	kindTime
	kindAmount
	kindAmountMinor
	kindNumber
	kindMCC
	kindLabelFraud
	kindLabelScenario
	kindLabel
)

// fieldKinds maps a column name to its kind. Columns not listed are ignored, as the
// contract ignores unknown fields.
var fieldKinds = map[string]int{
	"id": kindString, "ts": kindTime, "card_id": kindString, "account_id": kindString,
	"merchant_id": kindString, "amount": kindAmount, "currency": kindString,
	"customer_id": kindString, "terminal_id": kindString, "channel": kindString,
	"mcc": kindMCC, "country": kindString, "lat": kindNumber, "lon": kindNumber,
	"device_id": kindString, "ip": kindString,
	"label_fraud": kindLabelFraud, "label_scenario": kindLabelScenario,
}

// requiredFields are the contract's required fields, in its order.
var requiredFields = [...]string{"id", "ts", "card_id", "account_id", "merchant_id", "amount", "currency"}

// csvRows turns the records of a CSV object into transaction JSON. The first record is
// the header: it names each column's field. A record that cannot be parsed, or has a
// different number of fields than the header, becomes a message the engine refuses, with
// the object, the line and the record's text.
type csvRows struct {
	r      *bufio.Reader
	c      io.Closer
	object string // for messages
	cols   []int  // per column: index into names, or -1 to ignore
	names  []string
	kinds  []int
	scen   int // column of label_scenario, -1 if none
	fraud  int // column of label_fraud, -1 if none
	line   int64
	recs   int64 // data records consumed
	eof    bool
	raw    []byte // the current record as read, up to a limit
	fields []byte // unquoted field bytes
	ends   []int
}

func newCSVRows(body io.ReadCloser, gz bool, object string) (rowReader, error) {
	r, c, err := openBody(body, gz)
	if err != nil {
		return nil, err
	}
	cr := &csvRows{r: r, c: c, object: object}
	if err := cr.header(); err != nil {
		c.Close()
		return nil, err
	}
	return cr, nil
}

// header reads the header record and maps its columns.
func (c *csvRows) header() error {
	for {
		_, perr, err := c.record()
		if err == errEOF {
			return &problem{"is empty: a CSV object needs a header line naming its columns"}
		}
		if err != nil {
			return err
		}
		if perr != "" {
			return &problem{fmt.Sprintf("header line %d: %s", c.line, perr)}
		}
		if len(c.ends) == 1 && c.ends[0] == 0 {
			continue // blank line
		}
		break
	}
	c.scen, c.fraud = -1, -1
	seen := map[string]bool{}
	begin := 0
	for i, end := range c.ends {
		name := string(bytes.TrimSpace(c.fields[begin:end]))
		begin = end
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff")
		}
		if _, ok := fieldKinds[name]; !ok {
			c.cols = append(c.cols, -1)
			continue
		}
		if seen[name] {
			return &problem{fmt.Sprintf("the header names column %q twice", name)}
		}
		seen[name] = true
		switch name {
		case "label_fraud":
			c.fraud = i
		case "label_scenario":
			c.scen = i
		}
		c.cols = append(c.cols, len(c.names))
		c.names = append(c.names, name)
		c.kinds = append(c.kinds, fieldKinds[name])
	}
	for _, f := range requiredFields {
		if !seen[f] {
			return &problem{fmt.Sprintf("the header has no %s column; it needs id, ts, card_id, account_id, merchant_id, amount and currency", f)}
		}
	}
	return nil
}

func (c *csvRows) row() int64 { return c.recs }

func (c *csvRows) close() {
	if c.c != nil {
		c.c.Close()
	}
}

func (c *csvRows) skip(n int64) error {
	for c.recs < n {
		if _, _, err := c.dataRecord(); err != nil {
			return err
		}
	}
	return nil
}

// dataRecord reads the next non-blank record and returns its first line and any parse
// problem.
func (c *csvRows) dataRecord() (int64, string, error) {
	for {
		first, perr, err := c.record()
		if err != nil {
			return 0, "", err
		}
		if perr == "" && len(c.ends) == 1 && c.ends[0] == 0 {
			continue // blank line
		}
		c.recs++
		return first, perr, nil
	}
}

func (c *csvRows) next(dst []byte) ([]byte, int64, error) {
	first, perr, err := c.dataRecord()
	if err != nil {
		return dst, 0, err
	}
	if perr == "" && len(c.ends) != len(c.cols) {
		perr = fmt.Sprintf("has %d fields, the header has %d", len(c.ends), len(c.cols))
	}
	if perr != "" {
		return c.appendBad(dst, first, perr), first, nil
	}
	start := len(dst)
	dst = c.appendJSON(dst)
	if len(dst)-start > pipeline.MaxLineBytes {
		dst = dst[:start+pipeline.MaxLineBytes+1] // escaping made it too long: refused as such
	}
	return dst, first, nil
}

// appendBad appends a message the engine refuses: where, what, and the record's text.
func (c *csvRows) appendBad(dst []byte, line int64, what string) []byte {
	raw := c.raw
	if len(raw) > maxProblem/2 {
		raw = append(raw[:maxProblem/2:maxProblem/2], "..."...)
	}
	return appendProblem(dst, c.object, fmt.Sprintf("CSV line %d %s: %s", line, what, raw))
}

// appendJSON writes the current record as transaction JSON. Empty cells are left out; lat
// and lon are numbers when they read as JSON numbers, else strings that the engine refuses
// with a reason; label_fraud is a boolean when it reads true or false.
func (c *csvRows) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	first := true
	begin := 0
	cell := func(i int) []byte {
		b := 0
		if i > 0 {
			b = c.ends[i-1]
		}
		return c.fields[b:c.ends[i]]
	}
	for i, end := range c.ends {
		v := c.fields[begin:end]
		begin = end
		ni := c.cols[i]
		if ni < 0 || len(v) == 0 {
			continue
		}
		name := c.names[ni]
		kind := c.kinds[ni]
		if kind == kindLabelFraud || kind == kindLabelScenario {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, name)
		dst = append(dst, ':')
		if kind == kindNumber && isJSONNumber(v) {
			dst = append(dst, v...)
		} else {
			dst = appendJSONBytes(dst, v)
		}
	}
	var fraud, scen []byte
	if c.fraud >= 0 {
		fraud = cell(c.fraud)
	}
	if c.scen >= 0 {
		scen = cell(c.scen)
	}
	if len(fraud) > 0 || len(scen) > 0 {
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, `"label":{`...)
		if len(fraud) > 0 {
			dst = append(dst, `"fraud":`...)
			switch string(bytes.ToLower(fraud)) {
			case "true":
				dst = append(dst, "true"...)
			case "false":
				dst = append(dst, "false"...)
			default:
				dst = appendJSONBytes(dst, fraud)
			}
			if len(scen) > 0 {
				dst = append(dst, ',')
			}
		}
		if len(scen) > 0 {
			dst = append(dst, `"scenario":`...)
			dst = appendJSONBytes(dst, scen)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// maxRecord bounds a CSV record kept in memory; past it the record is cut at the end of the
// physical line and refused as too long.
const maxRecord = pipeline.MaxLineBytes

// record reads one CSV record (RFC 4180: quoted fields may hold commas, doubled quotes and
// line breaks) into c.fields/c.ends and c.raw. It returns the record's first line number
// and a parse problem, or errEOF at the end.
func (c *csvRows) record() (int64, string, error) {
	c.raw, c.fields, c.ends = c.raw[:0], c.fields[:0], c.ends[:0]
	if c.eof {
		return 0, "", errEOF
	}
	const (
		fieldStart = iota
		unquoted
		quoted
		quoteInQuoted // a quote inside a quoted field: its end or the first of a pair
	)
	state := fieldStart
	first := c.line + 1
	perr := ""
	tooLong := false
	got := false
	for {
		line, err := c.r.ReadSlice('\n')
		got = got || len(line) > 0
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return 0, "", err
		}
		complete := err != bufio.ErrBufferFull
		if err == io.EOF {
			c.eof = true
			if !got {
				return 0, "", errEOF
			}
		}
		if !tooLong && len(c.raw)+len(line) > maxRecord {
			tooLong = true
			perr = fmt.Sprintf("is longer than %d bytes", maxRecord)
		}
		if !tooLong {
			c.raw = append(c.raw, line...)
		}
		if tooLong {
			// Past the bound, the record ends with the physical line, whatever its quotes.
			if complete {
				c.line++
				c.raw = bytes.TrimRight(c.raw, "\r\n")
				c.ends = append(c.ends[:0], len(c.fields))
				return first, perr, nil
			}
			continue
		}
		body := line
		eol := err == io.EOF
		if complete && len(body) > 0 && body[len(body)-1] == '\n' {
			body = body[:len(body)-1]
			eol = true
		}
		for i := 0; i < len(body); i++ {
			b := body[i]
			if b == '\r' && eol && i == len(body)-1 && state != quoted {
				continue // the CR of a CRLF line break
			}
			switch state {
			case fieldStart:
				switch b {
				case '"':
					state = quoted
				case ',':
					c.ends = append(c.ends, len(c.fields))
				default:
					state = unquoted
					c.fields = append(c.fields, b)
				}
			case unquoted:
				switch b {
				case ',':
					c.ends = append(c.ends, len(c.fields))
					state = fieldStart
				case '"':
					if perr == "" {
						perr = "has a quote inside an unquoted field"
					}
					c.fields = append(c.fields, b)
				default:
					c.fields = append(c.fields, b)
				}
			case quoted:
				if b == '"' {
					state = quoteInQuoted
				} else {
					c.fields = append(c.fields, b)
				}
			case quoteInQuoted:
				switch b {
				case '"':
					c.fields = append(c.fields, '"')
					state = quoted
				case ',':
					c.ends = append(c.ends, len(c.fields))
					state = fieldStart
				default:
					if perr == "" {
						perr = "has text after the closing quote of a field"
					}
					c.fields = append(c.fields, b)
					state = unquoted
				}
			}
		}
		if !complete {
			continue
		}
		if len(line) > 0 && line[len(line)-1] == '\n' {
			c.line++
		} else if err == io.EOF && len(line) > 0 {
			c.line++
		}
		if state == quoted && err != io.EOF {
			if len(line) > 0 && line[len(line)-1] == '\n' {
				c.fields = append(c.fields, '\n') // a line break inside a quoted field
			}
			continue
		}
		if state == quoted && perr == "" {
			perr = "has a quoted field that is never closed"
		}
		c.ends = append(c.ends, len(c.fields))
		c.raw = bytes.TrimRight(c.raw, "\r\n")
		if !utf8.Valid(c.fields) && perr == "" {
			perr = "is not valid UTF-8"
		}
		return first, perr, nil
	}
}

// isJSONNumber reports whether b is a number in JSON's grammar.
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	return i == len(b)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		b := s[i]
		if b >= 0x20 && b != '"' && b != '\\' && b < utf8.RuneSelf {
			dst = append(dst, b)
			i++
			continue
		}
		if b < utf8.RuneSelf {
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

func appendJSONBytes(dst, b []byte) []byte {
	return appendJSONString(dst, string(b)) // the conversion does not escape to the heap
}
