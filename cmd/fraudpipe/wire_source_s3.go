package main

import (
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sources/s3batch"
)

func init() {
	registerSource("s3", func(cfg *config.Config, env sourceEnv) (pipeline.Source, error) {
		sc := cfg.Source.S3
		bucket, prefix, err := s3batch.ParseURL(sc.URL)
		if err != nil {
			return nil, err
		}
		return s3batch.Open(env.ctx, s3batch.Options{
			Bucket: bucket, Prefix: prefix, Format: sc.Format, Poll: time.Duration(sc.Poll),
			Endpoint: sc.S3.Endpoint, Region: sc.S3.Region, PathStyle: sc.S3.PathStyle,
			AccessKeyID: sc.S3.AccessKeyID, SecretAccessKey: sc.S3.SecretAccessKey.Reveal(),
			SessionToken: sc.S3.SessionToken.Reveal(), BatchSize: cfg.Engine.BatchSize, Logger: env.logger,
		})
	})
}
