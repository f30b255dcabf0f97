package main

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/pipeline/s3store"
)

// openCheckpointStore opens the store that checkpoint.dir names: s3://bucket/prefix, or a
// local folder (a path or file:// URL, relative to the config file).
func openCheckpointStore(ctx context.Context, cfg *config.Config) (pipeline.CheckpointStore, error) {
	c := cfg.Checkpoint
	if strings.HasPrefix(c.Dir, "s3://") {
		o := s3store.Options{Endpoint: c.S3.Endpoint, Region: c.S3.Region, PathStyle: c.S3.PathStyle,
			SSE: c.S3.SSE, SSEKMSKeyID: c.S3.SSEKMSKeyID}
		if c.S3.AccessKeyID != "" {
			o.Credentials = credentials.NewStaticCredentialsProvider(c.S3.AccessKeyID, c.S3.SecretAccessKey.Reveal(), c.S3.SessionToken.Reveal())
		}
		return s3store.Open(ctx, c.Dir, o)
	}
	return pipeline.NewDirStore(cfg.Resolve(strings.TrimPrefix(c.Dir, "file://")))
}
