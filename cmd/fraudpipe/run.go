package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/scorers/rules"
)

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "--config FILE",
		`Runs the pipeline that the config describes until its source ends or the process
gets SIGINT or SIGTERM, which stop reading, drain the work in flight and take a final
checkpoint before exiting. With checkpoints on (the default), a restarted process resumes
from the newest complete checkpoint: windows, source position and committed output as
they were, so nothing is lost or posted twice.`, stdout)
	cfgPath := fs.String("config", "", "config file (required)")
	from := fs.String("from-checkpoint", "", "resume from this checkpoint folder instead of the newest one in checkpoint.dir")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (for go tool pprof)")
	instance := fs.String("instance", "", "this instance among N sharing a partitioned stream, as i/N (overrides scale.instance)")
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
	if *instance != "" {
		cfg.Scale.Instance = *instance
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("--instance %s: %w", *instance, err)
		}
	}
	if cfg.Source.Type == "file" && cfg.Source.Path == "" {
		return fmt.Errorf("%s: source.path is required for source type file", *cfgPath)
	}
	logger := newLogger(cfg.Log, stderr)
	slog.SetDefault(logger)
	out := outputs{
		decisions:   cfg.Resolve(cfg.Output.Decisions.Path),
		deadLetters: cfg.Resolve(cfg.Output.DeadLetters.Path),
		logger:      logger,
		liveRules:   true,
	}
	if cfg.Checkpoint.Enabled {
		if out.checkpoints, err = openCheckpointStore(context.Background(), cfg); err != nil {
			return err
		}
		scale, err := scaleOf(cfg)
		if err != nil {
			return err
		}
		if scale != nil {
			if out.checkpoints, out.peers, err = instanceStores(context.Background(), out.checkpoints, scale); err != nil {
				return err
			}
			logger = logger.With("instance", scale.String())
			slog.SetDefault(logger)
			out.logger = logger
			logger.Info("scaled out", "instance", scale.String(), "partitions", scale.partitions, "peers", len(out.peers))
		}
	}
	reg := newRegistry()
	out.metrics, out.registry = pipeline.NewMetrics(reg), reg
	var adm *admin
	if cfg.Admin.Listen != "" {
		if adm, err = startAdminConfig(cfg.Admin, cfg.Resolve, reg, logger); err != nil {
			return err
		}
		defer adm.stop()
	}
	st, err := build(cfg, out)
	if err != nil {
		return err
	}
	if *from != "" {
		c, err := pipeline.LoadCheckpointDir(*from)
		if err == nil {
			err = st.engine.RestoreFrom(c)
		}
		if err != nil {
			st.close(context.Background())
			return err
		}
	} else if _, err := st.engine.Restore(context.Background()); err != nil {
		st.close(context.Background())
		return err
	}
	if st.enrich != nil {
		st.enrich.Start(context.Background()) // reload changed reference files while running
	}
	stopReload := reloadOnChange(cfg, st, logger)
	defer stopReload()
	env := sourceEnv{ctx: context.Background(), cfgPath: *cfgPath, logger: logger, registry: reg, schema: st.engine.Schema()}
	if cfg.Output.Features {
		env.output = st.engine.Schema().Names()
	}
	src, err := openSource(cfg, env)
	if err != nil {
		st.close(context.Background())
		return err
	}
	defer src.Close()
	if adm != nil {
		adm.ready.Store(true) // state restored, source connected, about to read
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			st.close(context.Background())
			return err
		}
		defer stopProfile()
	}
	if err := st.runUntilSignal(src); err != nil {
		return err
	}
	writeSummary(stderr, "run", st.engine.Stats(), cfg.Output.DeadLetters.Path)
	return nil
}

// reloadOnChange puts a changed rule file in force every scoring.rules.reload_every, and
// reloads the rules and the enrichment files at once on SIGHUP. It returns the function
// that stops it.
func reloadOnChange(cfg *config.Config, st *stack, logger *slog.Logger) (stop func()) {
	live, _ := st.rules.(*rules.Live)
	ctx, cancel := context.WithCancel(context.Background())
	if live != nil && cfg.Scoring.Rules.ReloadEvery > 0 {
		go live.Watch(ctx, time.Duration(cfg.Scoring.Rules.ReloadEvery))
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: reloading the rule file and the reference files")
				if live != nil {
					live.Reload()
				}
				if st.enrich != nil {
					st.enrich.Reload()
				}
			}
		}
	}()
	return func() { signal.Stop(hup); cancel() }
}
