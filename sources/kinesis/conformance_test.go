package kinesis

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sources/sourcetest"
)

// TestConformance runs the source conformance suite over one kinesalite emulator, a new
// stream of four shards for each subtest. Each target has a client of its own, so the
// shutdown test can close its idle connections before counting goroutines.
func TestConformance(t *testing.T) {
	e := startEmulator(t)
	var streams atomic.Int64
	sourcetest.Run(t, sourcetest.Harness{
		Positions:       true,
		PerKeyOrderOnly: true,
		New: func(t *testing.T) sourcetest.Target {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			client := kinesis.NewFromConfig(aws.Config{
				Region:      "us-east-1",
				Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
				HTTPClient:  &http.Client{Transport: tr},
			}, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(e.endpoint) })
			own := &emulator{endpoint: e.endpoint, client: client}
			name := fmt.Sprintf("conformance-%d", streams.Add(1))
			own.createStream(t, name, 4)
			return sourcetest.Target{
				Publish: func(t *testing.T, lines [][]byte) {
					if err := Put(context.Background(), client, name, lines, nil); err != nil {
						t.Fatal(err)
					}
				},
				Open: func(t *testing.T) pipeline.Source {
					s, err := Open(context.Background(), Options{Stream: name, Client: client, BatchSize: 16, Limit: 50})
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				Release: tr.CloseIdleConnections,
			}
		},
	})
}
