// Command fraudpipe is a stream-processing fraud-detection pipeline for card and account
// payments. See README.md and docs/ for how to run it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands []command

func init() {
	commands = []command{
		{"demo", "run the whole system on one machine with a live view (embedded NATS, generator, ledger, archive, alerts)", cmdDemo},
		{"run", "run the long-running pipeline that a config describes", cmdRun},
		{"replay", "feed a recorded stream through the engine and write its decisions", cmdReplay},
		{"gen", "write a labelled synthetic transaction stream", cmdGen},
		{"publish", "send a recorded stream into a NATS JetStream stream", cmdPublish},
		{"lint", "check a config file without running it", cmdLint},
		{"rules", "run rule unit tests", cmdRules},
		{"checkpoint", "inspect a checkpoint", cmdCheckpoint},
		{"config", "print the config reference or a complete example config", cmdConfig},
		{"ledger", "read the ledger: an account's balance, verify its invariants, export entries", cmdLedger},
		{"features", "write point-in-time feature vectors and labels for training", cmdFeatures},
		{"eval", "measure detection quality of decisions against labels", cmdEval},
		{"audit", "verify the hash-chained audit log", cmdAudit},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "fraudpipe: stream-processing fraud detection for card and account payments")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: fraudpipe COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'fraudpipe COMMAND --help' for a command's flags.")
}

// usageError is a mistake on the command line; main prints it on one line and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == name {
			err := c.run(args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			}
			var ue *usageError
			if errors.As(err, &ue) {
				fmt.Fprintf(stderr, "fraudpipe %s: %s (see 'fraudpipe %s --help')\n", name, ue.msg, name)
				return 2
			}
			fmt.Fprintf(stderr, "fraudpipe %s: %s\n", name, strings.TrimSpace(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(stderr, "fraudpipe: unknown command %q (commands: %s)\n", name, commandNames())
	return 2
}

func commandNames() string {
	var n []string
	for _, c := range commands {
		n = append(n, c.name)
	}
	return strings.Join(n, ", ")
}

// flags is a command's flag set and the text of its --help.
type flags struct {
	*flag.FlagSet
	synopsis, about string
	stdout          io.Writer
}

// newFlags returns a flag set that reports mistakes as one-line usage errors and prints
// its help to stdout on --help.
func newFlags(name, synopsis, about string, stdout io.Writer) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flags{FlagSet: fs, synopsis: synopsis, about: about, stdout: stdout}
}

// parse parses args and refuses stray positional arguments.
func (f *flags) parse(args []string) error {
	if err := f.parseWithArgs(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", f.Arg(0))}
	}
	return nil
}

// parseWithArgs parses args, leaving positional arguments in f.Args().
func (f *flags) parseWithArgs(args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(f.stdout, "Usage: fraudpipe %s %s\n\n%s\n\nFlags:\n", f.Name(), f.synopsis, f.about)
			f.SetOutput(f.stdout)
			f.PrintDefaults()
			return err
		}
		return &usageError{err.Error()}
	}
	return nil
}
