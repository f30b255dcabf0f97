package feedback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	filesource "github.com/fraudpipe/fraudpipe/sources/file"
)

func open(t *testing.T, name, text string) pipeline.Source {
	t.Helper()
	s, err := filesource.New(name, io.NopCloser(strings.NewReader(text)), 2)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain reads src to its end and returns each message's data.
func drain(t *testing.T, src pipeline.Source) []string {
	t.Helper()
	var out []string
	for {
		msgs, ack, err := src.ReadBatch(context.Background())
		if errors.Is(err, pipeline.ErrEndOfInput) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			out = append(out, string(m.Data))
		}
		if ack != nil {
			ack(context.Background(), nil)
		}
	}
}

func txLine(id, ts string, fraud bool) string {
	return fmt.Sprintf(`{"id":%q,"ts":%q,"card_id":"c","account_id":"a","merchant_id":"m","amount":"1.00","currency":"EUR","label":{"fraud":%v}}`, id, ts, fraud)
}

func fbLine(id, ts string) string {
	return fmt.Sprintf(`{"kind":"feedback","id":%q,"ts":%q,"fraud":true}`, id, ts)
}

func idsOf(t *testing.T, lines []string) []string {
	var ids []string
	for _, l := range lines {
		ev := pipeline.Event{Raw: []byte(l)}
		pipeline.DecodeEvent(&ev)
		switch {
		case ev.Err != nil:
			ids = append(ids, "bad")
		case ev.Feedback != nil:
			ids = append(ids, "fb:"+ev.Feedback.ID)
		default:
			ids = append(ids, ev.Tx.ID)
		}
	}
	return ids
}

func TestMergeInEventTimeFeedbackFirstOnTies(t *testing.T) {
	tx := strings.Join([]string{
		txLine("t1", "2026-01-01T00:00:00Z", false),
		txLine("t2", "2026-01-02T00:00:00Z", false),
		"not json",
		txLine("t3", "2026-01-03T00:00:00Z", false),
		txLine("t4", "2026-01-05T00:00:00Z", false),
	}, "\n") + "\n"
	fb := strings.Join([]string{
		fbLine("t1", "2026-01-01T12:00:00Z"),
		fbLine("t2", "2026-01-03T00:00:00Z"), // the same instant as t3: feedback first
		fbLine("t3", "2026-01-09T00:00:00Z"), // after every transaction
	}, "\n") + "\n"
	m := Merge(open(t, "tx", tx), open(t, "fb", fb), 3)
	got := idsOf(t, drain(t, m))
	want := []string{"t1", "fb:t1", "t2", "bad", "fb:t2", "t3", "t4", "fb:t3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("merged = %v\nwant     %v", got, want)
	}
	if m.Name() != "tx+fb" {
		t.Errorf("Name = %q", m.Name())
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}

func TestFromLabels(t *testing.T) {
	tx := strings.Join([]string{
		txLine("a", "2026-01-01T00:00:00Z", true),
		txLine("b", "2026-01-02T00:00:00Z", false),
		txLine("c", "2026-01-03T00:00:00Z", true),
		txLine("d", "2026-01-08T00:00:00Z", false), // a's feedback (Jan 8) comes first
		txLine("e", "2026-01-09T00:00:00Z", false),
	}, "\n") + "\n"
	l := FromLabels(open(t, "tx", tx), 7*24*time.Hour, 4)
	lines := drain(t, l)
	got := idsOf(t, lines)
	want := []string{"a", "b", "c", "fb:a", "d", "e", "fb:c"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream = %v\nwant     %v", got, want)
	}
	if l.Made() != 2 {
		t.Errorf("Made = %d, want 2", l.Made())
	}
	var fb pipeline.Feedback
	if err := pipeline.DecodeFeedback([]byte(lines[3]), &fb); err != nil {
		t.Fatal(err)
	}
	if fb.ID != "a" || !fb.Fraud || fb.TSText != "2026-01-08T00:00:00.000Z" {
		t.Errorf("feedback = %+v", fb)
	}
}
