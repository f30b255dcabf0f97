package file_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks/file"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
)

// TestConformance runs the sink conformance suite on the decisions file: a file cannot be
// taken down or refuse an event, so the outage and dead-letter tests skip.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T, _ pipeline.Sink) sinktest.Instance {
		path := filepath.Join(t.TempDir(), "decisions.ndjson")
		s, err := file.Create(path, file.Options{Kind: file.Decisions})
		if err != nil {
			t.Fatal(err)
		}
		return sinktest.Instance{Sink: s, Delivered: func() []string {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				var d struct{ ID string }
				if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
					t.Fatalf("%s: %v", sc.Bytes(), err)
				}
				ids = append(ids, d.ID)
			}
			return ids
		}}
	})
}
