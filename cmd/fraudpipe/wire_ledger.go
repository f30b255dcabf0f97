package main

import (
	"fmt"

	"github.com/fraudpipe/fraudpipe/ledger"
	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

// openLedger opens the ledger the config names; pathOverride replaces the SQLite path when
// set (replay's --ledger). It returns nil for driver none.
func openLedger(cfg *config.Config, pathOverride string) (pipeline.Ledger, error) {
	switch cfg.Ledger.Driver {
	case "sqlite":
		path := cfg.Resolve(cfg.Ledger.Path)
		if pathOverride != "" {
			path = pathOverride
		}
		limit := cfg.Ledger.DefaultLimit
		if _, err := limit.Minor(2); err != nil {
			return nil, fmt.Errorf("ledger.default_limit: %w", err)
		}
		l, err := ledger.OpenSQLite(path, ledger.Options{
			DefaultLimit: func(c pipeline.Currency) int64 {
				m, _ := limit.Minor(c.Digits)
				return m
			},
		})
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return l, nil
	case "none":
		return nil, nil
	}
	return nil, fmt.Errorf("ledger.driver %q is not supported", cfg.Ledger.Driver)
}
