package s3store

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// putRecorder wraps an S3 server's handler and records the encryption headers of every
// object written.
type putRecorder struct {
	next http.Handler
	mu   sync.Mutex
	puts map[string][2]string // path -> sse, kms key id
}

func (p *putRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && strings.Count(strings.Trim(r.URL.Path, "/"), "/") > 0 {
		p.mu.Lock()
		p.puts[r.URL.Path] = [2]string{r.Header.Get("X-Amz-Server-Side-Encryption"), r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")}
		p.mu.Unlock()
	}
	p.next.ServeHTTP(w, r)
}

// TestServerSideEncryption checks that every checkpoint object is put with the
// encryption asked for, and that the server keeps it with the object.
func TestServerSideEncryption(t *testing.T) {
	for _, tt := range []struct{ sse, key string }{{"", ""}, {"AES256", ""}, {"aws:kms", "alias/fraudpipe"}} {
		t.Run("sse="+tt.sse, func(t *testing.T) {
			rec := &putRecorder{next: gofakes3.New(s3mem.New()).Server(), puts: map[string][2]string{}}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			ctx := context.Background()
			s, err := Open(ctx, "s3://checkpoints/prod", Options{
				Endpoint: srv.URL, Region: "us-east-1", PathStyle: true,
				Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
				SSE:         tt.sse, SSEKMSKeyID: tt.key,
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("checkpoints")}); err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{"partition-0000.state": []byte("state"), "source.pos": []byte("7")}
			if err := s.Write(ctx, pipeline.Manifest{ID: 1, Partitions: 1, NextSeq: 7}, files); err != nil {
				t.Fatal(err)
			}
			if len(rec.puts) != 3 {
				t.Fatalf("%d objects put, want 3 (two files and the manifest): %v", len(rec.puts), rec.puts)
			}
			for path, got := range rec.puts {
				if got != [2]string{tt.sse, tt.key} {
					t.Errorf("PUT %s: encryption headers %q, want %q", path, got, [2]string{tt.sse, tt.key})
				}
			}
			head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("checkpoints"), Key: aws.String("prod/chk-000000000001/MANIFEST.json")})
			if err != nil {
				t.Fatal(err)
			}
			if string(head.ServerSideEncryption) != tt.sse || aws.ToString(head.SSEKMSKeyId) != tt.key {
				t.Errorf("stored object: encryption %q key %q, want %q %q", head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId), tt.sse, tt.key)
			}
			if c, err := s.Latest(ctx); err != nil || string(c.Files["source.pos"]) != "7" {
				t.Errorf("reading back an encrypted checkpoint: %v", err)
			}
		})
	}
}

func TestServerSideEncryptionOptions(t *testing.T) {
	for _, o := range []Options{{SSE: "aes256"}, {SSE: "AES256", SSEKMSKeyID: "k"}, {SSEKMSKeyID: "k"}} {
		if _, err := Open(context.Background(), "s3://b/p", o); err == nil {
			t.Errorf("Open with %+v accepted", o)
		}
	}
}
