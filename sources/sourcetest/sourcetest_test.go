package sourcetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// memLog is an in-memory target: an append-only list of lines.
type memLog struct {
	mu    sync.Mutex
	lines [][]byte
}

// memSource reads a memLog in batches of four: the reference a real source is measured
// against.
type memSource struct {
	log *memLog
	pos int
}

func (s *memSource) Name() string { return "mem" }

func (s *memSource) ReadBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	if s.pos >= len(s.log.lines) {
		return nil, nil, pipeline.ErrEndOfInput
	}
	var msgs []pipeline.Message
	for ; s.pos < len(s.log.lines) && len(msgs) < 4; s.pos++ {
		msgs = append(msgs, pipeline.Message{Data: s.log.lines[s.pos], Pos: int64(s.pos)})
	}
	return msgs, nil, nil
}

func (s *memSource) Close() error { return nil }

func (s *memSource) Position() ([]byte, error) { return json.Marshal(s.pos) }

func (s *memSource) Seek(pos []byte) error { return json.Unmarshal(pos, &s.pos) }

func TestSuiteOnReferenceSource(t *testing.T) {
	Run(t, Harness{
		Finite:    true,
		Positions: true,
		Lines:     60,
		New: func(t *testing.T) Target {
			l := &memLog{}
			return Target{
				Publish: func(t *testing.T, lines [][]byte) {
					l.mu.Lock()
					defer l.mu.Unlock()
					l.lines = append(l.lines, lines...)
				},
				Open: func(t *testing.T) pipeline.Source { return &memSource{log: l} },
			}
		},
	})
}

// TestCompareFindsFaults checks that the comparison reports each kind of fault.
func TestCompareFindsFaults(t *testing.T) {
	lines := Lines("c", 20)
	p := newPublished(lines)
	bad := []byte("not json")
	swapped := append([][]byte{}, lines...)
	// Lines 0 and 11 are both of card-0 (Lines spreads cards unevenly): swapping them breaks
	// that card's order.
	if cardOf(lines[0]) != cardOf(lines[11]) {
		t.Fatalf("lines 0 and 11 are of %s and %s", cardOf(lines[0]), cardOf(lines[11]))
	}
	swapped[0], swapped[11] = swapped[11], swapped[0]
	otherKeys := append([][]byte{}, lines...)
	otherKeys[0], otherKeys[1] = otherKeys[1], otherKeys[0] // two cards: only the global order breaks
	changed := append([][]byte{}, lines...)
	changed[3] = []byte(strings.Replace(string(lines[3]), "EUR", "USD", 1))
	for _, tc := range []struct {
		name   string
		got    [][]byte
		perKey bool
		skip   map[string]bool
		want   string // in a problem; "" for none
	}{
		{name: "all in order", got: lines},
		{name: "lost", got: lines[:19], want: "never read"},
		{name: "twice", got: append(append([][]byte{}, lines...), lines[5]), want: "second time"},
		{name: "changed", got: changed, want: "never published"},
		{name: "key order", got: swapped, perKey: true, want: "card-0: line 0 came after line 11"},
		{name: "global order", got: otherKeys, want: "published later (the source keeps"},
		{name: "per key only", got: otherKeys, perKey: true},
		{name: "refused line read", got: append(append([][]byte{}, lines...), bad), skip: map[string]bool{"not json": true}, want: "should have refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pp := p
			if tc.skip != nil {
				pp = newPublished(append(append([][]byte{}, lines...), bad))
			}
			problems := compare(Harness{PerKeyOrderOnly: tc.perKey}, pp, tc.got, tc.skip)
			all := strings.Join(problems, "\n")
			if tc.want == "" {
				if len(problems) > 0 {
					t.Errorf("problems found in a faultless read:\n%s", all)
				}
				return
			}
			if !strings.Contains(all, tc.want) {
				t.Errorf("want a problem mentioning %q, got:\n%s", tc.want, all)
			}
		})
	}
	many := make([][]byte, 0, 100)
	for i := range 100 {
		many = append(many, fmt.Appendf(nil, "stranger %d", i))
	}
	if n := len(compare(Harness{}, p, many, nil)); n > 14 {
		t.Errorf("%d problems reported; want at most a dozen, an ellipsis and the count of lines never read", n)
	}
}
