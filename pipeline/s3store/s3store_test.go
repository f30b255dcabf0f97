package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// newStore starts an in-process S3 server (gofakes3) on loopback over plain http and
// returns a store on a fresh bucket of it.
func newStore(t *testing.T) *Store {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	s, err := Open(ctx, "s3://checkpoints/prod/eu-1", Options{
		Endpoint: srv.URL, Region: "us-east-1", PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("checkpoints")}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3Store(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Latest(ctx); !errors.Is(err, pipeline.ErrNoCheckpoint) {
		t.Fatalf("empty store: %v", err)
	}
	big := bytes.Repeat([]byte("window state "), 200_000) // 2.6 MB
	for id := uint64(1); id <= 4; id++ {
		files := map[string][]byte{"partition-0000.state": big, "source.pos": []byte(fmt.Sprint(id * 100))}
		if err := s.Write(ctx, pipeline.Manifest{ID: id, Partitions: 1, NextSeq: id * 100}, files); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Latest(ctx)
	if err != nil || c.Manifest.ID != 4 || string(c.Files["source.pos"]) != "400" || !bytes.Equal(c.Files["partition-0000.state"], big) {
		t.Fatalf("latest: %v", err)
	}
	if !strings.HasPrefix(c.Location, "s3://checkpoints/prod/eu-1/chk-000000000004") {
		t.Errorf("location %s", c.Location)
	}
	// A damaged object in the newest: the one before is used.
	if err := s.put(ctx, s.key(chkName(4), "source.pos"), []byte("999")); err != nil {
		t.Fatal(err)
	}
	if c, err = s.Latest(ctx); err != nil || c.Manifest.ID != 3 {
		t.Fatalf("after damage: %v", err)
	}
	// A checkpoint whose manifest is missing is incomplete.
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("checkpoints"), Key: aws.String(s.key(chkName(3), manifestName))}); err != nil {
		t.Fatal(err)
	}
	if c, err = s.Latest(ctx); err != nil || c.Manifest.ID != 2 {
		t.Fatalf("after incomplete: %v", err)
	}
	if err := s.Prune(ctx, 2); err != nil {
		t.Fatal(err)
	}
	ids, err := s.ids(ctx)
	if err != nil || len(ids) != 2 || ids[0] != 4 || ids[1] != 3 {
		t.Errorf("after prune: %v %v", ids, err)
	}
}

func TestOpenRejectsOtherURLs(t *testing.T) {
	for _, u := range []string{"file:///tmp/x", "s3://", "checkpoints"} {
		if _, err := Open(context.Background(), u, Options{}); err == nil {
			t.Errorf("Open(%q) accepted", u)
		}
	}
}
