package main

import (
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sources/httpapi"
)

func init() {
	registerSource("http", func(cfg *config.Config, env sourceEnv) (pipeline.Source, error) {
		h := cfg.Source.HTTP
		res := func(p string) string {
			if p == "" {
				return ""
			}
			return cfg.Resolve(p)
		}
		api, err := httpapi.New(httpapi.Options{
			Listen: h.Listen, TLSCert: res(h.TLSCert), TLSKey: res(h.TLSKey),
			Auth: httpapi.Auth{HS256Secret: []byte(h.Auth.HS256Secret.Reveal()), JWKSFile: res(h.Auth.JWKSFile),
				Audience: h.Auth.Audience, Issuer: h.Auth.Issuer, Leeway: time.Duration(h.Auth.Leeway)},
			RateLimit: h.RateLimit, Burst: h.Burst, MaxBodyBytes: int64(h.MaxBodyBytes),
			MaxBatchBytes: int64(h.MaxBatchBytes), MaxBatch: h.MaxBatch, Timeout: time.Duration(h.Timeout),
			BatchSize: cfg.Engine.BatchSize, Logger: env.logger, FeatureNames: env.output,
		})
		if err != nil {
			return nil, err
		}
		if env.registry != nil {
			if err := api.Register(env.registry); err != nil {
				return nil, err
			}
		}
		// Listen now, so a busy port fails before the engine starts.
		if err := api.Listen(); err != nil {
			api.Close()
			return nil, err
		}
		return api, nil
	})
}
