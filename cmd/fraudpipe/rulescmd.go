package main

import (
	"fmt"
	"io"
	"os"

	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/scorers/rules"
)

func cmdRules(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rules", "test [--config FILE] [--rules FILE] TESTFILE...",
		`Runs rule unit tests: each test gives a transaction and feature values and the reasons
the rules must produce (see docs/rules.md). The rules are the config's rule file, or the
built-in rules, or --rules; the features are those the config computes. Prints PASS or
FAIL per test and exits 1 when any fails.`, stdout)
	cfgPath := fs.String("config", "", "config file whose features and rules to use (default: the built-in config)")
	rulesPath := fs.String("rules", "", "rule file to test (default: the config's)")
	if err := fs.parseWithArgs(args); err != nil {
		return err
	}
	if fs.NArg() < 2 || fs.Arg(0) != "test" {
		return &usageError{"say 'rules test' and at least one test file"}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *rulesPath != "" {
		cfg.Scoring.Rules.File = *rulesPath
	}
	rs, err := loadRules(cfg)
	if err != nil {
		return err
	}
	failed := 0
	total := 0
	for _, path := range fs.Args()[1:] {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read tests: %w", err)
		}
		results, err := rules.RunTestFile(rs, path, data)
		if err != nil {
			return err
		}
		for _, r := range results {
			total++
			if !r.Passed() {
				failed++
			}
			fmt.Fprintf(stdout, "%s: %s\n", path, r)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", total-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d rule tests failed", failed, total)
	}
	return nil
}

// loadRules compiles the rule set a config names, against the features that config computes.
func loadRules(cfg *config.Config) (*rules.RuleSet, error) {
	sc, err := scorersFor(cfg)
	schema := sc.schema
	if err != nil {
		return nil, err
	}
	return rulesFor(cfg, schema)
}
