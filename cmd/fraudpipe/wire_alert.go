package main

import (
	"fmt"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sinks"
	"github.com/fraudpipe/fraudpipe/sinks/alert"
)

func init() { registerSink(buildAlerts) }

// buildAlerts returns one sink per output.alerts entry.
func buildAlerts(cfg *config.Config, env sinkEnv) (out []pipeline.Sink, err error) {
	defer func() {
		if err != nil {
			sinks.CloseAll(out)
			out = nil
		}
	}()
	for i, ac := range cfg.Output.Alerts {
		path := fmt.Sprintf("output.alerts[%d]", i)
		spec := sinks.Spec{
			Name: ac.Name, Required: ac.Required, QueueSize: ac.QueueSize, DeadLetters: ac.DeadLetters,
			Batching: ac.Batching, Retry: ac.Retry, Resolve: cfg.Resolve, Metrics: env.metrics,
		}
		if spec.Name == "" {
			spec.Name = fmt.Sprintf("alert-%d", i)
		}
		if err := spec.Check(path); err != nil {
			return out, err
		}
		route := alert.Route{Rules: ac.Rules, MinScore: ac.MinScore}
		for _, o := range ac.On {
			oc, ok := pipeline.ParseOutcome(o)
			if !ok {
				return out, fmt.Errorf("%s.on: %q is not approve, review or decline", path, o)
			}
			route.On = append(route.On, oc)
		}
		if len(route.On) == 0 {
			return out, fmt.Errorf("%s.on: list the decisions that alert, such as [decline, review]", path)
		}
		var w sinks.Writer
		switch ac.Type {
		case "webhook":
			if ac.URL == "" {
				return out, fmt.Errorf("%s.url: a webhook alerter needs the endpoint's URL", path)
			}
			secretFile := ""
			if ac.SecretFile != "" {
				secretFile = cfg.Resolve(ac.SecretFile)
			}
			secret, err := alert.LoadSecret(ac.Secret.Reveal(), secretFile)
			if err != nil {
				return out, fmt.Errorf("%s: %w", path, err)
			}
			if w, err = alert.NewWebhook(alert.WebhookConfig{
				URL: ac.URL, Secret: secret, Route: route, RateLimit: ac.RateLimit,
				Timeout: time.Duration(ac.Timeout), Workers: ac.Workers, DedupSize: ac.DedupSize,
			}); err != nil {
				return out, fmt.Errorf("%s: %w", path, err)
			}
		case "log":
			w = alert.NewLog(route, nil, ac.DedupSize)
		case "nats":
			if w, err = alert.NewNATS(ac.NATSURL, ac.Subject, route, ac.DedupSize); err != nil {
				return out, fmt.Errorf("%s: %w", path, err)
			}
		default:
			return out, fmt.Errorf("%s.type: %q is not webhook, log or nats", path, ac.Type)
		}
		s, err := sinks.FromSpec(w, spec)
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, s)
	}
	return out, nil
}
