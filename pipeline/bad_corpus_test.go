package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sources/file"
)

// corpusDir holds the bad-input corpus: one input line per file and expected.tsv.
var corpusDir = filepath.Join("..", "testdata", "bad")

// Expectations of a corpus case besides a dead-letter reason code.
const (
	expectAccepted = "accepted" // decided, not a dead letter
	expectSkipped  = "skipped"  // not an event at all (a blank line)
)

// corpusCase is one input line and what the pipeline must make of it.
type corpusCase struct {
	name   string
	line   []byte // as written to the stream, without its line end
	reason string // a dead-letter code, expectAccepted or expectSkipped
	offset int64  // byte offset in the stream, the dead letter's "offset"
}

// generatedCases are the hostile lines too big to keep in testdata/bad.
func generatedCases() []corpusCase {
	head := `{"id":"gen-%s","ts":"2026-11-25T10:15:30Z","card_id":"card-1","account_id":"acct-1","merchant_id":"m-1","amount":"1.00","currency":"EUR"`
	tx := func(id, extra string) []byte {
		return []byte(strings.Replace(head, "%s", id, 1) + extra + "}")
	}
	var fields, elems strings.Builder
	for i := range 5000 {
		fields.WriteString(`,"f` + strconv.Itoa(i) + `":0`)
		elems.WriteString("0,")
	}
	return []corpusCase{
		{name: "gen:line_over_64KiB", line: tx("long", `,"pad":"`+strings.Repeat("x", pipeline.MaxLineBytes)+`"`), reason: pipeline.ReasonTooLong},
		{name: "gen:line_1MiB", line: tx("huge", `,"pad":"`+strings.Repeat("y", 1<<20)+`"`), reason: pipeline.ReasonTooLong},
		{name: "gen:string_60KiB", line: tx("str", `,"note":"`+strings.Repeat("z", 60<<10)+`"`), reason: pipeline.ReasonTooLong},
		{name: "gen:escaped_string_30KiB", line: tx("esc", `,"note":"`+strings.Repeat(`\u0041`, 5<<10)+`"`), reason: pipeline.ReasonTooLong},
		{name: "gen:nesting_60000", line: tx("deep", `,"meta":`+strings.Repeat("[", 60000)), reason: pipeline.ReasonTooLong},
		{name: "gen:nesting_objects_10000", line: tx("deepobj", `,"meta":`+strings.Repeat(`{"a":`, 10000)), reason: pipeline.ReasonTooLong},
		{name: "gen:fields_5000", line: tx("fields", fields.String()), reason: pipeline.ReasonTooLong},
		{name: "gen:array_5000", line: tx("elems", `,"meta":[`+elems.String()+`0]`), reason: pipeline.ReasonTooLong},
		{name: "gen:amount_digits_60000", line: []byte(strings.Replace(head, `"1.00"`, strings.Repeat("9", 60000), 1) + "}"), reason: pipeline.ReasonTooLong},
	}
}

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "expected.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []corpusCase
	listed := map[string]bool{"expected.tsv": true}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		cols := strings.Split(l, "\t")
		if len(cols) != 3 {
			t.Fatalf("expected.tsv:%d: want file, reason and description separated by tabs, got %q", n, l)
		}
		data, err := os.ReadFile(filepath.Join(corpusDir, cols[0]))
		if err != nil {
			t.Fatalf("expected.tsv:%d: %v", n, err)
		}
		if len(data) > 4<<10 {
			t.Fatalf("%s is %d bytes: keep corpus files small and generate big cases in the test", cols[0], len(data))
		}
		line, ok := bytes.CutSuffix(data, []byte("\n"))
		if !ok || bytes.IndexByte(line, '\n') >= 0 {
			t.Fatalf("%s must hold exactly one line ending in a newline", cols[0])
		}
		listed[cols[0]] = true
		cases = append(cases, corpusCase{name: cols[0], line: line, reason: cols[1]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	files, _ := os.ReadDir(corpusDir)
	for _, e := range files {
		if !listed[e.Name()] {
			t.Errorf("%s is not listed in expected.tsv", e.Name())
		}
	}
	return cases
}

// TestBadCorpus feeds every case of testdata/bad, and the generated ones, as one NDJSON
// stream through the file source and the engine, and checks that each refused line reaches
// the dead letters with the expected reason code and its raw bytes, and that the others are
// decided or skipped.
func TestBadCorpus(t *testing.T) {
	cases := append(loadCorpus(t), generatedCases()...)
	var stream bytes.Buffer
	byOffset := map[int64]*corpusCase{}
	for i := range cases {
		c := &cases[i]
		c.offset = int64(stream.Len())
		byOffset[c.offset] = c
		stream.Write(c.line)
		stream.WriteByte('\n')
	}

	src, err := file.New("corpus.ndjson", io.NopCloser(bytes.NewReader(stream.Bytes())), 4)
	if err != nil {
		t.Fatal(err)
	}
	decisions, dead := &jsonSink{}, &jsonSink{dead: true}
	e, err := pipeline.NewEngine(pipeline.EngineOptions{Config: pipeline.EngineConfig{Partitions: 2}, Sinks: []pipeline.Sink{decisions}, DeadLetters: dead})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatalf("the engine stopped on hostile input: %v", err)
	}

	got := map[*corpusCase]bool{}
	for _, l := range dead.lines {
		var dl struct {
			Raw       *string `json:"raw"`
			RawBase64 *string `json:"raw_base64"`
			Reason    string  `json:"reason"`
			Source    string  `json:"source"`
			Offset    int64   `json:"offset"`
			Truncated bool    `json:"truncated"`
		}
		if err := json.Unmarshal([]byte(l), &dl); err != nil {
			t.Fatalf("dead letter is not JSON: %v: %.200s", err, l)
		}
		c := byOffset[dl.Offset]
		if c == nil {
			t.Errorf("dead letter at offset %d matches no case: %.200s", dl.Offset, l)
			continue
		}
		got[c] = true
		code, detail, _ := strings.Cut(dl.Reason, ": ")
		if code != c.reason {
			t.Errorf("%s: dead letter %q, want reason %s", c.name, dl.Reason, c.reason)
		}
		if detail == "" {
			t.Errorf("%s: reason %q says nothing about what is wrong", c.name, dl.Reason)
		}
		if len(dl.Reason) > 512 {
			t.Errorf("%s: reason of %d bytes; it must not echo the input", c.name, len(dl.Reason))
		}
		var raw []byte
		switch {
		case dl.Raw != nil:
			raw = []byte(*dl.Raw)
		case dl.RawBase64 != nil:
			if raw, err = base64.StdEncoding.DecodeString(*dl.RawBase64); err != nil {
				t.Errorf("%s: raw_base64: %v", c.name, err)
			}
		default:
			t.Errorf("%s: dead letter without raw bytes: %.200s", c.name, l)
		}
		want := bytes.TrimRight(c.line, "\r")
		if len(want) > pipeline.MaxLineBytes {
			want = want[:pipeline.MaxLineBytes]
			if !dl.Truncated {
				t.Errorf("%s: raw cut to %d bytes without truncated:true", c.name, len(raw))
			}
		}
		if !bytes.Equal(raw, want) {
			t.Errorf("%s: raw bytes differ from the input line:\n got %.120q\nwant %.120q", c.name, raw, want)
		}
		if dl.Source != "corpus.ndjson" {
			t.Errorf("%s: source %q", c.name, dl.Source)
		}
	}

	decided := map[string]bool{}
	for _, l := range decisions.lines {
		var d struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("decision is not JSON: %v: %.200s", err, l)
		}
		decided[d.ID] = true
	}
	accepted := 0
	for i := range cases {
		c := &cases[i]
		switch c.reason {
		case expectAccepted:
			accepted++
			var in struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(c.line, &in); err != nil || !decided[in.ID] || got[c] {
				t.Errorf("%s: want a decision for id %q (dead letter: %v)", c.name, in.ID, got[c])
			}
		case expectSkipped:
			if got[c] {
				t.Errorf("%s: a blank line became a dead letter", c.name)
			}
		default:
			if !got[c] {
				t.Errorf("%s: no dead letter, want reason %s", c.name, c.reason)
			}
		}
	}
	if len(decisions.lines) != accepted {
		t.Errorf("%d decisions for %d accepted cases", len(decisions.lines), accepted)
	}
	if n := e.Stats().DeadLetterTotal(); n != int64(len(dead.lines)) {
		t.Errorf("dead letters counted %d, written %d", n, len(dead.lines))
	}
}

// jsonSink keeps the decision or dead-letter JSON of what it receives.
type jsonSink struct {
	dead  bool
	mu    sync.Mutex
	lines []string
}

func (s *jsonSink) WriteBatch(_ context.Context, evs []*pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		if s.dead {
			s.lines = append(s.lines, string(pipeline.AppendDeadLetterJSON(nil, ev)))
		} else {
			s.lines = append(s.lines, string(pipeline.AppendDecisionJSON(nil, ev, nil)))
		}
	}
	return nil
}

func (s *jsonSink) Flush(context.Context) error { return nil }
func (s *jsonSink) Close(context.Context) error { return nil }
