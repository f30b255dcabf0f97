package main

import (
	"errors"
	"io"
	"log/slog"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sinks/audit"
)

func init() {
	registerSink(func(cfg *config.Config, env sinkEnv) ([]pipeline.Sink, error) {
		a := cfg.Output.Audit
		if a.Path == "" {
			return nil, nil
		}
		var names []string
		if cfg.Output.Features {
			names = env.schema.Names()
		}
		s, err := audit.Open(cfg.Resolve(a.Path), audit.Options{Append: a.Append, Features: names, Logger: slog.Default()})
		if err != nil {
			return nil, err
		}
		return []pipeline.Sink{s}, nil
	})
}

func cmdAudit(args []string, stdout, stderr io.Writer) error {
	err := audit.Command(args, stdout, stderr)
	var ue *audit.UsageError
	if errors.As(err, &ue) {
		return &usageError{ue.Msg}
	}
	return err
}
