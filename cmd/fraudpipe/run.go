package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	filesource "github.com/fraudpipe/fraudpipe/sources/file"
)

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "--config FILE",
		`Runs the pipeline that the config describes until its source ends or the process
gets SIGINT or SIGTERM, which stop reading and drain the work in flight before exiting.`, stdout)
	cfgPath := fs.String("config", "", "config file (required)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return &usageError{"--config is required"}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var path string
	switch cfg.Source.Type {
	case "file":
		if cfg.Source.Path == "" {
			return fmt.Errorf("%s: source.path is required for source type file", *cfgPath)
		}
		path = cfg.Resolve(cfg.Source.Path)
	case "stdin":
		path = "-"
	default:
		return fmt.Errorf("%s: source type %q is not supported by run", *cfgPath, cfg.Source.Type)
	}
	src, err := filesource.Open(path, cfg.Engine.BatchSize)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := build(cfg, outputs{
		decisions:   cfg.Resolve(cfg.Output.Decisions.Path),
		deadLetters: cfg.Resolve(cfg.Output.DeadLetters.Path),
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runErr := st.engine.Run(ctx, src)
	closeErr := st.close(context.Background())
	if runErr != nil {
		return runErr
	}
	if closeErr != nil {
		return closeErr
	}
	writeSummary(stderr, "run", st.engine.Stats(), cfg.Output.DeadLetters.Path)
	return nil
}
