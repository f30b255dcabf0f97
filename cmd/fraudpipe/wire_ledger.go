package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/ledger"
	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

// openLedger opens the ledger the config names; pathOverride replaces the SQLite path when
// set (replay's --ledger). It returns nil for driver none.
func openLedger(cfg *config.Config, pathOverride string) (pipeline.Ledger, error) {
	if cfg.Ledger.Driver == "none" {
		return nil, nil
	}
	if sc, err := scaleOf(cfg); err != nil || sc != nil {
		if err != nil {
			return nil, err
		}
		return openShardedLedger(cfg, sc)
	}
	if strings.Contains(cfg.Ledger.Path, partitionPlaceholder) || strings.Contains(cfg.Ledger.URL, partitionPlaceholder) {
		return nil, fmt.Errorf("ledger: %s names a ledger shard per stream partition, which needs scale.instance or run --instance i/N", partitionPlaceholder)
	}
	s, err := openLedgerStore(cfg, ledgerTarget{path: pathOverride}, false)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return s, nil
}

// ledgerTarget overrides where the config's ledger is: a SQLite path or a PostgreSQL URL.
type ledgerTarget struct{ path, url string }

// openLedgerStore opens the store the config names, or the one target names. forTool opens
// it for the fraudpipe ledger commands: no accounts file is applied, and a PostgreSQL
// ledger is opened read-only, beside a pipeline that may be writing to it.
func openLedgerStore(cfg *config.Config, target ledgerTarget, forTool bool) (ledger.Store, error) {
	driver := cfg.Ledger.Driver
	switch {
	case target.url != "":
		driver = "postgres"
	case target.path != "":
		driver = "sqlite"
	}
	limit := cfg.Ledger.DefaultLimit
	if _, err := limit.Minor(2); err != nil {
		return nil, fmt.Errorf("ledger.default_limit: %w", err)
	}
	opts := ledger.Options{
		DefaultLimit: func(c pipeline.Currency) int64 {
			m, _ := limit.Minor(c.Digits)
			return m
		},
		ReadOnly: forTool,
	}
	if cfg.Ledger.AccountsFile != "" && !forTool {
		specs, err := ledger.ReadAccountsFile(cfg.Resolve(cfg.Ledger.AccountsFile))
		if err != nil {
			return nil, fmt.Errorf("ledger.accounts_file: %w", err)
		}
		opts.Accounts = specs
	}
	switch driver {
	case "sqlite":
		path := target.path
		if path == "" {
			path = cfg.Resolve(cfg.Ledger.Path)
		}
		s, err := ledger.OpenSQLite(path, opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "postgres":
		url := target.url
		if url == "" {
			url = cfg.Ledger.URL
		}
		if url == "" {
			return nil, fmt.Errorf("ledger.url: required with ledger.driver postgres (postgres://user:${PGPASSWORD}@host:5432/db)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := ledger.OpenPostgres(ctx, url, opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "none":
		return nil, fmt.Errorf("ledger.driver is none: there is no ledger (give --ledger or --url)")
	}
	return nil, fmt.Errorf("ledger.driver %q is not supported", driver)
}

// chargebackFor returns the engine's chargeback path when ledger.chargebacks is on: fraud
// feedback on a posted transaction reverses its entry.
func chargebackFor(cfg *config.Config, l pipeline.Ledger) pipeline.Chargeback {
	store, ok := l.(interface {
		Reverse(ctx context.Context, txID string, ts int64) (ledger.Reversal, error)
	})
	if !cfg.Ledger.Chargebacks || !ok {
		return nil
	}
	return func(ctx context.Context, fb *pipeline.Feedback) (pipeline.LedgerStatus, string, error) {
		r, err := store.Reverse(ctx, fb.ID, fb.TS)
		switch {
		case errors.Is(err, ledger.ErrEntryNotFound), errors.Is(err, ledger.ErrNotReversible):
			return pipeline.LedgerSkipped, "", nil // declined, never posted: nothing to reverse
		case err != nil:
			return 0, "", err
		}
		return r.Status, r.Reason, nil
	}
}
