// Package s3store keeps fraudpipe checkpoints in S3 or an S3-compatible server
// (s3://bucket/prefix): one object per checkpoint file under prefix/chk-<id>/, and the
// manifest put last, so a checkpoint is complete only once its manifest exists.
package s3store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Options locate the S3 service. Zero values use the standard AWS chain (environment,
// shared config, instance role).
type Options struct {
	Endpoint  string // e.g. http://127.0.0.1:9000 for an S3-compatible server
	Region    string
	PathStyle bool // bucket in the path, as most S3-compatible servers want
	// Credentials, when set, replace the standard chain.
	Credentials aws.CredentialsProvider
	// SSE is the server-side encryption asked for on every object put: "AES256" (SSE-S3),
	// "aws:kms" (SSE-KMS) or "" for the bucket's default.
	SSE string
	// SSEKMSKeyID is the KMS key of SSE "aws:kms"; empty for the AWS-managed key aws/s3.
	SSEKMSKeyID string
}

// Store is a pipeline.CheckpointStore on S3.
type Store struct {
	client *s3.Client
	bucket string
	prefix string // without a trailing slash; may be empty
	sse    types.ServerSideEncryption
	kmsKey *string
}

// Open returns a store for an s3://bucket/prefix URL.
func Open(ctx context.Context, rawURL string, o Options) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("checkpoint store %q: want s3://bucket/prefix", rawURL)
	}
	switch {
	case o.SSE != "" && o.SSE != string(types.ServerSideEncryptionAes256) && o.SSE != string(types.ServerSideEncryptionAwsKms):
		return nil, fmt.Errorf("checkpoint store %s: server-side encryption %q: use AES256, aws:kms or empty", rawURL, o.SSE)
	case o.SSEKMSKeyID != "" && o.SSE != string(types.ServerSideEncryptionAwsKms):
		return nil, fmt.Errorf("checkpoint store %s: a KMS key id needs server-side encryption aws:kms", rawURL)
	}
	var loadOpts []func(*awsconfig.LoadOptions) error
	if o.Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("checkpoint store %s: aws config: %w", rawURL, err)
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
	})
	st := &Store{client: client, bucket: u.Host, prefix: strings.Trim(u.Path, "/"), sse: types.ServerSideEncryption(o.SSE)}
	if o.SSEKMSKeyID != "" {
		st.kmsKey = aws.String(o.SSEKMSKeyID)
	}
	return st, nil
}

func (s *Store) String() string { return "s3://" + s.bucket + "/" + s.prefix }

func (s *Store) key(parts ...string) string {
	return path.Join(append([]string{s.prefix}, parts...)...)
}

func chkName(id uint64) string { return fmt.Sprintf("chk-%012d", id) }

const manifestName = "MANIFEST.json"

// Write puts every file, then the manifest.
func (s *Store) Write(ctx context.Context, m pipeline.Manifest, files map[string][]byte) error {
	m.Version = pipeline.CheckpointVersion
	m.Files = make(map[string]pipeline.FileInfo, len(files))
	for name, data := range files {
		if err := s.put(ctx, s.key(chkName(m.ID), name), data); err != nil {
			return fmt.Errorf("checkpoint %d: %w", m.ID, err)
		}
		m.Files[name] = pipeline.FileInfo{Size: int64(len(data)), CRC32: pipeline.Checksum(data)}
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := s.put(ctx, s.key(chkName(m.ID), manifestName), mb); err != nil {
		return fmt.Errorf("checkpoint %d: manifest: %w", m.ID, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, data []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(data),
		ContentLength:        aws.Int64(int64(len(data))),
		ServerSideEncryption: s.sse, SSEKMSKeyId: s.kmsKey,
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", s.bucket, key, err)
	}
	return nil
}

func (s *Store) get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", s.bucket, key, err)
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// ids lists the checkpoint ids under the prefix, newest first.
func (s *Store) ids(ctx context.Context) ([]uint64, error) {
	prefix := s.prefix
	if prefix != "" {
		prefix += "/"
	}
	seen := map[uint64]bool{}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(prefix + "chk-"),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s, err)
		}
		for _, o := range page.Contents {
			rest := strings.TrimPrefix(aws.ToString(o.Key), prefix+"chk-")
			num, _, _ := strings.Cut(rest, "/")
			if id, err := strconv.ParseUint(num, 10, 64); err == nil {
				seen[id] = true
			}
		}
	}
	ids := make([]uint64, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	return ids, nil
}

// Latest loads the newest checkpoint whose manifest exists and whose files match it.
func (s *Store) Latest(ctx context.Context) (*pipeline.Checkpoint, error) {
	ids, err := s.ids(ctx)
	if err != nil {
		return nil, err
	}
	var skipped []string
	for _, id := range ids {
		c, err := s.load(ctx, id)
		if err == nil {
			return c, nil
		}
		skipped = append(skipped, err.Error())
	}
	if len(skipped) > 0 {
		return nil, fmt.Errorf("%w in %s (skipped: %s)", pipeline.ErrNoCheckpoint, s, strings.Join(skipped, "; "))
	}
	return nil, pipeline.ErrNoCheckpoint
}

func (s *Store) load(ctx context.Context, id uint64) (*pipeline.Checkpoint, error) {
	loc := s.key(chkName(id))
	mb, err := s.get(ctx, s.key(chkName(id), manifestName))
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, fmt.Errorf("checkpoint %s: incomplete (no manifest)", loc)
		}
		return nil, err
	}
	var m pipeline.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("checkpoint %s: manifest: %w", loc, err)
	}
	if m.Version != pipeline.CheckpointVersion {
		return nil, fmt.Errorf("checkpoint %s: format version %d, this build reads %d", loc, m.Version, pipeline.CheckpointVersion)
	}
	c := &pipeline.Checkpoint{Manifest: m, Files: make(map[string][]byte, len(m.Files)), Location: "s3://" + s.bucket + "/" + loc}
	for name, fi := range m.Files {
		data, err := s.get(ctx, s.key(chkName(id), name))
		if err != nil {
			return nil, err
		}
		if int64(len(data)) != fi.Size || pipeline.Checksum(data) != fi.CRC32 {
			return nil, fmt.Errorf("checkpoint %s: file %s is damaged", loc, name)
		}
		c.Files[name] = data
	}
	return c, nil
}

// Prune deletes every object of all but the newest keep checkpoints.
func (s *Store) Prune(ctx context.Context, keep int) error {
	ids, err := s.ids(ctx)
	if err != nil {
		return err
	}
	keep = max(keep, 1)
	for _, id := range ids[min(keep, len(ids)):] {
		p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
			Bucket: aws.String(s.bucket), Prefix: aws.String(s.key(chkName(id)) + "/"),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("prune %s: %w", s, err)
			}
			for _, o := range page.Contents {
				if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: o.Key}); err != nil {
					return fmt.Errorf("prune %s: %w", s, err)
				}
			}
		}
	}
	return nil
}
