package main

import (
	"context"
	"fmt"
	"time"

	"github.com/opensearch-project/opensearch-go/v4/signer/awsv2"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/awsconf"
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
		ocfg := opensearch.Config{
			URLs: oc.URLs, TLSInsecure: oc.TLSInsecure,
			Index: oc.Index, DataStream: oc.Mode == "data_stream", InstallTemplate: oc.Template,
			Retention: time.Duration(oc.Retention), Features: features,
		}
		if err := openSearchAuth(&ocfg, oc, path); err != nil {
			return out, err
		}
		w, err := opensearch.New(ocfg)
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

// openSearchAuth sets the credentials of the output at path: basic auth, or an AWS SigV4
// signer with credentials from the standard AWS chain.
func openSearchAuth(dst *opensearch.Config, oc config.OpenSearchOutput, path string) error {
	switch oc.AuthMode() {
	case config.OpenSearchAuthBasic:
		dst.Username, dst.Password = oc.Username, oc.Password.Reveal()
	case config.OpenSearchAuthSigV4:
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		awsCfg, err := awsconf.Load(ctx, path, awsconf.Static{Region: oc.AWSRegion})
		if err != nil {
			return err
		}
		if awsCfg.Region == "" {
			return fmt.Errorf("%s.aws_region: sigv4 signs for a region: set aws_region to the domain's region (or AWS_REGION in the environment)", path)
		}
		if dst.Signer, err = awsv2.NewSignerWithService(awsCfg, oc.Service); err != nil {
			return fmt.Errorf("%s: sigv4: %w", path, err)
		}
	}
	return nil
}
