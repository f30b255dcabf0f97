package main

import (
	"fmt"
	"io"
	"os"

	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

func cmdLint(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("lint", "--config FILE",
		`Checks a config file without running it: unknown fields, bad values, missing
environment variables and values that do not fit together, each with file and line.
Exits 0 when the config is good, 1 when it has problems.`, stdout)
	path := fs.String("config", "", "config file to check (required)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *path == "" {
		return &usageError{"--config is required"}
	}
	issues := config.Lint(*path, os.LookupEnv)
	if len(issues) == 0 {
		fmt.Fprintf(stdout, "%s: ok\n", *path)
		return nil
	}
	for _, is := range issues {
		fmt.Fprintln(stdout, is.String())
	}
	return fmt.Errorf("%s: %d problem(s)", *path, len(issues))
}
