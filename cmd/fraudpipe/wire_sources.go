package main

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	filesource "github.com/fraudpipe/fraudpipe/sources/file"
)

// sourceEnv is what a source opener gets besides the config.
type sourceEnv struct {
	ctx      context.Context
	cfgPath  string // for messages
	logger   *slog.Logger
	registry prometheus.Registerer // nil: no metrics
	schema   *pipeline.FeatureSchema
	output   featureNames // the feature names decisions carry (nil: none)
}

type featureNames []string

// sourceOpener opens the source of one source.type. Each source plug-in registers its
// opener from an init function in its own wire_source_<name>.go file.
type sourceOpener func(cfg *config.Config, env sourceEnv) (pipeline.Source, error)

var sourceOpeners = map[string]sourceOpener{
	"file": func(cfg *config.Config, env sourceEnv) (pipeline.Source, error) {
		if cfg.Source.Path == "" {
			return nil, fmt.Errorf("%s: source.path is required for source type file", env.cfgPath)
		}
		return filesource.Open(cfg.Resolve(cfg.Source.Path), cfg.Engine.BatchSize)
	},
	"stdin": func(cfg *config.Config, _ sourceEnv) (pipeline.Source, error) {
		return filesource.Open("-", cfg.Engine.BatchSize)
	},
}

func registerSource(kind string, o sourceOpener) { sourceOpeners[kind] = o }

// openSource opens the source the config names.
func openSource(cfg *config.Config, env sourceEnv) (pipeline.Source, error) {
	open, ok := sourceOpeners[cfg.Source.Type]
	if !ok {
		kinds := make([]string, 0, len(sourceOpeners))
		for k := range sourceOpeners {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		return nil, fmt.Errorf("%s: source type %q is not built into this binary (it has %s)", env.cfgPath, cfg.Source.Type, strings.Join(kinds, ", "))
	}
	return open(cfg, env)
}

// registerLag exports a source's lag as a gauge, once per process.
func registerLag(reg prometheus.Registerer, name, help, source string, f func() float64) {
	if reg == nil {
		return
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"source": source}}, f)
	if err := reg.Register(g); err != nil {
		slog.Default().Debug("source lag gauge not registered", "err", err)
	}
}
