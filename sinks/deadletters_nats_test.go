package sinks_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sinks"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
	natssrc "github.com/fraudpipe/fraudpipe/sources/nats"
)

// TestDeadLettersToNATS: dead letters named nats://host:port/subject are published there,
// one JSON object a message, before Flush returns.
func TestDeadLettersToNATS(t *testing.T) {
	srv, err := natssrc.StartEmbedded(natssrc.EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	sub, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch := make(chan *nats.Msg, 10)
	sub.ChanSubscribe("fraudpipe.dead", ch)
	sub.Flush()

	for _, bad := range []string{"nats://127.0.0.1:1", "nats:///subject", "nats://h:1/a b"} {
		if _, err := sinks.OpenDeadLetters(bad); err == nil {
			t.Errorf("OpenDeadLetters(%q) = nil error", bad)
		}
	}
	m := newMemTarget()
	m.reject["bad"] = true
	s, err := sinks.FromSpec(m, sinks.Spec{Name: "os", Required: true, DeadLetters: srv.ClientURL() + "/fraudpipe.dead",
		Batching: config.Batching{Count: 10, Period: config.Duration(time.Millisecond)},
		Retry:    config.Retry{Backoff: config.Backoff{InitialInterval: config.Duration(time.Millisecond), MaxInterval: config.Duration(5 * time.Millisecond)}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.WriteBatch(ctx, []*pipeline.Event{sinktest.Event(0, "ok", "A", false), sinktest.Event(1, "bad", "A", true)})
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-ch:
		var dl struct{ Raw, Reason string }
		if err := json.Unmarshal(msg.Data, &dl); err != nil || dl.Reason != "sink_rejected: os: mapper_parsing_exception: bad bad" ||
			msg.Header.Get(nats.MsgIdHdr) != "bad/sink_rejected" {
			t.Errorf("dead letter %s %v: %v", msg.Data, msg.Header, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no dead letter on the subject")
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
