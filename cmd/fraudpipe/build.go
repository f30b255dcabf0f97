package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/pipeline/window"
	"github.com/fraudpipe/fraudpipe/scorers/enrich"
	"github.com/fraudpipe/fraudpipe/scorers/history"
	"github.com/fraudpipe/fraudpipe/scorers/remote"
	"github.com/fraudpipe/fraudpipe/scorers/rules"
	"github.com/fraudpipe/fraudpipe/scorers/terminal"
	"github.com/fraudpipe/fraudpipe/scorers/velocity"
	filesink "github.com/fraudpipe/fraudpipe/sinks/file"
	"github.com/prometheus/client_golang/prometheus"
)

// loadConfig reads the config at path, or returns the built-in default when path is empty.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// scoring is what scorersFor builds: the schema, the per-partition scorers and the
// ordered (cross-card) ones.
type scoring struct {
	schema  *pipeline.FeatureSchema
	scorers []pipeline.ScorerFactory
	ordered []pipeline.OrderedScorer
	enrich  *enrich.Factory // nil when off; run starts its reloading
}

// scorersFor builds the feature scorers a config asks for, declaring their features.
func scorersFor(cfg *config.Config) (scoring, error) {
	schema := pipeline.NewFeatureSchema()
	var scorers []pipeline.ScorerFactory
	var ordered []pipeline.OrderedScorer
	var en *enrich.Factory
	if ec := cfg.Scoring.Enrich; ec.Enabled {
		res := func(p string) string {
			if p == "" {
				return ""
			}
			return cfg.Resolve(p)
		}
		lists := func(l config.ListFiles) enrich.ListFiles {
			return enrich.ListFiles{Cards: res(l.Cards), Merchants: res(l.Merchants), Devices: res(l.Devices), IPs: res(l.IPs)}
		}
		var err error
		en, err = enrich.New(enrich.Config{
			Customers: res(ec.Customers), Merchants: res(ec.Merchants), Countries: res(ec.Countries),
			Allow: lists(ec.Allow), Deny: lists(ec.Deny),
			ReloadEvery: time.Duration(ec.ReloadEvery), TTL: time.Duration(ec.TTL), MaxCards: cfg.Windows.MaxCards,
		}, schema, slog.Default())
		if err != nil {
			return scoring{}, err
		}
		scorers = append(scorers, en)
	}
	if cfg.Scoring.Velocity.Enabled {
		wc := window.Config{MaxEvents: cfg.Windows.MaxEvents, TTL: time.Duration(cfg.Windows.TTL)}
		for _, d := range cfg.Windows.Durations {
			wc.Durations = append(wc.Durations, time.Duration(d))
		}
		v, err := velocity.New(velocity.Config{
			Windows:    wc,
			NightStart: cfg.Scoring.Velocity.NightStart,
			NightEnd:   cfg.Scoring.Velocity.NightEnd,
			MaxCards:   cfg.Windows.MaxCards,
		}, schema)
		if err != nil {
			return scoring{}, err
		}
		scorers = append(scorers, v)
	}
	if cfg.Scoring.History.Enabled {
		h, err := history.New(history.Config{TTL: time.Duration(cfg.Windows.TTL), MaxCards: cfg.Windows.MaxCards}, schema)
		if err != nil {
			return scoring{}, err
		}
		scorers = append(scorers, h)
	}
	if tc := cfg.Scoring.Terminal; tc.Enabled {
		c := terminal.Config{Delay: time.Duration(tc.Delay)}
		for _, w := range tc.Windows {
			c.Windows = append(c.Windows, time.Duration(w))
		}
		t, err := terminal.New(c, schema)
		if err != nil {
			return scoring{}, err
		}
		ordered = append(ordered, t)
	}
	scorers, err := appendModel(cfg, schema, scorers)
	return scoring{schema: schema, scorers: scorers, ordered: ordered, enrich: en}, err
}

// rulesFor compiles the config's rule file, or the built-in rules, against schema.
func rulesFor(cfg *config.Config, schema *pipeline.FeatureSchema) (*rules.RuleSet, error) {
	switch f := cfg.Scoring.Rules.File; {
	case f != "":
		return rules.Load(cfg.Resolve(f), schema)
	case !cfg.Scoring.Velocity.Enabled:
		return nil, fmt.Errorf("the built-in rules read velocity features: with scoring.velocity.enabled false, set scoring.rules.file to rules of your own")
	case !cfg.Scoring.Enrich.Enabled:
		return nil, fmt.Errorf("the built-in rules read enrichment features (deny_listed, speed_kmh, ...): with scoring.enrich.enabled false, set scoring.rules.file to rules of your own")
	default:
		return rules.Default(schema)
	}
}

// stack is an engine and what it owns, closed together.
type stack struct {
	engine *pipeline.Engine
	ledger pipeline.Ledger
	sinks  []pipeline.Sink
	dead   pipeline.Sink
	rules  pipeline.ScorerFactory // *rules.RuleSet, or *rules.Live for a file fraudpipe run reloads
	enrich *enrich.Factory
}

// outputs says where a stack writes; empty paths discard.
type outputs struct {
	decisions   string
	deadLetters string
	ledgerPath  string // overrides the config's ledger path when set
	checkpoints pipeline.CheckpointStore
	peers       []pipeline.CheckpointStore // other instances' checkpoint stores (scale.instance)
	liveRules   bool                       // a rule file may be reloaded while running (fraudpipe run)
	logger      *slog.Logger
	metrics     *pipeline.Metrics
	registry    prometheus.Registerer // where plug-ins register their metrics; nil: nowhere
	// extra returns more sinks once the schema is known (the features command's CSV).
	extra func(schema *pipeline.FeatureSchema) ([]pipeline.Sink, error)
}

// build wires the engine that cfg describes.
func build(cfg *config.Config, out outputs) (_ *stack, err error) {
	st := &stack{}
	defer func() {
		if err != nil {
			st.close(context.Background())
		}
	}()
	sc, err := scorersFor(cfg)
	if err != nil {
		return nil, err
	}
	schema, scorers := sc.schema, sc.scorers
	st.enrich = sc.enrich
	if out.registry != nil && sc.enrich != nil {
		if err := sc.enrich.Register(out.registry); err != nil {
			return nil, err
		}
	}
	if out.registry != nil {
		for _, f := range scorers {
			if v, ok := f.(*velocity.Factory); ok {
				if err := v.Register(out.registry); err != nil {
					return nil, err
				}
			}
			if r, ok := f.(*remote.Factory); ok {
				if err := r.Register(out.registry); err != nil {
					return nil, err
				}
			}
		}
	}
	if f := cfg.Scoring.Rules.File; f != "" && out.liveRules {
		if st.rules, err = rules.NewLive(cfg.Resolve(f), schema, out.logger); err != nil {
			return nil, err
		}
	} else {
		rs, err := rulesFor(cfg, schema)
		if err != nil {
			return nil, err
		}
		st.rules = rs
	}
	scorers = append(scorers, st.rules)

	if st.ledger, err = openLedger(cfg, out.ledgerPath); err != nil {
		return nil, err
	}
	if out.decisions != "" {
		var names []string
		if cfg.Output.Features {
			names = schema.Names()
		}
		s, err := filesink.Create(out.decisions, filesink.Options{Kind: filesink.Decisions, Features: names})
		if err != nil {
			return nil, err
		}
		st.sinks = append(st.sinks, s)
	}
	if out.deadLetters != "" {
		s, err := filesink.Create(out.deadLetters, filesink.Options{Kind: filesink.DeadLetters})
		if err != nil {
			return nil, err
		}
		st.dead = s
	}
	sinkMetrics, err := newSinkMetrics(out.registry)
	if err != nil {
		return nil, err
	}
	for _, b := range sinkBuilders {
		sinks, err := b(cfg, sinkEnv{schema: schema, metrics: sinkMetrics})
		if err != nil {
			return nil, err
		}
		st.sinks = append(st.sinks, sinks...)
	}
	if out.extra != nil {
		sinks, err := out.extra(schema)
		if err != nil {
			return nil, err
		}
		st.sinks = append(st.sinks, sinks...)
	}
	scale, err := scaleOf(cfg)
	if err != nil {
		return nil, err
	}
	var groups []int
	instance := ""
	if scale != nil {
		groups, instance = scale.partitions, scale.String()
	}
	st.engine, err = pipeline.NewEngine(pipeline.EngineOptions{
		Config: pipeline.EngineConfig{
			Partitions:     cfg.Engine.Partitions,
			QueueBatches:   cfg.Engine.QueueBatches,
			DedupTTL:       time.Duration(cfg.Engine.DedupTTL),
			LedgerBatch:    cfg.Ledger.BatchSize,
			LedgerMaxDelay: time.Duration(cfg.Ledger.MaxDelay),
			// The Parquet archive has a column per feature, whether or not decisions carry them.
			KeepFeatures: cfg.Output.Features || cfg.Output.Parquet.Path != "",

			MaxOutOfOrderness: time.Duration(cfg.Engine.MaxOutOfOrderness),
			AllowedLateness:   time.Duration(cfg.Engine.AllowedLateness),
			IdleTimeout:       time.Duration(cfg.Engine.IdleTimeout),
			CheckpointEvery:   time.Duration(cfg.Checkpoint.Interval),
			CheckpointKeep:    cfg.Checkpoint.Keep,
			Groups:            groups,
			Instance:          instance,
		},
		Checkpoints: out.checkpoints,
		Peers:       out.peers,
		Logger:      out.logger,
		Metrics:     out.metrics,
		Schema:      schema,
		Scorers:     scorers,
		Ordered:     sc.ordered,
		Chargeback:  chargebackFor(cfg, st.ledger),
		Ledger:      st.ledger,
		Sinks:       st.sinks,
		DeadLetters: st.dead,
	})
	return st, err
}

// server is a source that serves requests (the HTTP decision API): on a signal it stops
// taking requests, answers those in flight and then ends its input, so the engine stops by
// itself, with a final checkpoint.
type server interface {
	pipeline.Source
	Serve(ctx context.Context) error
}

// runUntilSignal runs the engine over src until the source ends or SIGINT or SIGTERM
// arrives (which stop the reading and drain the work in flight), then closes the stack.
func (st *stack) runUntilSignal(src pipeline.Source) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if srv, ok := src.(server); ok {
		serveErr := make(chan error, 1)
		go func() { serveErr <- srv.Serve(ctx) }()
		runErr := st.engine.Run(context.Background(), src)
		stop()
		if runErr != nil {
			src.Close() // the engine failed: answer the waiting requests at once
		}
		return errors.Join(runErr, <-serveErr, st.close(context.Background()))
	}
	runErr := st.engine.Run(ctx, src)
	closeErr := st.close(context.Background())
	return errors.Join(runErr, closeErr)
}

// close flushes and closes the sinks and the ledger, reporting every failure.
func (st *stack) close(ctx context.Context) error {
	var errs []error
	if st.enrich != nil {
		st.enrich.Close()
	}
	for _, s := range st.sinks {
		errs = append(errs, s.Close(ctx))
	}
	if st.dead != nil {
		errs = append(errs, st.dead.Close(ctx))
	}
	if st.ledger != nil {
		errs = append(errs, st.ledger.Close())
	}
	return errors.Join(errs...)
}

// tempLedger returns a path for a throwaway SQLite ledger and a function that removes it.
func tempLedger() (string, func(), error) {
	dir, err := os.MkdirTemp("", "fraudpipe-ledger-")
	if err != nil {
		return "", nil, fmt.Errorf("temporary ledger: %w", err)
	}
	return dir + "/ledger.db", func() { os.RemoveAll(dir) }, nil
}

// startCPUProfile writes a CPU profile to path until the returned function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
