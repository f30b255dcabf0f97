package main

import (
	"fmt"
	"io"

	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

func cmdConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("config", "docs|example",
		`Prints what the config looks like, generated from the code's own declarations:
  docs     the config reference in Markdown (docs/config.md is this output)
  example  a complete config file with every field at its default, commented`, stdout)
	if err := fs.parseWithArgs(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{"say which: docs or example"}
	}
	switch fs.Arg(0) {
	case "docs":
		fmt.Fprint(stdout, config.Reference())
	case "example":
		fmt.Fprint(stdout, config.Example())
	default:
		return &usageError{fmt.Sprintf("unknown config subcommand %q (docs, example)", fs.Arg(0))}
	}
	return nil
}
