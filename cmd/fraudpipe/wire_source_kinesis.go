package main

import (
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sources/kinesis"
)

func init() {
	registerSource("kinesis", func(cfg *config.Config, env sourceEnv) (pipeline.Source, error) {
		k := cfg.Source.Kinesis
		src, err := kinesis.Open(env.ctx, kinesis.Options{
			Stream: k.Stream, Endpoint: k.Endpoint, Region: k.Region,
			AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey.Reveal(), SessionToken: k.SessionToken.Reveal(),
			StartAt: k.StartAt, Limit: k.Limit, PollInterval: time.Duration(k.PollInterval), ShardRefresh: time.Duration(k.ShardRefresh),
			BatchSize: cfg.Engine.BatchSize, Logger: env.logger,
		})
		if err != nil {
			return nil, err
		}
		registerLag(env.registry, "fraudpipe_source_behind_seconds",
			"How far the source is behind the newest record of its stream (Kinesis MillisBehindLatest, the largest over shards), in seconds.",
			src.Name(), func() float64 { return float64(src.MillisBehind()) / 1000 })
		return src, nil
	})
}
