package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sinks/parquet"
)

func init() { registerSink(buildParquet) }

// buildParquet returns the Parquet archive sink when output.parquet.path is set.
func buildParquet(cfg *config.Config, env sinkEnv) ([]pipeline.Sink, error) {
	pc := cfg.Output.Parquet
	if pc.Path == "" {
		return nil, nil
	}
	switch {
	case pc.SpoolDir == "":
		return nil, fmt.Errorf("output.parquet.spool_dir: needed to make rows durable between flushes")
	case pc.RollSizeMB <= 0:
		return nil, fmt.Errorf("output.parquet.roll_size_mb: must be 1 or more, got %d", pc.RollSizeMB)
	case pc.RollAge <= 0:
		return nil, fmt.Errorf("output.parquet.roll_age: must be longer than 0, got %s", pc.RollAge)
	case pc.RowGroupMB <= 0:
		return nil, fmt.Errorf("output.parquet.row_group_mb: must be 1 or more, got %d", pc.RowGroupMB)
	case pc.PartSizeMB < 5:
		return nil, fmt.Errorf("output.parquet.part_size_mb: S3 parts are 5 MiB or more, got %d", pc.PartSizeMB)
	case pc.Retries <= 0:
		return nil, fmt.Errorf("output.parquet.retries: must be 1 or more, got %d", pc.Retries)
	}
	// A local folder, bare or as a file:// URL, is relative to the config file.
	path := pc.Path
	if rest, ok := strings.CutPrefix(path, "file://"); ok {
		path = "file://" + cfg.Resolve(rest)
	} else if !strings.Contains(path, "://") {
		path = cfg.Resolve(path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dest, err := parquet.OpenDestination(ctx, path, parquetS3Options(pc))
	if err != nil {
		return nil, fmt.Errorf("output.parquet.path: %w", err)
	}
	s, err := parquet.New(parquet.Options{
		Dest:          dest,
		SpoolDir:      cfg.Resolve(pc.SpoolDir),
		Features:      env.schema.Names(),
		RollBytes:     int64(pc.RollSizeMB) << 20,
		RollAge:       time.Duration(pc.RollAge),
		RowGroupBytes: int64(pc.RowGroupMB) << 20,
		Retries:       pc.Retries,
		Compression:   parquet.Compression(pc.Compression),
		Metrics:       env.metrics,
		Log:           slog.Default(),
	})
	if err != nil {
		return nil, fmt.Errorf("output.parquet: %w", err)
	}
	return []pipeline.Sink{s}, nil
}

// parquetS3Options are the S3 settings of output.parquet.
func parquetS3Options(pc config.ParquetOutput) parquet.S3Options {
	return parquet.S3Options{
		Endpoint:        pc.S3.Endpoint,
		Region:          pc.S3.Region,
		PathStyle:       pc.S3.PathStyle,
		AccessKeyID:     pc.S3.AccessKeyID,
		SecretAccessKey: pc.S3.SecretAccessKey.Reveal(),
		SessionToken:    pc.S3.SessionToken.Reveal(),
		PartSize:        int64(pc.PartSizeMB) << 20,
		SSE:             pc.S3.SSE,
		SSEKMSKeyID:     pc.S3.SSEKMSKeyID,
	}
}
