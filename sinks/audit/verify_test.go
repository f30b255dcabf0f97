package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// rechain rewrites n and prev of every line from the first, as a forger who controls the
// whole file would, and returns the new head.
func rechain(lines [][]byte) string {
	var prev [32]byte
	for i, l := range lines {
		rec, ok := parseRecord(bytes.TrimSuffix(l, []byte{'\n'}))
		if !ok {
			panic("rechain: not a record")
		}
		var b []byte
		b = append(b, keyN...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, keyPrev...)
		b = hex.AppendEncode(b, prev[:])
		b = append(b, keyDecision...)
		b = append(b, rec.decision...)
		b = append(b, '}')
		prev = sha256.Sum256(b)
		lines[i] = append(b, '\n')
	}
	return hex.EncodeToString(prev[:])
}

func headOf(line []byte) string {
	sum := sha256.Sum256(bytes.TrimSuffix(line, []byte{'\n'}))
	return hex.EncodeToString(sum[:])
}

// TestTamper changes a valid log the ways an attacker or an accident would, and checks that
// Verify stops at the right line, names the right record and transaction, and says what
// is wrong.
func TestTamper(t *testing.T) {
	orig := logBytes(t, 50)
	origLines := splitLines(orig)
	origHead := mustVerify(t, orig).Head
	id := func(i int) string { return fmt.Sprintf("tx-%06d", i-1) } // transaction of record i

	tests := []struct {
		name   string
		change func(l [][]byte) [][]byte
		line   int64 // the violation's line and record; 0: Verify passes
		record int64
		tx     string
		reason string
	}{
		{"byte changed in a decision", func(l [][]byte) [][]byte {
			l[19] = bytes.Replace(l[19], []byte(`"ledger":"posted"`), []byte(`"ledger":"postad"`), 1)
			return l
		}, 21, 21, id(21), "prev does not match the hash of record 20: the record or the one before it was altered, inserted or removed"},
		{"decision made invalid JSON", func(l [][]byte) [][]byte {
			l[19] = bytes.Replace(l[19], []byte(`"reasons":[`), []byte(`"reasons":{`), 1)
			return l
		}, 20, 20, id(20), "not valid JSON"},
		{"two records swapped", func(l [][]byte) [][]byte {
			l[9], l[10] = l[10], l[9]
			return l
		}, 10, 10, id(11), "n is 11 where record 10 belongs: a record was removed, inserted or moved here"},
		{"record deleted", func(l [][]byte) [][]byte {
			return append(l[:9:9], l[10:]...)
		}, 10, 10, id(11), "n is 11 where record 10 belongs"},
		{"record copied in", func(l [][]byte) [][]byte {
			return append(l[:10:10], append([][]byte{l[9]}, l[10:]...)...)
		}, 11, 11, id(10), "n is 10 where record 11 belongs"},
		{"forged record inserted with its own n and prev", func(l [][]byte) [][]byte {
			forged := append([][]byte(nil), l[:10]...)
			forged = append(forged, bytes.Replace(l[3], []byte(id(4)), []byte("tx-forged"), 1))
			rechain(forged)
			return append(forged, l[10:]...)
		}, 12, 12, id(11), "n is 11 where record 12 belongs"},
		{"n changed", func(l [][]byte) [][]byte {
			l[29] = bytes.Replace(l[29], []byte(`{"n":30,`), []byte(`{"n":31,`), 1)
			return l
		}, 30, 30, id(30), "n is 31 where record 30 belongs"},
		{"first record removed", func(l [][]byte) [][]byte {
			return l[1:]
		}, 1, 1, id(2), "n is 2 where record 1 belongs"},
		{"first records removed and renumbered", func(l [][]byte) [][]byte {
			l = l[5:]
			for i := range l {
				l[i] = bytes.Replace(l[i], []byte(fmt.Sprintf(`{"n":%d,`, i+6)), []byte(fmt.Sprintf(`{"n":%d,`, i+1)), 1)
			}
			return l
		}, 1, 1, `tx-\"quoted\"-é-5`, "prev of the first record is not 64 zeros"},
		{"prev in upper case", func(l [][]byte) [][]byte {
			i := bytes.Index(l[14], []byte(`"prev":"`)) + len(`"prev":"`)
			copy(l[14][i:], bytes.ToUpper(l[14][i:i+64]))
			return l
		}, 15, 15, id(15), "not 64 lower-case hex digits"},
		{"empty line", func(l [][]byte) [][]byte {
			return append(l[:7:7], append([][]byte{[]byte("\n")}, l[7:]...)...)
		}, 8, 8, "", "the line is empty"},
		{"fields reordered", func(l [][]byte) [][]byte {
			rec, _ := parseRecord(bytes.TrimSuffix(l[4], []byte{'\n'}))
			l[4] = []byte(fmt.Sprintf(`{"prev":"%s","n":%d,"decision":%s}`+"\n", rec.prev, rec.n, rec.decision))
			return l
		}, 5, 5, id(5), "not in the writer's order"},
		{"n missing", func(l [][]byte) [][]byte {
			l[4] = bytes.Replace(l[4], []byte(`{"n":5,`), []byte(`{`), 1)
			return l
		}, 5, 5, id(5), `lacks ["n"]`},
		{"decision not an object", func(l [][]byte) [][]byte {
			i := bytes.Index(l[4], []byte(`"decision":{`))
			l[4] = append(l[4][:i:i], []byte(`"decision":"approve"}`+"\n")...)
			return l
		}, 5, 5, "", "not a JSON object"},
		{"Windows line endings", func(l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte("\n"), []byte("\r\n"), 1)
			return l
		}, 3, 3, id(3), "white space around the record"},
		{"last record cut in the middle", func(l [][]byte) [][]byte {
			l[49] = l[49][:150]
			return l
		}, 50, 50, id(50), "does not end with a newline"},
		{"tail removed: passes without the recorded head", func(l [][]byte) [][]byte {
			return l[:45]
		}, 0, 0, "", ""},
		{"last record altered: passes without the recorded head", func(l [][]byte) [][]byte {
			l[49] = bytes.Replace(l[49], []byte(`"decision":"`), []byte(`"decision":"X`), 1)
			return l
		}, 0, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := make([][]byte, len(origLines))
			for i, l := range origLines {
				lines[i] = bytes.Clone(l)
			}
			lines = tt.change(lines)
			b := joinLines(lines)
			res, err := Verify(bytes.NewReader(b))
			if tt.line == 0 {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				// The head recorded before the change is no longer in the chain.
				_, err := VerifyHead(bytes.NewReader(b), origHead)
				if !errors.Is(err, ErrHeadNotFound) || !strings.Contains(err.Error(), "is not the hash of any of the") {
					t.Errorf("VerifyHead(the head recorded before) = %v; want ErrHeadNotFound", err)
				}
				return
			}
			var v *Violation
			if !errors.As(err, &v) {
				t.Fatalf("Verify = %+v, %v; want a violation at line %d", res, err, tt.line)
			}
			if v.Line != tt.line || v.Record != tt.record || v.TxID != tt.tx || !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("got  %v\nwant line %d (record %d, transaction %s): ...%s...", v, tt.line, tt.record, tt.tx, tt.reason)
			}
			// The intact records before the violation are reported with their head.
			if res.Records != tt.line-1 || (tt.line > 1 && res.Head != headOf(lines[tt.line-2])) {
				t.Errorf("Result %+v; want %d intact records", res, tt.line-1)
			}
		})
	}
}

// TestRewrittenLog: a forger who rewrites a record and every record after it, chaining
// them anew, passes Verify; a head recorded earlier, even of a record before the end,
// exposes it. A forger who also replaces every recorded head is not detected.
func TestRewrittenLog(t *testing.T) {
	orig := logBytes(t, 40)
	lines := splitLines(orig)
	anchored := headOf(lines[29]) // recorded when the log had 30 records
	lines[19] = bytes.Replace(lines[19], []byte(`"ledger":"posted"`), []byte(`"ledger":"skipped"`), 1)
	forgedHead := rechain(lines)
	forged := joinLines(lines)
	res := mustVerify(t, forged)
	if res.Records != 40 || res.Head != forgedHead {
		t.Fatalf("the rechained log: %+v", res)
	}
	if _, err := VerifyHead(bytes.NewReader(forged), anchored); !errors.Is(err, ErrHeadNotFound) {
		t.Errorf("VerifyHead(head of record 30 recorded before the forgery) = %v; want ErrHeadNotFound", err)
	}
	if res, err := VerifyHead(bytes.NewReader(orig), anchored); err != nil || res.HeadAt != 30 || res.Records != 40 {
		t.Errorf("VerifyHead on the genuine log that grew since: %+v, %v; want the head at record 30", res, err)
	}
}

func TestVerifyEmpty(t *testing.T) {
	res := mustVerify(t, nil)
	if res.Records != 0 || res.Head != strings.Repeat("0", 64) {
		t.Errorf("empty log: %+v", res)
	}
}

func TestVerifyLongLine(t *testing.T) {
	b := logBytes(t, 3)
	b = append(b, bytes.Repeat([]byte("x"), MaxRecordBytes+10)...)
	b = append(b, '\n')
	_, err := Verify(bytes.NewReader(b))
	var v *Violation
	if !errors.As(err, &v) || v.Line != 4 || !strings.Contains(v.Reason, "longer than") {
		t.Errorf("Verify: %v; want line 4 too long", err)
	}
}

func TestParseHead(t *testing.T) {
	for _, s := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("0", 63)} {
		if _, err := ParseHead(s); err == nil {
			t.Errorf("ParseHead(%q) accepted it", s)
		}
	}
	if _, err := VerifyHead(bytes.NewReader(nil), "xyz"); err == nil || !strings.Contains(err.Error(), "not a SHA-256") {
		t.Errorf("VerifyHead with a bad head: %v", err)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("connection reset")
	}
	r.n--
	return copy(p, "x"), nil
}

func TestVerifyReadError(t *testing.T) {
	_, err := Verify(&failingReader{n: 3})
	var v *Violation
	if err == nil || errors.As(err, &v) || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("Verify on a failing reader: %v", err)
	}
}
