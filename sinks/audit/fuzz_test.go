package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"testing"
)

var layout = regexp.MustCompile(`^\{"n":([1-9][0-9]*),"prev":"([0-9a-f]{64})","decision":(\{.*\})\}$`)

// referenceVerify is the specification of Verify written as plainly as possible: split
// into lines, match each against the layout, check the chain. It returns the number of
// intact records, their head, and the line of the first bad one (0 for none).
func referenceVerify(b []byte) (records int64, head string, badLine int64) {
	head = zeroHex
	lines := bytes.Split(b, []byte{'\n'})
	for i, line := range lines {
		if i == len(lines)-1 {
			if len(line) == 0 {
				break // the file ends with a newline
			}
			return records, head, int64(i + 1) // a line cut short
		}
		m := layout.FindSubmatch(line)
		if m == nil || len(line) > MaxRecordBytes || !json.Valid(m[3]) {
			return records, head, int64(i + 1)
		}
		n, err := strconv.ParseInt(string(m[1]), 10, 64)
		if err != nil || n != records+1 || string(m[2]) != head {
			return records, head, int64(i + 1)
		}
		sum := sha256.Sum256(line)
		records, head = n, hex.EncodeToString(sum[:])
	}
	return records, head, 0
}

// FuzzVerify checks that Verify never panics and agrees with the plain reference on every
// input: the same verdict, the same bad line, the same intact records and head.
func FuzzVerify(f *testing.F) {
	good := logBytes(f, 6)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte("\n"))
	f.Add([]byte(`{"n":1,"prev":"` + zeroHex + `","decision":{}}` + "\n"))
	f.Add([]byte(`{"n":1,"prev":"` + zeroHex + `","decision":{"id":"a\u0000"}}` + "\n"))
	f.Add([]byte(`{"n":9223372036854775808,"prev":"` + zeroHex + `","decision":{}}` + "\n"))
	f.Add([]byte(`{"n":01,"prev":"` + zeroHex + `","decision":{}}` + "\n"))
	f.Add([]byte(`{"n":1,"prev":"` + zeroHex + `","decision":{"id":"x"}}}` + "\n"))
	f.Add([]byte(`{"n":1,"prev":"` + zeroHex + `","decision":{"id":"\xff"}}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Verify(bytes.NewReader(b))
		records, head, bad := referenceVerify(b)
		var v *Violation
		switch {
		case err == nil && bad != 0:
			t.Fatalf("Verify accepted a log the reference refuses at line %d", bad)
		case err != nil && !errors.As(err, &v):
			t.Fatalf("Verify of an in-memory log: %v", err)
		case err != nil && v.Line != bad:
			t.Fatalf("Verify stops at line %d (%v), the reference at line %d", v.Line, v, bad)
		case res.Records != records || res.Head != head:
			t.Fatalf("Verify: %d records, head %s; reference: %d, %s", res.Records, res.Head, records, head)
		}
		if err != nil && (v.Reason == "" || v.Record != records+1) {
			t.Fatalf("violation %v: no reason, or not the record after the %d intact ones", v, records)
		}
	})
}
