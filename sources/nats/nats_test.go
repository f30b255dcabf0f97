package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// waitFor polls fn until it returns nil or the deadline passes.
func waitFor(t *testing.T, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testServer starts an embedded server on a random port with its store in a temporary
// folder, and connects to it over the loopback network.
func testServer(t testing.TB) (*Embedded, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	e, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := nats.Connect(e.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return e, nc, js
}

// genLines makes n valid transactions spread over cards, a minute apart.
func genLines(n, cards int) [][]byte {
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	lines := make([][]byte, n)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `{"id":"tx-%06d","ts":%q,"card_id":"card-%d","account_id":"acct-%d","merchant_id":"m-%d","amount":"%d.%02d","currency":"EUR","channel":"pos"}`,
			i, t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i%cards, i%cards, i%17, 1+i%500, i%100)
	}
	return lines
}

func publishLines(t testing.TB, js jetstream.JetStream, lines [][]byte, partitioned bool) PublishStats {
	t.Helper()
	st, err := Publish(context.Background(), js, bytes.NewReader(append(bytes.Join(lines, []byte("\n")), '\n')), PublishOptions{Partitioned: partitioned})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ensure(t testing.TB, js jetstream.JetStream, o StreamOptions) jetstream.Stream {
	t.Helper()
	st, err := EnsureStream(context.Background(), js, o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func open(t testing.TB, nc *nats.Conn, o Options) *Source {
	t.Helper()
	o.Conn = nc
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// readN reads until n messages arrived, failing after a deadline or on more.
func readN(t *testing.T, s *Source, n int) []pipeline.Message {
	t.Helper()
	got := readAtLeast(t, s, n)
	if len(got) != n {
		t.Fatalf("read %d messages, want %d", len(got), n)
	}
	return got
}

// readAtLeast reads whole batches until at least n messages arrived.
func readAtLeast(t *testing.T, s *Source, n int) []pipeline.Message {
	t.Helper()
	var got []pipeline.Message
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %d messages, want %d", len(got), n)
		}
		msgs, _, err := s.ReadBatch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	return got
}

func posSeq(t *testing.T, s *Source) uint64 {
	t.Helper()
	b, err := s.Position()
	if err != nil {
		t.Fatal(err)
	}
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p.Seq
}

func consumerInfo(t *testing.T, js jetstream.JetStream, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), DefaultStream, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestPublishAndReadInOrder(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{})
	lines := genLines(5000, 50)
	lines = append(lines, []byte(`{"id":"broken","amount":`), []byte(`not json at all`))
	st := publishLines(t, js, lines, false)
	if st.Lines != int64(len(lines)) || st.Published != int64(len(lines)) || st.NoID != 2 {
		t.Fatalf("publish stats %+v, want %d lines published, 2 without id", st, len(lines))
	}
	// Publishing again within the duplicate window stores nothing new.
	if again := publishLines(t, js, lines[:100], false); again.Duplicates != 100 || again.Published != 0 {
		t.Fatalf("republish stats %+v, want 100 duplicates", again)
	}
	s := open(t, nc, Options{FetchBatch: 300})
	if s.Name() != "nats:TXN" {
		t.Errorf("name %q", s.Name())
	}
	got := readN(t, s, len(lines))
	for i, m := range got {
		if !bytes.Equal(m.Data, lines[i]) {
			t.Fatalf("message %d: %s, want %s", i, m.Data, lines[i])
		}
		if m.Pos != int64(i+1) || m.Partition != 0 {
			t.Fatalf("message %d at seq %d partition %d, want seq %d partition 0", i, m.Pos, m.Partition, i+1)
		}
	}
	if seq := posSeq(t, s); seq != uint64(len(lines)) {
		t.Errorf("position %d, want %d", seq, len(lines))
	}
	msgs, ack, err := s.ReadBatch(context.Background())
	if len(msgs) != 0 || ack != nil || err != nil {
		t.Errorf("read past the end: %d messages, %v", len(msgs), err)
	}
}

func TestSeekResumesAfterPosition(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{})
	lines := genLines(3000, 10)
	publishLines(t, js, lines, false)

	s := open(t, nc, Options{FetchBatch: 100})
	k := len(readAtLeast(t, s, 1000))
	pos, _ := s.Position()
	if seq := posSeq(t, s); seq != uint64(k) {
		t.Fatalf("position %d after %d messages", seq, k)
	}
	s.Close()

	s = open(t, nc, Options{FetchBatch: 100})
	if err := s.Seek(pos); err != nil {
		t.Fatal(err)
	}
	rest := readN(t, s, 3000-k)
	if rest[0].Pos != int64(k+1) || !bytes.Equal(rest[0].Data, lines[k]) {
		t.Fatalf("after seek: first message at %d, want %d", rest[0].Pos, k+1)
	}
	end, _ := s.Position()
	if err := s.Commit(context.Background(), end); err != nil {
		t.Fatal(err)
	}
	if f := consumerInfo(t, js, DefaultDurable).AckFloor.Stream; f != 3000 {
		t.Fatalf("ack floor %d after commit, want 3000", f)
	}
	s.Close()

	// An older checkpoint than the server's ack floor: what it does not cover comes again.
	s = open(t, nc, Options{FetchBatch: 100})
	if err := s.Seek(pos); err != nil {
		t.Fatal(err)
	}
	again := readN(t, s, 3000-k)
	if again[0].Pos != int64(k+1) || again[len(again)-1].Pos != 3000 {
		t.Fatalf("after seek behind the ack floor: %d..%d, want %d..3000", again[0].Pos, again[len(again)-1].Pos, k+1)
	}

	bad := open(t, nc, Options{})
	if err := bad.Seek([]byte(`{"stream":"OTHER","seq":5}`)); err == nil || !strings.Contains(err.Error(), "OTHER") {
		t.Errorf("seek to another stream: %v", err)
	}
	if err := bad.Seek([]byte(`garbage`)); err == nil {
		t.Error("seek to garbage: no error")
	}
}

func TestCommitAndRestartWithoutSeek(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{})
	lines := genLines(1000, 10)
	publishLines(t, js, lines, false)

	// AckWait of an hour: a restart that waited for it would never see the messages again.
	o := Options{FetchBatch: 128, AckWait: time.Hour}
	s := open(t, nc, o)
	readN(t, s, 1000)
	s.Close()

	s = open(t, nc, o)
	got := readN(t, s, 1000)
	if got[0].Pos != 1 {
		t.Fatalf("restart without commit resumed at %d, want 1", got[0].Pos)
	}
	// Commit a position in the middle of a batch: acknowledged up to the batch end before it.
	if err := s.Commit(context.Background(), []byte(`{"stream":"TXN","seq":300}`)); err != nil {
		t.Fatal(err)
	}
	info := consumerInfo(t, js, DefaultDurable)
	if info.AckFloor.Stream > 300 || info.AckFloor.Stream < 300-128 {
		t.Fatalf("ack floor %d after commit of 300, want the batch end at or below it", info.AckFloor.Stream)
	}
	if info.Config.AckWait != time.Hour || info.Config.AckPolicy != jetstream.AckAllPolicy {
		t.Errorf("consumer config %+v", info.Config)
	}
	floor := info.AckFloor.Stream
	s.Close()

	s = open(t, nc, o)
	got = readN(t, s, int(1000-floor))
	if got[0].Pos != int64(floor+1) {
		t.Fatalf("restart after commit resumed at %d, want %d", got[0].Pos, floor+1)
	}
	if seq := posSeq(t, s); seq != 1000 {
		t.Errorf("position %d, want 1000", seq)
	}
	// The batch's AckFunc acknowledges it, without checkpoints.
	lines2 := genLines(1100, 10)[1000:]
	publishLines(t, js, lines2, false)
	var last int64
	for last < 1100 {
		msgs, ack, err := s.ReadBatch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			continue
		}
		last = msgs[len(msgs)-1].Pos
		if err := ack(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if f := consumerInfo(t, js, DefaultDurable).AckFloor.Stream; f != 1100 {
		t.Errorf("ack floor %d after acking every batch, want 1100", f)
	}
}

func TestPartitionedStream(t *testing.T) {
	_, nc, js := testServer(t)
	so := StreamOptions{Partitions: 4}
	stream := ensure(t, js, so)
	lines := genLines(2000, 40)
	lines = append(lines, []byte(`{"id":"odd-card","card_id":"a.b *>c","amount":"1"}`))
	publishLines(t, js, lines, true)

	s := open(t, nc, Options{})
	got := readN(t, s, len(lines))
	cardPart := map[string]int{}
	seen := map[int]int{}
	for _, m := range got {
		raw, err := stream.GetMsg(context.Background(), uint64(m.Pos))
		if err != nil {
			t.Fatal(err)
		}
		var tx struct {
			Card string `json:"card_id"`
		}
		json.Unmarshal(m.Data, &tx)
		if want := fmt.Sprintf("txn.%d", m.Partition); raw.Subject != want {
			t.Fatalf("message %d on %s, partition %d: want subject %s", m.Pos, raw.Subject, m.Partition, want)
		}
		if p, ok := cardPart[tx.Card]; ok && p != m.Partition {
			t.Fatalf("card %s on partitions %d and %d", tx.Card, p, m.Partition)
		}
		cardPart[tx.Card] = m.Partition
		seen[m.Partition]++
	}
	if len(seen) != 4 {
		t.Fatalf("messages by partition %v, want all of 0..3", seen)
	}

	// One instance of a scale-out reads partitions 1 and 3 only.
	half := open(t, nc, Options{Durable: "half", FilterSubjects: []string{so.PartitionFilter(1), so.PartitionFilter(3)}})
	mine := readN(t, half, seen[1]+seen[3])
	for _, m := range mine {
		if m.Partition != 1 && m.Partition != 3 {
			t.Fatalf("filtered consumer got partition %d", m.Partition)
		}
	}
	if msgs, _, _ := half.ReadBatch(context.Background()); len(msgs) != 0 {
		t.Errorf("filtered consumer got %d more", len(msgs))
	}

	// The same stream with another partition count is refused; limits may change.
	if _, err := EnsureStream(context.Background(), js, StreamOptions{Partitions: 8}); err == nil || !strings.Contains(err.Error(), "partition") {
		t.Errorf("ensure with 8 partitions: %v", err)
	}
	st, err := EnsureStream(context.Background(), js, StreamOptions{Partitions: 4, MaxAge: time.Hour})
	if err != nil || st.CachedInfo().Config.MaxAge != time.Hour {
		t.Errorf("ensure with a max age: %v", err)
	}
}

func TestRedeliveryDropped(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{})
	publishLines(t, js, genLines(200, 5), false)
	s := open(t, nc, Options{AckWait: 300 * time.Millisecond, FetchWait: 20 * time.Millisecond})
	readN(t, s, 200)
	// Nothing is acknowledged: the server delivers everything again after AckWait.
	waitFor(t, 20*time.Second, func() error {
		msgs, _, err := s.ReadBatch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 0 {
			t.Fatalf("redelivered message at %d handed on again", msgs[0].Pos)
		}
		if info := consumerInfo(t, js, DefaultDurable); info.NumRedelivered == 0 || info.Delivered.Consumer < 400 {
			return fmt.Errorf("not all redelivered yet: %+v", info.Delivered)
		}
		return nil
	})
}

func TestReadBatchCancelAndClose(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{})
	s := open(t, nc, Options{FetchWait: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := s.ReadBatch(ctx)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("ReadBatch after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBatch did not return after cancel")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := s.ReadBatch(context.Background()); err == nil {
		t.Error("ReadBatch after Close: no error")
	}
	if nc.IsClosed() {
		t.Error("Close closed a connection it was given")
	}

	// A source that dialled its own connection closes it.
	own, err := Open(context.Background(), Options{URL: nc.ConnectedUrl(), FetchWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if msgs, _, err := own.ReadBatch(context.Background()); err != nil || len(msgs) != 0 {
		t.Fatalf("empty stream: %d messages, %v", len(msgs), err)
	}
	conn := own.nc
	own.Close()
	if !conn.IsClosed() {
		t.Error("Close left its own connection open")
	}

	if _, err := Open(context.Background(), Options{Conn: nc, Stream: "NOPE"}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("open a missing stream: %v", err)
	}
	if _, err := Open(context.Background(), Options{}); err == nil {
		t.Error("open without URL: no error")
	}
}

func TestPending(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{})
	publishLines(t, js, genLines(1000, 5), false)
	s := open(t, nc, Options{FetchBatch: 10})
	if p := s.Pending(); p != 0 {
		t.Errorf("pending before reading: %d", p)
	}
	got := len(readAtLeast(t, s, 10))
	if p := s.Pending(); p == 0 || p > uint64(1000-got) {
		t.Errorf("pending after reading %d of 1000: %d", got, p)
	}
}

func TestSubjectToken(t *testing.T) {
	for in, want := range map[string]string{"card-42": "card-42", "": "_", "a.b": "a_b", "x y\t*>": "x_y___", "ü": "ü"} {
		if got := SubjectToken(in); got != want {
			t.Errorf("SubjectToken(%q) = %q, want %q", in, got, want)
		}
	}
	if got := partitionOf("txn.3.card", "txn."); got != 3 {
		t.Errorf("partitionOf = %d", got)
	}
	if got := partitionOf("txn.in", ""); got != 0 {
		t.Errorf("partitionOf unpartitioned = %d", got)
	}
}

func TestStartEmbeddedNeedsStoreDir(t *testing.T) {
	if _, err := StartEmbedded(EmbeddedOptions{}); err == nil {
		t.Fatal("no error without a store directory")
	}
}

func TestPositionBeforeReadAndSeekPastEnd(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{})
	publishLines(t, js, genLines(500, 5), false)
	s := open(t, nc, Options{FetchBatch: 50})
	if seq := posSeq(t, s); seq != 0 {
		t.Errorf("position of a new consumer: %d, want 0", seq)
	}
	readAtLeast(t, s, 100)
	pos, _ := s.Position()
	if err := s.Commit(context.Background(), pos); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A checkpoint taken before the first read names what the consumer acknowledged.
	s = open(t, nc, Options{})
	if got, _ := s.Position(); string(got) != string(pos) {
		t.Errorf("position before the first read: %s, want %s", got, pos)
	}

	// A checkpoint beyond the stream's end belongs to another incarnation of the stream.
	s = open(t, nc, Options{})
	if err := s.Seek([]byte(`{"stream":"TXN","seq":9000}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ReadBatch(context.Background()); err == nil || !strings.Contains(err.Error(), "deleted and created again") {
		t.Errorf("read after a seek past the end: %v", err)
	}
}

// TestReconnectAfterServerRestart keeps reading when the server restarts on the same
// store: the durable consumer and the stream survive, and nothing is skipped.
func TestReconnectAfterServerRestart(t *testing.T) {
	store := t.TempDir()
	e, err := StartEmbedded(EmbeddedOptions{StoreDir: store, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	port := e.Server().Addr().(*net.TCPAddr).Port
	url := e.ClientURL()
	pub := func(lines [][]byte) {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ensure(t, js, StreamOptions{})
		publishLines(t, js, lines, false)
	}
	lines := genLines(2000, 10)
	pub(lines[:1000])
	s, err := Open(context.Background(), Options{URL: url, FetchBatch: 100, FetchWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first := readN(t, s, 1000)

	e.Shutdown()
	e, err = StartEmbedded(EmbeddedOptions{StoreDir: store, Port: port})
	if err != nil {
		t.Fatalf("restart on port %d: %v", port, err)
	}
	defer e.Shutdown()
	pub(lines[1000:])
	rest := readN(t, s, 1000)
	if first[999].Pos != 1000 || rest[0].Pos != 1001 || rest[999].Pos != 2000 {
		t.Fatalf("read %d..%d then %d..%d across the restart", first[0].Pos, first[999].Pos, rest[0].Pos, rest[999].Pos)
	}
}

func TestConsumerDeletedWhileReading(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{})
	publishLines(t, js, genLines(100, 5), false)
	s := open(t, nc, Options{FetchWait: 20 * time.Millisecond})
	readN(t, s, 100)
	if err := js.DeleteConsumer(context.Background(), DefaultStream, DefaultDurable); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		_, _, err := s.ReadBatch(context.Background())
		if err != nil && strings.Contains(err.Error(), "was deleted") {
			return nil
		}
		return fmt.Errorf("ReadBatch after the consumer was deleted: %v", err)
	})
}

func TestPublishOptionsFor(t *testing.T) {
	_, nc, js := testServer(t)
	ensure(t, js, StreamOptions{})
	ensure(t, js, StreamOptions{Name: "PART", Subject: "pay.cards", Partitions: 2})
	if o, err := PublishOptionsFor(context.Background(), js, ""); err != nil || o.Subject != "txn" || o.Partitioned {
		t.Errorf("unpartitioned: %+v %v", o, err)
	}
	po, err := PublishOptionsFor(context.Background(), js, "PART")
	if err != nil || po.Subject != "pay.cards" || !po.Partitioned {
		t.Fatalf("partitioned: %+v %v", po, err)
	}
	// A prefix of several tokens: partitions are still read from the subject.
	lines := genLines(200, 20)
	if _, err := Publish(context.Background(), js, bytes.NewReader(bytes.Join(lines, []byte("\n"))), po); err != nil {
		t.Fatal(err)
	}
	parts := map[int]bool{}
	for _, m := range readN(t, open(t, nc, Options{Stream: "PART"}), 200) {
		parts[m.Partition] = true
	}
	if len(parts) != 2 || !parts[0] || !parts[1] {
		t.Errorf("partitions read %v, want 0 and 1", parts)
	}
	if _, err := PublishOptionsFor(context.Background(), js, "NOPE"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing stream: %v", err)
	}
}

func TestPublishRateAndCancel(t *testing.T) {
	_, _, js := testServer(t)
	st := ensure(t, js, StreamOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the first message is stored: the second is due ten seconds later.
		for ctx.Err() == nil {
			if info, err := st.Info(ctx); err == nil && info.State.Msgs >= 1 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	stats, err := Publish(ctx, js, bytes.NewReader(bytes.Join(genLines(3, 1), []byte("\n"))), PublishOptions{Rate: 0.1})
	if err != context.Canceled || stats.Lines > 2 {
		t.Fatalf("publish at 0.1/s, cancelled after the first: %+v %v", stats, err)
	}
	if _, err := Publish(context.Background(), js, strings.NewReader(""), PublishOptions{Rate: -1}); err == nil {
		t.Error("negative rate: no error")
	}
}
