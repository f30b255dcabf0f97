package parquet

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// faultyS3 serves gofakes3 and fails the requests that fail says to, counting requests by
// operation.
type faultyS3 struct {
	h    http.Handler
	mu   sync.Mutex
	seen map[string]int
	fail func(op string, n int) bool // n counts the requests of op so far, from 1
}

func operation(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "UploadPart"
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case r.Method == http.MethodPut:
		return "PutObject"
	}
	return r.Method
}

func (f *faultyS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := operation(r)
	f.mu.Lock()
	f.seen[op]++
	n := f.seen[op]
	fail := f.fail != nil && f.fail(op, n)
	f.mu.Unlock()
	if fail {
		io.Copy(io.Discard, r.Body)
		http.Error(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`, http.StatusInternalServerError)
		return
	}
	f.h.ServeHTTP(w, r)
}

func (f *faultyS3) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[op]
}

func newFakeS3(t *testing.T, fail func(op string, n int) bool) (*faultyS3, string) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("archive"); err != nil {
		t.Fatal(err)
	}
	f := &faultyS3{h: gofakes3.New(backend).Server(), seen: map[string]int{}, fail: fail}
	srv := httptest.NewServer(f) // plain http: gofakes3 corrupts chunked uploads over https
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func testS3Options(endpoint string) S3Options {
	return S3Options{Endpoint: endpoint, Region: "us-east-1", PathStyle: true, AccessKeyID: "test", SecretAccessKey: "test",
		PartSize: 64 << 10, MaxAttempts: 3, MaxBackoff: 20 * time.Millisecond}
}

// readS3 reads back every object below prefix.
func readS3(t *testing.T, d *S3) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	list, err := d.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(d.bucket), Prefix: aws.String(d.prefix + "/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list.Contents {
		obj, err := d.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(d.bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(*o.Key, d.prefix+"/")] = b
	}
	return out
}

func TestS3MultipartWithFailures(t *testing.T) {
	// The SDK retries single failures; an outage longer than its attempts fails a whole
	// file, which the sink writes again after its backoff.
	fake, endpoint := newFakeS3(t, func(op string, n int) bool {
		switch op {
		case "UploadPart":
			return n == 2 || (n >= 5 && n <= 7) // 5-7: three in a row, past the SDK's 3 attempts
		case "CompleteMultipartUpload":
			return n == 1
		}
		return false
	})
	ctx := context.Background()
	dest, err := OpenDestination(ctx, "s3://archive/decisions/v1", testS3Options(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	d := dest.(*S3)
	if d.String() != "s3://archive/decisions/v1" {
		t.Errorf("destination %s", d)
	}
	s, err := New(Options{Dest: d, SpoolDir: t.TempDir(), Features: testFeatures, RetryBackoff: time.Millisecond, RowGroupBytes: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	events := testEvents(60000, base, 30000)
	writeAll(t, s, events, 1000)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Retry == 0 {
		t.Errorf("no file was retried: %+v", st)
	}
	if n := fake.count("UploadPart"); n < 8 {
		t.Errorf("%d parts uploaded: not a multipart upload", n)
	}
	if n := fake.count("AbortMultipartUpload"); n == 0 {
		t.Errorf("the failed upload was not aborted")
	}
	objs := readS3(t, d)
	if len(objs) != 2 {
		t.Fatalf("%d objects: %v", len(objs), objs)
	}
	var got []gotRow
	for k, b := range objs {
		if !strings.HasPrefix(k, "dt=2026-11-25/hour=") || !strings.HasSuffix(k, ".parquet") {
			t.Errorf("key %s", k)
		}
		rows, _ := readParquet(t, b, len(testFeatures))
		got = append(got, rows...)
	}
	checkRows(t, got, events, len(testFeatures))
}

func TestS3SmallObjectAndReplay(t *testing.T) {
	fake, endpoint := newFakeS3(t, nil)
	ctx := context.Background()
	dest, err := OpenDestination(ctx, "s3://archive/p", testS3Options(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	events := testEvents(300, base, 1000)
	for range 2 { // the same events twice: the same objects, replaced
		s, err := New(Options{Dest: dest, SpoolDir: t.TempDir(), Features: testFeatures})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, events, 64)
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := fake.count("PutObject"); n != 2 {
		t.Errorf("%d PutObject, want 2 (one small object, twice)", n)
	}
	objs := readS3(t, dest.(*S3))
	if len(objs) != 1 {
		t.Fatalf("%d objects", len(objs))
	}
	for _, b := range objs {
		rows, _ := readParquet(t, b, len(testFeatures))
		checkRows(t, rows, events, len(testFeatures))
	}
}
