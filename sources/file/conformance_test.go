package file

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sources/sourcetest"
)

// TestConformance runs the source conformance suite over a temporary NDJSON file, plain and
// gzip (each publish appends a gzip member); small batches make the restart test stop
// part-way.
func TestConformance(t *testing.T) {
	t.Run("plain", func(t *testing.T) { sourcetest.Run(t, harness(false)) })
	t.Run("gzip", func(t *testing.T) { sourcetest.Run(t, harness(true)) })
}

func harness(gz bool) sourcetest.Harness {
	return sourcetest.Harness{
		Finite:    true,
		Positions: true,
		New: func(t *testing.T) sourcetest.Target {
			path := filepath.Join(t.TempDir(), "in.ndjson")
			return sourcetest.Target{
				Publish: func(t *testing.T, lines [][]byte) {
					f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
					if err != nil {
						t.Fatal(err)
					}
					var data []byte
					for _, l := range lines {
						data = append(append(data, l...), '\n')
					}
					if gz {
						zw := gzip.NewWriter(f)
						if _, err := zw.Write(data); err != nil {
							t.Fatal(err)
						}
						if err := zw.Close(); err != nil {
							t.Fatal(err)
						}
					} else if _, err := f.Write(data); err != nil {
						t.Fatal(err)
					}
					if err := f.Close(); err != nil {
						t.Fatal(err)
					}
				},
				Open: func(t *testing.T) pipeline.Source {
					s, err := Open(path, 16)
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
			}
		},
	}
}
