package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/fraudpipe/fraudpipe/pipeline/awsconf"
)

// S3 is a Destination in an S3 bucket below a key prefix. Each object is uploaded with a
// multipart upload, one part at a time as the Parquet writer produces it, so at most one part
// of a file is in memory; an object smaller than one part is sent with one PutObject.
type S3 struct {
	client   *s3.Client
	bucket   string
	prefix   string
	partSize int64
}

// DefaultPartSize is the multipart part size when S3Options.PartSize is 0.
const DefaultPartSize = 8 << 20

// NewS3 returns an S3 destination. Credentials, region and endpoint come from o where set,
// else from the standard AWS chain.
func NewS3(ctx context.Context, bucket, prefix string, o S3Options) (*S3, error) {
	cfg, err := awsconf.Load(ctx, "parquet", awsconf.Static{
		Region: o.Region, AccessKeyID: o.AccessKeyID, SecretAccessKey: o.SecretAccessKey, SessionToken: o.SessionToken})
	if err != nil {
		return nil, err
	}
	attempts := o.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			// S3-compatible servers rarely support the flexible checksums that the SDK
			// otherwise sends with every upload (and some reject them).
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		so.UsePathStyle = o.PathStyle
		so.Retryer = retry.NewStandard(func(ro *retry.StandardOptions) {
			ro.MaxAttempts = attempts
			if o.MaxBackoff > 0 {
				ro.MaxBackoff = o.MaxBackoff
			}
			// Failed uploads are retried as a whole file by the sink, with its own backoff;
			// the SDK's retry quota would only turn an outage into quota errors.
			ro.RateLimiter = ratelimit.None
		})
	})
	ps := o.PartSize
	if ps <= 0 {
		ps = DefaultPartSize
	}
	return &S3{client: client, bucket: bucket, prefix: prefix, partSize: ps}, nil
}

// String returns the destination URL.
func (d *S3) String() string { return "s3://" + path.Join(d.bucket, d.prefix) }

// Create starts an upload of key below the prefix. The multipart upload itself begins with
// the first full part.
func (d *S3) Create(ctx context.Context, key string) (ObjectWriter, error) {
	return &s3Writer{ctx: ctx, d: d, key: path.Join(d.prefix, key), buf: make([]byte, 0, d.partSize)}, nil
}

type s3Writer struct {
	ctx      context.Context
	d        *S3
	key      string
	buf      []byte
	uploadID *string
	parts    []types.CompletedPart
	err      error
}

// Write buffers p and uploads each full part.
func (w *s3Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		n += c
		if len(w.buf) == cap(w.buf) {
			if err := w.uploadPart(); err != nil {
				w.err = err
				return n, err
			}
		}
	}
	return n, nil
}

func (w *s3Writer) uploadPart() error {
	if w.uploadID == nil {
		out, err := w.d.client.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{
			Bucket:      aws.String(w.d.bucket),
			Key:         aws.String(w.key),
			ContentType: aws.String("application/vnd.apache.parquet"),
		})
		if err != nil {
			return fmt.Errorf("parquet: s3 create multipart upload %s: %w", w.key, err)
		}
		w.uploadID = out.UploadId
	}
	num := int32(len(w.parts) + 1)
	out, err := w.d.client.UploadPart(w.ctx, &s3.UploadPartInput{
		Bucket:        aws.String(w.d.bucket),
		Key:           aws.String(w.key),
		UploadId:      w.uploadID,
		PartNumber:    aws.Int32(num),
		Body:          bytes.NewReader(w.buf), // seekable: the SDK's retries resend it
		ContentLength: aws.Int64(int64(len(w.buf))),
	})
	if err != nil {
		return fmt.Errorf("parquet: s3 upload part %d of %s: %w", num, w.key, err)
	}
	w.parts = append(w.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
	w.buf = w.buf[:0]
	return nil
}

// Commit uploads the last part and completes the upload (or puts a small object whole).
func (w *s3Writer) Commit() error {
	if w.err != nil {
		return errors.Join(w.err, w.Abort())
	}
	if w.uploadID == nil {
		_, err := w.d.client.PutObject(w.ctx, &s3.PutObjectInput{
			Bucket:        aws.String(w.d.bucket),
			Key:           aws.String(w.key),
			Body:          bytes.NewReader(w.buf),
			ContentLength: aws.Int64(int64(len(w.buf))),
			ContentType:   aws.String("application/vnd.apache.parquet"),
		})
		if err != nil {
			return fmt.Errorf("parquet: s3 put %s: %w", w.key, err)
		}
		return nil
	}
	if len(w.buf) > 0 {
		if err := w.uploadPart(); err != nil {
			return errors.Join(err, w.Abort())
		}
	}
	_, err := w.d.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(w.d.bucket),
		Key:             aws.String(w.key),
		UploadId:        w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
	})
	if err != nil {
		return errors.Join(fmt.Errorf("parquet: s3 complete upload %s: %w", w.key, err), w.Abort())
	}
	return nil
}

// Abort aborts the multipart upload, if one was started, so S3 drops its parts.
func (w *s3Writer) Abort() error {
	if w.uploadID == nil {
		return nil
	}
	_, err := w.d.client.AbortMultipartUpload(context.WithoutCancel(w.ctx), &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(w.d.bucket),
		Key:      aws.String(w.key),
		UploadId: w.uploadID,
	})
	w.uploadID = nil
	if err != nil {
		return fmt.Errorf("parquet: s3 abort upload %s: %w", w.key, err)
	}
	return nil
}
