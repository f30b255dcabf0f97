package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrHeadNotFound is wrapped by the error of VerifyHead when the log is intact but no
// record's hash is the expected head: records were cut from its end, or the whole log was
// rewritten, since that head was recorded.
var ErrHeadNotFound = errors.New("the log was cut back, or rewritten, after that head was recorded")

// Result is what a verification established: how many records form an unbroken chain from
// the first, and the hash of the last of them.
type Result struct {
	// Records is the number of records verified. When verification fails, it is the number
	// of intact records before the first bad one.
	Records int64
	// Head is the hex SHA-256 of the last verified record's line (64 zeros for none): the
	// chain head, to be recorded outside the log so that a later truncation is detected.
	Head string
	// HeadAt is the record whose hash is the expected head given to VerifyHead, 0 when
	// none was given or it was not found.
	HeadAt int64
}

// Violation is the first record of a log that breaks the chain, and what is wrong with it.
type Violation struct {
	Line   int64  // line number in the file, from 1
	Record int64  // the record number that line should carry
	TxID   string // the transaction id of the line's decision, "" when it cannot be read
	Reason string // what is wrong, and what it means
}

func (v *Violation) Error() string {
	if v.TxID != "" {
		return fmt.Sprintf("line %d (record %d, transaction %s): %s", v.Line, v.Record, v.TxID, v.Reason)
	}
	return fmt.Sprintf("line %d (record %d): %s", v.Line, v.Record, v.Reason)
}

// Verify reads an audit log to its end and checks every record: the layout the writer
// gives it, a decision that is a valid JSON object, n consecutive from 1, and prev equal to
// the hash of the line before. It stops at the first bad record and returns a *Violation
// naming it, with the Result of the intact records before it. Memory use is constant: one
// record at a time.
func Verify(r io.Reader) (Result, error) {
	return verify(r, nil)
}

// VerifyHead is Verify that also checks that some record's hash is head, a chain head
// recorded earlier (the log may have grown since): an intact log in which no record has
// that hash was cut back or rewritten after head was recorded, and the error wraps
// ErrHeadNotFound.
func VerifyHead(r io.Reader, head string) (Result, error) {
	want, err := ParseHead(head)
	if err != nil {
		return Result{Head: zeroHex}, err
	}
	return verify(r, &want)
}

// ParseHead reads a chain head written as 64 hex digits, upper or lower case.
func ParseHead(s string) ([32]byte, error) {
	var h [32]byte
	if len(s) != 64 {
		return h, fmt.Errorf("head %q is not a SHA-256 in hex: it has %d characters, a head has 64", s, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("head %q is not a SHA-256 in hex: %v", s, err)
	}
	return h, nil
}

var zeroHex = hex.EncodeToString(make([]byte, sha256.Size))

func verify(r io.Reader, want *[32]byte) (Result, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		res     = Result{Head: zeroHex}
		prev    [sha256.Size]byte // hash of the last intact line
		prevHex [2 * sha256.Size]byte
		long    []byte // a line longer than the reader's buffer, assembled
		line    int64
	)
	hex.Encode(prevHex[:], prev[:])
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], b...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) <= MaxRecordBytes {
				b, err = br.ReadSlice('\n')
				long = append(long, b...)
			}
			b = long
		}
		if len(b) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
			return res, fmt.Errorf("read the audit log after line %d: %w", line, err)
		}
		line++
		n := res.Records + 1
		if len(b) > MaxRecordBytes+1 {
			return res, &Violation{Line: line, Record: n,
				Reason: fmt.Sprintf("the line is longer than %d bytes, more than any record the writer makes: not an audit record", MaxRecordBytes)}
		}
		if b[len(b)-1] != '\n' {
			return res, &Violation{Line: line, Record: n, TxID: txID(b),
				Reason: "the line does not end with a newline: the file was cut in the middle of a record"}
		}
		b = b[:len(b)-1]
		rec, ok := parseRecord(b)
		if !ok {
			return res, &Violation{Line: line, Record: n, TxID: txID(b), Reason: diagnose(b)}
		}
		if rec.n != uint64(n) {
			return res, &Violation{Line: line, Record: n, TxID: txID(rec.decision), Reason: fmt.Sprintf(
				"n is %d where record %d belongs: a record was removed, inserted or moved here", rec.n, n)}
		}
		if !bytes.Equal(rec.prev, prevHex[:]) {
			reason := fmt.Sprintf("prev does not match the hash of record %d: the record or the one before it was altered, inserted or removed", n-1)
			if n == 1 {
				reason = "prev of the first record is not 64 zeros: records were removed from the start of the log"
			}
			if !isLowerHex(rec.prev) {
				reason = "prev is not 64 lower-case hex digits: not an audit record"
			}
			return res, &Violation{Line: line, Record: n, TxID: txID(rec.decision), Reason: reason}
		}
		prev = sha256.Sum256(b)
		hex.Encode(prevHex[:], prev[:])
		res.Records = n
		res.Head = string(prevHex[:])
		if want != nil && res.HeadAt == 0 && prev == *want {
			res.HeadAt = n
		}
	}
	if want != nil && res.HeadAt == 0 {
		return res, fmt.Errorf("head %x is not the hash of any of the %d records: %w",
			want[:], res.Records, ErrHeadNotFound)
	}
	return res, nil
}

// record is one parsed line; its slices point into the line.
type record struct {
	n        uint64
	prev     []byte // 64 hex digits
	decision []byte // a JSON object
}

const (
	keyN        = `{"n":`
	keyPrev     = `,"prev":"`
	keyDecision = `","decision":`
)

// parseRecord parses a line (without its newline) in the exact layout the writer gives it:
// {"n":N,"prev":"HEX","decision":{...}}. Anything else is not a record.
func parseRecord(b []byte) (record, bool) {
	var r record
	if !bytes.HasPrefix(b, []byte(keyN)) {
		return r, false
	}
	i := len(keyN)
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		if i-start == 19 { // more digits than any int64
			return r, false
		}
		r.n = r.n*10 + uint64(b[i]-'0')
		i++
	}
	if i == start || b[start] == '0' || r.n > 1<<63-1 {
		return r, false
	}
	if !bytes.HasPrefix(b[i:], []byte(keyPrev)) {
		return r, false
	}
	i += len(keyPrev)
	if len(b)-i < 2*sha256.Size {
		return r, false
	}
	r.prev = b[i : i+2*sha256.Size]
	i += 2 * sha256.Size
	if !bytes.HasPrefix(b[i:], []byte(keyDecision)) {
		return r, false
	}
	i += len(keyDecision)
	// What is left is the decision object and the record's closing brace.
	if len(b)-i < 3 || b[i] != '{' || b[len(b)-2] != '}' || b[len(b)-1] != '}' {
		return r, false
	}
	r.decision = b[i : len(b)-1]
	if !validObject(r.decision) {
		return r, false
	}
	return r, true
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// diagnose says what is wrong with a line parseRecord refused.
func diagnose(b []byte) string {
	const notRecord = `: not an audit record, whose layout is {"n":N,"prev":"HEX","decision":{...}}`
	if len(bytes.TrimSpace(b)) == 0 {
		return "the line is empty" + notRecord
	}
	if !bytes.Equal(bytes.TrimSpace(b), b) {
		return "the line has white space around the record (a carriage return from a Windows editor?)" + notRecord
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return "the line is not valid JSON (" + err.Error() + ")" + notRecord
	}
	var rec struct {
		N        json.RawMessage `json:"n"`
		Prev     json.RawMessage `json:"prev"`
		Decision json.RawMessage `json:"decision"`
	}
	if _, ok := v.(map[string]any); !ok || json.Unmarshal(b, &rec) != nil {
		return "the line is JSON but not an object" + notRecord
	}
	var fields []string
	for name, raw := range map[string]json.RawMessage{"n": rec.N, "prev": rec.Prev, "decision": rec.Decision} {
		if raw == nil {
			fields = append(fields, name)
		}
	}
	if len(fields) > 0 {
		return fmt.Sprintf("the record lacks %q", fields) + notRecord
	}
	if n, err := strconv.ParseUint(string(rec.N), 10, 63); err != nil || n == 0 || rec.N[0] == '0' {
		return fmt.Sprintf("n is %s, not a record number from 1", rec.N) + notRecord
	}
	var prev string
	if json.Unmarshal(rec.Prev, &prev) != nil || len(prev) != 2*sha256.Size || !isLowerHex([]byte(prev)) {
		return fmt.Sprintf("prev is %s, not 64 lower-case hex digits", rec.Prev) + notRecord
	}
	if rec.Decision[0] != '{' {
		return fmt.Sprintf("decision is %.40s, not a JSON object", rec.Decision) + notRecord
	}
	return "the record's fields are not in the writer's order and spacing (the line was rewritten)" + notRecord
}

// txID returns the transaction id of a decision or of a whole line, "" when it has none
// that can be read. It runs only when reporting a violation.
func txID(b []byte) string {
	if i := bytes.Index(b, []byte(`"decision":{`)); i >= 0 {
		b = b[i+len(`"decision":`):]
	}
	if !bytes.HasPrefix(b, []byte(`{"id":"`)) {
		return ""
	}
	// The id is the first field; read the string literal alone, which may be all of the
	// line that is intact.
	var id string
	dec := json.NewDecoder(bytes.NewReader(b[len(`{"id":`):]))
	if err := dec.Decode(&id); err != nil {
		return ""
	}
	const max = 128
	if len(id) > max {
		id = id[:max] + "..."
	}
	q := strconv.Quote(id) // control characters escaped, for a one-line message
	return q[1 : len(q)-1]
}

// validObject reports whether b is exactly one valid JSON object.
func validObject(b []byte) bool {
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}
