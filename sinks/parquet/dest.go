package parquet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// Destination stores finished Parquet objects under keys such as
// "dt=2026-11-25/hour=10/part-00000000000000000042-1f2e3d4c5b6a7988.parquet".
// Writing a key that exists replaces the object, which is what makes a replay idempotent.
type Destination interface {
	// Create starts the object key. Nothing is visible under key until Commit returns nil.
	Create(ctx context.Context, key string) (ObjectWriter, error)
	// String names the destination in errors and logs (a URL, never with credentials).
	String() string
}

// ObjectWriter receives the bytes of one object, in order.
type ObjectWriter interface {
	io.Writer
	// Commit makes the object durable and visible under its key.
	Commit() error
	// Abort discards what was written; the key keeps its earlier object, if any.
	Abort() error
}

// Dir is a Destination in a local directory: objects are written under a temporary name,
// fsynced, renamed into place, and their directory fsynced.
type Dir struct {
	Root string
}

// String returns the directory as a file URL.
func (d Dir) String() string { return "file://" + d.Root }

// Create opens a temporary file next to the object's final path.
func (d Dir) Create(_ context.Context, key string) (ObjectWriter, error) {
	final := filepath.Join(d.Root, filepath.FromSlash(key))
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	// The temporary name starts with a dot and does not end in .parquet, so that readers
	// globbing *.parquet never see a partial file. It is fixed per key: a crash leaves at
	// most one per key, overwritten by the retry.
	tmp := filepath.Join(dir, "."+filepath.Base(final)+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return &dirWriter{f: f, bw: bufio.NewWriterSize(f, 1<<20), tmp: tmp, final: final}, nil
}

type dirWriter struct {
	f          *os.File
	bw         *bufio.Writer
	tmp, final string
}

// Write buffers p for the temporary file.
func (w *dirWriter) Write(p []byte) (int, error) { return w.bw.Write(p) }

// Commit flushes, fsyncs and renames the temporary file into place, then fsyncs its folder.
func (w *dirWriter) Commit() error {
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.tmp, w.final)
	}
	if err == nil {
		err = syncDir(filepath.Dir(w.final))
	}
	if err != nil {
		os.Remove(w.tmp)
		return fmt.Errorf("parquet: write %s: %w", w.final, err)
	}
	return nil
}

// Abort removes the temporary file.
func (w *dirWriter) Abort() error {
	w.f.Close()
	return os.Remove(w.tmp)
}

// S3Options configure an S3 destination. Empty fields take the standard AWS chain
// (environment, shared config and credentials files, instance roles).
type S3Options struct {
	Endpoint        string // e.g. http://127.0.0.1:9000 for an S3-compatible server; empty for AWS
	Region          string
	PathStyle       bool // bucket in the path, not the host name: most S3-compatible servers want it
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	PartSize        int64         // multipart part size; default 8 MiB, at least 5 MiB on AWS
	MaxAttempts     int           // attempts per request, the SDK's retryer; default 5
	MaxBackoff      time.Duration // longest wait between a request's attempts; default 20s
	// SSE is the server-side encryption asked for on every object: "AES256" (SSE-S3),
	// "aws:kms" (SSE-KMS) or "" for the bucket's default.
	SSE string
	// SSEKMSKeyID is the KMS key of SSE "aws:kms"; empty for the AWS-managed key aws/s3.
	SSEKMSKeyID string
}

// OpenDestination parses a destination URL: file://DIR, a plain path, or s3://bucket/prefix.
func OpenDestination(ctx context.Context, rawURL string, o S3Options) (Destination, error) {
	if !strings.Contains(rawURL, "://") {
		if rawURL == "" {
			return nil, fmt.Errorf("parquet: empty destination")
		}
		return Dir{Root: rawURL}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parquet: destination %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		p := u.Path
		if u.Host != "" && u.Host != "localhost" {
			p = u.Host + p // file://relative/dir
		}
		if p == "" {
			return nil, fmt.Errorf("parquet: destination %q has no directory", rawURL)
		}
		return Dir{Root: filepath.FromSlash(p)}, nil
	case "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("parquet: destination %q has no bucket", rawURL)
		}
		switch {
		case o.SSE != "" && o.SSE != string(types.ServerSideEncryptionAes256) && o.SSE != string(types.ServerSideEncryptionAwsKms):
			return nil, fmt.Errorf("parquet: destination %s: server-side encryption %q: use AES256, aws:kms or empty", rawURL, o.SSE)
		case o.SSEKMSKeyID != "" && o.SSE != string(types.ServerSideEncryptionAwsKms):
			return nil, fmt.Errorf("parquet: destination %s: a KMS key id needs server-side encryption aws:kms", rawURL)
		}
		d, err := NewS3(ctx, u.Host, strings.Trim(u.Path, "/"), o)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		if o.SSE != "" {
			d.client = s3.New(d.client.Options(), withSSE(types.ServerSideEncryption(o.SSE), o.SSEKMSKeyID))
		}
		return d, nil
	}
	return nil, fmt.Errorf("parquet: destination %q: scheme %q is not file or s3", rawURL, u.Scheme)
}

// withSSE is an S3 client option that asks for server-side encryption on every object the
// client creates: PutObject and CreateMultipartUpload (whose parts inherit it). A request
// that names its own encryption keeps it.
func withSSE(sse types.ServerSideEncryption, kmsKey string) func(*s3.Options) {
	var key *string
	if kmsKey != "" {
		key = aws.String(kmsKey)
	}
	add := middleware.InitializeMiddlewareFunc("fraudpipeServerSideEncryption", func(
		ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler,
	) (middleware.InitializeOutput, middleware.Metadata, error) {
		switch p := in.Parameters.(type) {
		case *s3.PutObjectInput:
			if p.ServerSideEncryption == "" {
				c := *p
				c.ServerSideEncryption, c.SSEKMSKeyId = sse, key
				in.Parameters = &c
			}
		case *s3.CreateMultipartUploadInput:
			if p.ServerSideEncryption == "" {
				c := *p
				c.ServerSideEncryption, c.SSEKMSKeyId = sse, key
				in.Parameters = &c
			}
		}
		return next.HandleInitialize(ctx, in)
	})
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(add, middleware.Before)
		})
	}
}
