package main

import (
	"fmt"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sinks"
	"github.com/fraudpipe/fraudpipe/sinks/opensearch"
)

func init() { registerSink(buildOpenSearch) }

// buildOpenSearch returns one sink per output.opensearch entry.
func buildOpenSearch(cfg *config.Config, env sinkEnv) (out []pipeline.Sink, err error) {
	defer func() {
		if err != nil {
			sinks.CloseAll(out)
			out = nil
		}
	}()
	for i, oc := range cfg.Output.OpenSearch {
		path := fmt.Sprintf("output.opensearch[%d]", i)
		spec := sinks.Spec{
			Name: oc.Name, Required: oc.Required, QueueSize: oc.QueueSize, DeadLetters: oc.DeadLetters,
			Batching: oc.Batching, Retry: oc.Retry, Resolve: cfg.Resolve, Metrics: env.metrics,
		}
		if spec.Name == "" {
			spec.Name = fmt.Sprintf("opensearch-%d", i)
		}
		if err := spec.Check(path); err != nil {
			return out, err
		}
		if len(oc.URLs) == 0 {
			return out, fmt.Errorf("%s.urls: list at least one OpenSearch node", path)
		}
		var features []string
		if oc.Features && !cfg.Output.Features {
			return out, fmt.Errorf("%s.features: the engine keeps feature values only with output.features: true; set both", path)
		}
		if oc.Features {
			features = env.schema.Names()
		}
		w, err := opensearch.New(opensearch.Config{
			URLs: oc.URLs, Username: oc.Username, Password: oc.Password.Reveal(), TLSInsecure: oc.TLSInsecure,
			Index: oc.Index, DataStream: oc.Mode == "data_stream", InstallTemplate: oc.Template,
			Retention: time.Duration(oc.Retention), Features: features,
		})
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		s, err := sinks.FromSpec(w, spec)
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, s)
	}
	return out, nil
}
