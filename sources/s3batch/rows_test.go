package s3batch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// drain reads every row of r, checking that each message is bounded and is either
// transaction JSON or a problem report.
func drain(t *testing.T, r rowReader, maxRows int) {
	t.Helper()
	var dst []byte
	rows := 0
	for {
		out, pos, err := r.next(dst[:0])
		if err == errEOF {
			break
		}
		if err != nil {
			return // bad content: reported by the source as one message
		}
		rows++
		if rows > maxRows {
			t.Fatalf("%d rows from %d lines", rows, maxRows)
		}
		if pos <= 0 {
			t.Fatalf("position %d", pos)
		}
		if len(out) > pipeline.MaxLineBytes+1 {
			t.Fatalf("message of %d bytes", len(out))
		}
		dst = out
	}
}

func FuzzCSV(f *testing.F) {
	f.Add([]byte(csvHeader + "\n" + makeTxs("f", 1)[0].csv() + "\n"))
	f.Add([]byte("id,ts,card_id,account_id,merchant_id,amount,currency\r\n\"a\"\"b\",\"x\ny\",c,d,e,1.5,EUR\r\n\"open"))
	f.Add([]byte("id,ts,card_id,account_id,merchant_id,amount,currency,lat\n1,2,3,4,5,6,7,\"1e5\"x\n\n,,,,,,,\n"))
	f.Add([]byte("\x1f\x8b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := newCSVRows(io.NopCloser(bytes.NewReader(data)), false, "s3://fuzz/x.csv")
		if err != nil {
			return
		}
		defer r.close()
		cr := r.(*csvRows)
		var dst []byte
		for {
			out, _, err := cr.next(dst[:0])
			if err != nil {
				break
			}
			if len(out) > pipeline.MaxLineBytes+1 {
				t.Fatalf("message of %d bytes", len(out))
			}
			if !bytes.HasPrefix(out, []byte("s3batch: ")) && !json.Valid(out) {
				t.Fatalf("not JSON: %q", out)
			}
			if cr.recs > int64(bytes.Count(data, []byte("\n"))+1) {
				t.Fatalf("%d records from %d lines", cr.recs, bytes.Count(data, []byte("\n"))+1)
			}
			dst = out
		}
	})
}

func FuzzNDJSON(f *testing.F) {
	f.Add([]byte(`{"id":"a"}` + "\n\n  \r\n" + `{"id":"b"}`))
	f.Add([]byte(strings.Repeat("x", pipeline.MaxLineBytes+10) + "\nend"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := newNDJSONRows(io.NopCloser(bytes.NewReader(data)), false)
		if err != nil {
			return
		}
		defer r.close()
		drain(t, r, bytes.Count(data, []byte("\n"))+1)
	})
}

func TestCSVParser(t *testing.T) {
	for _, tc := range []struct {
		in     string
		fields []string
		perr   string
	}{
		{"a,b,c\n", []string{"a", "b", "c"}, ""},
		{"a,b,c\r\n", []string{"a", "b", "c"}, ""},
		{"a,,\n", []string{"a", "", ""}, ""},
		{"\"a,b\",\"c\"\"d\"\r\n", []string{"a,b", "c\"d"}, ""},
		{"\"multi\nline\",x", []string{"multi\nline", "x"}, ""},
		{"\"cr\r\n\",x\r\n", []string{"cr\r\n", "x"}, ""},
		{"a\"b,c\n", []string{"a\"b", "c"}, "quote inside"},
		{"\"a\"b,c\n", []string{"ab", "c"}, "after the closing quote"},
		{"\"never", []string{"never"}, "never closed"},
	} {
		c := &csvRows{r: bufioReader(tc.in)}
		_, perr, err := c.record()
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		var got []string
		begin := 0
		for _, e := range c.ends {
			got = append(got, string(c.fields[begin:e]))
			begin = e
		}
		if strings.Join(got, "|") != strings.Join(tc.fields, "|") || !strings.Contains(perr, tc.perr) || (tc.perr == "" && perr != "") {
			t.Errorf("%q: %q %q, want %q %q", tc.in, got, perr, tc.fields, tc.perr)
		}
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func TestAppendScaled(t *testing.T) {
	for _, tc := range []struct {
		v     string
		scale int
		want  string
	}{
		{"12345", 2, "123.45"}, {"-5", 3, "-0.005"}, {"7", -2, "700"}, {"0", 0, "0"}, {"1234500", 4, "123.4500"},
		{"-170141183460469231731687303715884105728", 4, "-17014118346046923173168730371588410.5728"},
	} {
		if got := string(appendScaled(nil, tc.v, tc.scale)); got != tc.want {
			t.Errorf("%s scale %d: %s, want %s", tc.v, tc.scale, got, tc.want)
		}
	}
}
