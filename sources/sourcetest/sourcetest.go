// Package sourcetest is the conformance suite every fraudpipe source passes: every published
// line comes out once and byte-identical, in order per key (or globally where the source
// promises it), a restart from a saved position loses nothing and repeats nothing, ack
// functions can be called in order, ReadBatch and Close return promptly when told to stop
// without leaving goroutines behind, and a line that is not a transaction comes out like any
// other for the engine to dead-letter.
//
// A source's test calls Run with a Harness whose New makes a fresh, empty target (a file, a
// stream, a bucket prefix, a server) for each subtest, with functions to publish lines to it
// and to open a source over it.
package sourcetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Timeout bounds every wait of the suite: reading the published lines, a ReadBatch or Close
// told to stop, goroutines winding down.
var Timeout = 15 * time.Second

// GoroutineSlack is how many more goroutines than before a subtest may run once its source
// is closed: runtime and client bookkeeping that is no part of the source.
var GoroutineSlack = 3

// DefaultLines is how many transaction lines each subtest publishes unless Harness.Lines
// says otherwise.
const DefaultLines = 240

// Target is one fresh, empty place a source reads from, made by Harness.New for one subtest.
type Target struct {
	// Publish appends lines to the target in order, as a producer would: to the file, the
	// stream, as new objects under the prefix, as requests to the server. The suite calls it
	// before Open, one or more times; a call may return before the lines are read (a POST
	// waiting for its answer), but must not fail once the source is closed.
	Publish func(t *testing.T, lines [][]byte)
	// Open returns a new source over the target, reading from its start (a Committer: from
	// just after what was committed). The suite closes it.
	Open func(t *testing.T) pipeline.Source
	// Release, when set, is called once the suite closed the shutdown test's source, before
	// it counts goroutines: it frees what the target keeps running that is no part of the
	// source (a broker's stream and durable consumer, idle connections pooled by the
	// harness's own clients). The target is not used after it.
	Release func()
}

// Harness describes a source to the suite.
type Harness struct {
	// New makes a fresh, empty target for one subtest.
	New func(t *testing.T) Target
	// Finite says ReadBatch returns pipeline.ErrEndOfInput once every published line was
	// read (a file, a batch listing). A live source returns empty batches when idle; the
	// suite then reads until it has every line and checks that nothing more comes.
	Finite bool
	// Positions says the source is a pipeline.Positioner whose Position and Seek restore
	// the read position across a restart. Without it the restart test skips.
	Positions bool
	// Committer says the source is a pipeline.Committer: the restart test commits the
	// position before closing, and a source opened anew without Seek resumes after it.
	Committer bool
	// PerKeyOrderOnly says the source keeps the publish order only per card (Kinesis shards);
	// otherwise the suite checks the global order.
	PerKeyOrderOnly bool
	// RefusesBadLines says the source refuses a line that is not a transaction before it
	// becomes a message, answering its sender (the HTTP API's 400): the bad-line test then
	// checks that the line does not come out and every other line does.
	RefusesBadLines bool
	// Lines is how many transaction lines each subtest publishes; default DefaultLines.
	// The restart test stops reading after two fifths of them, so the source's batches
	// must be well under that.
	Lines int
}

// Run runs the conformance suite on the sources h makes.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("sourcetest: Harness.New is nil")
	}
	if h.Lines <= 0 {
		h.Lines = DefaultLines
	}
	t.Run("EveryMessageOnce", func(t *testing.T) { testEveryOnce(t, h) })
	t.Run("OrderedPerKey", func(t *testing.T) { testOrder(t, h) })
	t.Run("PositionsRestored", func(t *testing.T) { testRestart(t, h, false) })
	t.Run("CommitResumes", func(t *testing.T) { testRestart(t, h, true) })
	t.Run("AckSemantics", func(t *testing.T) { testAcks(t, h) })
	t.Run("CleanShutdown", func(t *testing.T) { testShutdown(t, h) })
	t.Run("BadLinesPassThrough", func(t *testing.T) { testBadLines(t, h) })
}

// Lines returns n valid transaction lines whose ids start with prefix: seven cards,
// unevenly interleaved, event times a second apart, ids unique.
func Lines(prefix string, n int) [][]byte {
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	out := make([][]byte, n)
	for i := range out {
		card := (i*5 + i/7) % 7 // not a plain rotation, so a key's lines are unevenly spaced
		out[i] = fmt.Appendf(nil, `{"id":"%s-%06d","ts":%q,"card_id":"card-%d","account_id":"acct-%d","merchant_id":"m-%d","amount":"%d.%02d","currency":"EUR","channel":"pos"}`,
			prefix, i, t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339), card, card, i%13, 1+i%500, i%100)
	}
	return out
}

// published is what a subtest published: the lines in order, and what the suite knows of
// each.
type published struct {
	lines [][]byte
	index map[string]int    // line → its place in lines
	card  map[string]string // line → its card; absent for a line that is not a transaction
}

func newPublished(lines [][]byte) *published {
	p := &published{lines: lines, index: map[string]int{}, card: map[string]string{}}
	for i, l := range lines {
		p.index[string(l)] = i
		if c := cardOf(l); c != "" {
			p.card[string(l)] = c
		}
	}
	return p
}

// cardOf reads the card id of a line the suite generated; "" for any other line.
func cardOf(line []byte) string {
	_, rest, ok := bytes.Cut(line, []byte(`"card_id":"`))
	if !ok {
		return ""
	}
	card, _, ok := bytes.Cut(rest, []byte(`"`))
	if !ok {
		return ""
	}
	return string(card)
}

// publish publishes lines in three calls, so that a target holding each call apart (an
// object each) is read across its parts.
func publish(t *testing.T, tg Target, lines [][]byte) *published {
	t.Helper()
	a, b := len(lines)/3, 2*len(lines)/3
	for _, part := range [][][]byte{lines[:a], lines[a:b], lines[b:]} {
		if len(part) > 0 {
			tg.Publish(t, part)
		}
	}
	return newPublished(lines)
}

// session is one source life: the messages read so far, copied.
type session struct {
	t     *testing.T
	h     Harness
	src   pipeline.Source
	resp  pipeline.Responder // nil unless the source waits for its answers
	got   [][]byte
	seq   uint64
	close func()
	ended bool // ErrEndOfInput was returned
}

// open opens a source over tg and checks that it implements what h says it does.
func open(t *testing.T, h Harness, tg Target) *session {
	t.Helper()
	src := tg.Open(t)
	if src == nil {
		t.Fatal("Target.Open returned a nil source")
	}
	_, isPos := src.(pipeline.Positioner)
	_, isCommitter := src.(pipeline.Committer)
	if h.Positions && !isPos {
		t.Errorf("the harness says %s restores positions, but it is not a pipeline.Positioner", src.Name())
	}
	switch {
	case h.Committer && !isCommitter:
		t.Errorf("the harness says %s is a Committer, but it is not a pipeline.Committer", src.Name())
	case !h.Committer && isCommitter:
		t.Errorf("%s is a pipeline.Committer (the engine commits checkpoints to it): set Harness.Committer", src.Name())
	}
	s := &session{t: t, h: h, src: src}
	s.resp, _ = src.(pipeline.Responder)
	var once sync.Once
	s.close = func() { once.Do(func() { closeSource(t, src) }) }
	t.Cleanup(s.close)
	return s
}

// closeSource closes src, failing the test when Close fails or does not return in time.
func closeSource(t *testing.T, src pipeline.Source) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- src.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(Timeout):
		t.Errorf("Close of %s did not return within %v", src.Name(), Timeout)
	}
}

// batch is one ReadBatch result kept until it is settled.
type batch struct {
	msgs   []pipeline.Message
	copies [][]byte
	ack    pipeline.AckFunc
}

// read calls ReadBatch once and copies what it returned into s.got. It reports false when
// the source said the input ended.
func (s *session) read(ctx context.Context) (batch, bool) {
	s.t.Helper()
	msgs, ack, err := s.readBatch(ctx)
	if errors.Is(err, pipeline.ErrEndOfInput) {
		if len(msgs) > 0 {
			s.t.Errorf("ReadBatch returned %d messages with ErrEndOfInput: the engine drops them", len(msgs))
		}
		if !s.h.Finite {
			s.t.Fatalf("ReadBatch of a live source returned ErrEndOfInput (the harness says it is not Finite)")
		}
		s.ended = true
		return batch{}, false
	}
	if err != nil {
		s.t.Fatalf("ReadBatch: %v", err)
	}
	b := batch{msgs: msgs, ack: ack, copies: make([][]byte, len(msgs))}
	for i, m := range msgs {
		b.copies[i] = bytes.Clone(m.Data)
	}
	s.got = append(s.got, b.copies...)
	return b, true
}

// readBatch calls ReadBatch, failing the test when it does not return within Timeout: a
// live source returns an empty batch when idle, well under a second.
func (s *session) readBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	s.t.Helper()
	type result struct {
		msgs []pipeline.Message
		ack  pipeline.AckFunc
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, ack, err := s.src.ReadBatch(ctx)
		done <- result{msgs, ack, err}
	}()
	select {
	case r := <-done:
		return r.msgs, r.ack, r.err
	case <-time.After(Timeout):
		what := "ReadBatch"
		if ctx.Err() != nil {
			what = "ReadBatch with a cancelled context"
		}
		s.t.Fatalf("%s did not return within %v", what, Timeout)
		return nil, nil, nil
	}
}

// settle does what the engine does once a batch's decisions are durable: answers a
// Responder's senders, then acknowledges the batch. It also checks that the messages did
// not change while they were held (they stay valid until the ack).
func (s *session) settle(b batch) {
	s.t.Helper()
	for i, m := range b.msgs {
		if !bytes.Equal(m.Data, b.copies[i]) {
			s.t.Errorf("message %d of a batch changed before its ack: read %q, now %q", i, trunc(b.copies[i]), trunc(m.Data))
			break
		}
	}
	if s.resp != nil && len(b.msgs) > 0 {
		s.resp.Respond(s.events(b.msgs))
	}
	if b.ack != nil {
		if err := b.ack(context.Background(), nil); err != nil {
			s.t.Errorf("ack of a batch of %d: %v", len(b.msgs), err)
		}
	}
}

// events turns messages into decided events, as the engine would hand them to Respond:
// a transaction approved, a line that is not one refused with its reason.
func (s *session) events(msgs []pipeline.Message) []pipeline.Event {
	evs := make([]pipeline.Event, len(msgs))
	for i, m := range msgs {
		ev := &evs[i]
		ev.Seq, ev.Source, ev.Pos, ev.SourcePartition, ev.Raw = s.seq, s.src.Name(), m.Pos, m.Partition, m.Data
		s.seq++
		if err := pipeline.DecodeTransaction(m.Data, &ev.Tx); err != nil {
			de, ok := err.(*pipeline.DecodeError)
			if !ok {
				de = &pipeline.DecodeError{Code: pipeline.ReasonInvalidJSON, Detail: err.Error()}
			}
			ev.Err = de
			continue
		}
		ev.Decision = pipeline.Decision{Outcome: pipeline.Approve, Ledger: pipeline.LedgerPosted}
	}
	return evs
}

// readUntil reads and settles batches until the source has returned at least n messages
// in this life, or ended; with all set and a live source, it then reads once more to see
// that nothing more comes.
func (s *session) readUntil(n int, all bool) {
	s.t.Helper()
	deadline := time.Now().Add(Timeout)
	for len(s.got) < n && !s.ended {
		if time.Now().After(deadline) {
			s.t.Fatalf("read %d of %d lines within %v", len(s.got), n, Timeout)
		}
		b, ok := s.read(context.Background())
		if ok {
			s.settle(b)
		}
	}
	if !all {
		return
	}
	// Past the lines published, a finite source ends; a live one has nothing more.
	for !s.ended {
		if time.Now().After(deadline) {
			s.t.Fatalf("a finite source did not end within %v", Timeout)
		}
		b, ok := s.read(context.Background())
		if ok {
			s.settle(b)
		}
		if !s.h.Finite {
			return
		}
	}
}

// check compares the lines read, over one or more source lives in the order they were
// read, with what was published: each exactly once and byte-identical, in publish order per
// card, and globally unless the source keeps order per key only. skip lists lines that must
// not come out.
func check(t *testing.T, h Harness, p *published, got [][]byte, skip map[string]bool) {
	t.Helper()
	if problems := compare(h, p, got, skip); len(problems) > 0 {
		t.Errorf("%d lines read, %d published:\n  %s", len(got), len(p.lines), strings.Join(problems, "\n  "))
	}
}

// compare is check's work: it returns the problems found, at most a dozen and a count of
// the lines never read.
func compare(h Harness, p *published, got [][]byte, skip map[string]bool) []string {
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 12 {
			problems = append(problems, fmt.Sprintf(format, args...))
		} else if len(problems) == 12 {
			problems = append(problems, "...")
		}
	}
	seen := make([]int, len(p.lines))
	lastByCard := map[string]int{}
	last := -1
	for _, g := range got {
		i, ok := p.index[string(g)]
		if !ok {
			report("read a line that was never published (or changed on the way): %q", trunc(g))
			continue
		}
		if skip[string(g)] {
			report("read line %d, which the source should have refused: %q", i, trunc(g))
		}
		seen[i]++
		if seen[i] > 1 {
			report("read line %d a %s time: %q", i, ordinal(seen[i]), trunc(g))
			continue
		}
		if card, ok := p.card[string(g)]; ok {
			if prev, ok := lastByCard[card]; ok && prev > i {
				report("%s: line %d came after line %d, published later", card, i, prev)
			}
			lastByCard[card] = i
		}
		if !h.PerKeyOrderOnly && i < last {
			report("line %d came after line %d, published later (the source keeps the publish order)", i, last)
		}
		last = max(last, i)
	}
	missing := 0
	for i, n := range seen {
		if n == 0 && !skip[string(p.lines[i])] {
			if missing < 5 {
				report("line %d was never read: %q", i, trunc(p.lines[i]))
			}
			missing++
		}
	}
	if missing > 0 { // past the cap too: the count says the most
		problems = append(problems, fmt.Sprintf("%d of %d published lines never read", missing, len(p.lines)))
	}
	return problems
}

func ordinal(n int) string {
	switch n {
	case 2:
		return "second"
	case 3:
		return "third"
	}
	return fmt.Sprintf("%dth", n)
}

// trunc shortens a line for a message: the start of a generated line holds its id.
func trunc(b []byte) string {
	if len(b) > 72 {
		return string(b[:69]) + "..."
	}
	return string(b)
}

func testEveryOnce(t *testing.T, h Harness) {
	tg := h.New(t)
	p := publish(t, tg, Lines("once", h.Lines))
	s := open(t, h, tg)
	s.readUntil(len(p.lines), true)
	s.close()
	// Order is the next test's concern: here only that each line came once.
	loose := h
	loose.PerKeyOrderOnly = true
	checkNoOrder(t, loose, p, s.got)
}

// checkNoOrder is check without the order checks.
func checkNoOrder(t *testing.T, h Harness, p *published, got [][]byte) {
	t.Helper()
	unordered := &published{lines: p.lines, index: p.index, card: map[string]string{}}
	check(t, h, unordered, got, nil)
}

func testOrder(t *testing.T, h Harness) {
	tg := h.New(t)
	p := publish(t, tg, Lines("order", h.Lines))
	s := open(t, h, tg)
	s.readUntil(len(p.lines), true)
	s.close()
	check(t, h, p, s.got, nil)
}

// testRestart reads part of the lines, takes the position (and commits it, for a
// Committer), closes the source, opens a new one and reads the rest: after Seek to the
// position, or, with commitOnly, without Seek, from what was committed.
func testRestart(t *testing.T, h Harness, commitOnly bool) {
	if !h.Positions {
		t.Skip("the source does not restore positions")
	}
	if commitOnly && !h.Committer {
		t.Skip("the source is not a Committer")
	}
	tg := h.New(t)
	p := publish(t, tg, Lines("restart", h.Lines))
	first := open(t, h, tg)
	first.readUntil(2*len(p.lines)/5, false) // past a publish boundary, so mid-part
	part := len(first.got)
	if first.ended || part >= len(p.lines) {
		t.Fatalf("the first life read all %d lines at once: open the source with batches well under two fifths of Harness.Lines", part)
	}
	pos, err := first.src.(pipeline.Positioner).Position()
	if err != nil {
		t.Fatalf("Position after %d lines: %v", part, err)
	}
	if h.Committer {
		if err := first.src.(pipeline.Committer).Commit(context.Background(), pos); err != nil {
			t.Fatalf("Commit(%s): %v", pos, err)
		}
	}
	first.close()

	second := open(t, h, tg)
	if !commitOnly {
		if err := second.src.(pipeline.Positioner).Seek(pos); err != nil {
			t.Fatalf("Seek(%s) on a new source: %v", pos, err)
		}
	}
	second.readUntil(len(p.lines)-part, true)
	second.close()
	// A line read before the position and again after it is reported as read twice.
	check(t, h, p, append(first.got, second.got...), nil)
}

// testAcks holds the batches it reads and acknowledges them later, in order: every batch
// once the source is idle or ended (a Responder's senders, who wait for their answers
// before they send more, make it idle). The messages must stay valid meanwhile, and no ack
// may fail. A nil AckFunc is allowed.
func testAcks(t *testing.T, h Harness) {
	tg := h.New(t)
	p := publish(t, tg, Lines("ack", h.Lines))
	s := open(t, h, tg)
	var held []batch
	settleHeld := func() {
		for _, b := range held {
			s.settle(b)
		}
		held = held[:0]
	}
	deadline := time.Now().Add(Timeout)
	for len(s.got) < len(p.lines) && !s.ended {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d lines within %v", len(s.got), len(p.lines), Timeout)
		}
		b, ok := s.read(context.Background())
		if ok && len(b.msgs) > 0 {
			held = append(held, b)
		} else {
			settleHeld()
		}
	}
	settleHeld()
	s.close()
	checkNoOrder(t, h, p, s.got)
}

// testShutdown reads a batch, then calls ReadBatch with a cancelled context and closes the
// source: both must return promptly, and the goroutines the source started must end. A
// ReadBatch told to stop must not hand out more messages: the calls are repeated for a
// while, so that a source choosing at random between its messages and the cancellation is
// caught.
func testShutdown(t *testing.T, h Harness) {
	before := runtime.NumGoroutine()
	tg := h.New(t)
	publish(t, tg, Lines("stop", h.Lines))
	s := open(t, h, tg)
	s.readUntil(1, false)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Calls for a while, so that messages a live source fetches meanwhile are waiting.
	began := time.Now()
	for i := 0; i < 5 || time.Since(began) < 300*time.Millisecond; i++ {
		if i > 0 {
			time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an outcome
		}
		msgs, ack, err := s.readBatch(ctx)
		if len(msgs) > 0 {
			s.settle(batch{msgs: msgs, ack: ack, copies: cloneAll(msgs)})
		}
		ok := err == nil && len(msgs) == 0 ||
			errors.Is(err, pipeline.ErrEndOfInput) ||
			err != nil && errors.Is(err, ctx.Err())
		if !ok {
			what := fmt.Sprintf("%d messages", len(msgs))
			if err != nil {
				what = fmt.Sprintf("%d messages and error %v", len(msgs), err)
			}
			t.Errorf("ReadBatch with a cancelled context returned %s; want an empty batch, ErrEndOfInput or the context's error (%v)", what, ctx.Err())
			break
		}
	}
	s.close()
	if tg.Release != nil {
		tg.Release()
	}
	waitGoroutines(t, before)
}

func cloneAll(msgs []pipeline.Message) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = bytes.Clone(m.Data)
	}
	return out
}

// waitGoroutines polls until no more than GoroutineSlack goroutines above before run, and
// fails with their stacks if that does not happen within Timeout.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		n := runtime.NumGoroutine()
		if n <= before+GoroutineSlack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%d goroutines %v after the source was closed, %d before the subtest began: the source left goroutines running:\n%s",
				n, Timeout, before, buf)
			return
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// testBadLines publishes a line that is not JSON among transactions: it must come out,
// byte-identical and once, for the engine to dead-letter; or, for a source that refuses
// it itself, not come out while every other line does.
func testBadLines(t *testing.T, h Harness) {
	tg := h.New(t)
	lines := Lines("bad", h.Lines)
	mid := len(lines) / 2
	bad := []byte("this is not JSON { at line " + fmt.Sprint(mid))
	lines = append(lines[:mid:mid], append([][]byte{bad}, lines[mid:]...)...)
	p := publish(t, tg, lines)
	s := open(t, h, tg)
	want := len(p.lines)
	var skip map[string]bool
	if h.RefusesBadLines {
		want--
		skip = map[string]bool{string(bad): true}
	}
	s.readUntil(want, true)
	s.close()
	check(t, h, p, s.got, skip)
}
