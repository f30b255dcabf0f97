package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sources/sourcetest"
)

// TestConformance runs the source conformance suite over a Server on loopback, a new one
// for each subtest. Publishing is POSTing the lines as one NDJSON batch request; the
// suite answers the requests through Respond, as the engine does. Each publish waits for
// the answer of the one before it, so the lines enter the API in order. The API refuses a
// line that is not a transaction with an error entry in the batch's answer (checked here)
// and has no position to restart from.
func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{
		RefusesBadLines: true,
		New:             newConformanceTarget,
	})
}

func newConformanceTarget(t *testing.T) sourcetest.Target {
	srv, err := New(Options{Listen: "127.0.0.1:0", Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return within 30s")
		}
		srv.Close()
	})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	prev := make(chan struct{}) // closed when the previous publish is answered
	close(prev)
	opened := false
	return sourcetest.Target{
		Publish: func(t *testing.T, lines [][]byte) {
			body := append(bytes.Join(lines, []byte("\n")), '\n')
			after, done := prev, make(chan struct{})
			prev = done
			go func() {
				defer close(done)
				<-after
				postBatch(t, hc, srv.URL()+PathBatch, body, lines)
			}()
			t.Cleanup(func() {
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					t.Error("a batch request was not answered within 30s")
				}
			})
		},
		Open: func(t *testing.T) pipeline.Source {
			if opened {
				t.Fatal("the HTTP API cannot be opened a second time: it has no position to restart from")
			}
			opened = true
			return srv
		},
		Release: tr.CloseIdleConnections,
	}
}

// postBatch posts an NDJSON batch. A request answered 200 must carry an error entry for
// each line that is not JSON and a decision for each other; any other answer (503 once the
// suite closed the source) is the suite's to judge from what it read.
func postBatch(t *testing.T, hc *http.Client, url string, body []byte, lines [][]byte) {
	resp, err := hc.Post(url, "application/x-ndjson", bytes.NewReader(body))
	if err != nil {
		return // the server was closed
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return
	}
	var answer struct {
		Decisions []json.RawMessage `json:"decisions"`
		Errors    []struct {
			Index  int    `json:"index"`
			Reason string `json:"reason"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(b, &answer); err != nil {
		t.Errorf("batch answer %.200q: %v", b, err)
		return
	}
	var want, got []int
	for i, l := range lines {
		if !json.Valid(l) {
			want = append(want, i)
		}
	}
	for _, e := range answer.Errors {
		got = append(got, e.Index)
		if e.Reason != pipeline.ReasonInvalidJSON {
			t.Errorf("line %d refused with reason %q, want %q", e.Index, e.Reason, pipeline.ReasonInvalidJSON)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("the batch answer refused lines %v, want %v (the lines that are not JSON)", got, want)
	}
	if len(answer.Decisions) != len(lines)-len(want) {
		t.Errorf("the batch answer holds %d decisions for %d transactions", len(answer.Decisions), len(lines)-len(want))
	}
}
