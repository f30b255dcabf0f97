package s3batch

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sources/sourcetest"
)

// TestConformance runs the source conformance suite over one in-process S3 server
// (gofakes3), a new bucket for each subtest, each publish an NDJSON object of its own; as
// a batch source (listed once) and as a live one (polling). Each target has a client of its
// own, so the shutdown test can close its idle connections before counting goroutines.
func TestConformance(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	var buckets atomic.Int64
	harness := func(poll time.Duration) sourcetest.Harness {
		return sourcetest.Harness{
			Finite:    poll == 0,
			Positions: true,
			New: func(t *testing.T) sourcetest.Target {
				tr := http.DefaultTransport.(*http.Transport).Clone()
				client := s3.NewFromConfig(aws.Config{
					Region:      "us-east-1",
					Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
					HTTPClient:  &http.Client{Transport: tr},
				}, func(o *s3.Options) {
					o.BaseEndpoint = aws.String(srv.URL)
					o.UsePathStyle = true
				})
				name := fmt.Sprintf("conformance-%d", buckets.Add(1))
				if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
					t.Fatal(err)
				}
				objects := 0
				return sourcetest.Target{
					Publish: func(t *testing.T, lines [][]byte) {
						objects++
						body := append(bytes.Join(lines, []byte("\n")), '\n')
						_, err := client.PutObject(context.Background(), &s3.PutObjectInput{
							Bucket: aws.String(name), Key: aws.String(fmt.Sprintf("in/part-%04d.ndjson", objects)),
							Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
						})
						if err != nil {
							t.Fatal(err)
						}
					},
					Open: func(t *testing.T) pipeline.Source {
						s, err := Open(context.Background(), Options{Bucket: name, Prefix: "in/", Client: client, Poll: poll, BatchSize: 16})
						if err != nil {
							t.Fatal(err)
						}
						return s
					},
					Release: tr.CloseIdleConnections,
				}
			},
		}
	}
	t.Run("batch", func(t *testing.T) { sourcetest.Run(t, harness(0)) })
	t.Run("live", func(t *testing.T) { sourcetest.Run(t, harness(50*time.Millisecond)) })
}
