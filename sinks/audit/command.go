package audit

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// UsageError is a mistake on the command line of Command: the caller prints it on one
// line, points to --help and exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ErrNotIntact is wrapped by the error Command returns when a log fails verification
// (the violation itself is printed on stdout): the caller exits 1.
var ErrNotIntact = errors.New("audit log is not intact")

const auditUsage = `Usage: fraudpipe audit COMMAND [flags]

Checks the audit log: the append-only, hash-chained file of every decision
(see docs/audit.md).

Commands:
  verify   re-read a log and check every record and the chain

Run 'fraudpipe audit COMMAND --help' for a command's flags.
`

const verifyUsage = `Usage: fraudpipe audit verify FILE [--head HEX]

Re-reads the audit log FILE and checks every record: valid JSON in the writer's layout,
n consecutive from 1, and prev equal to the SHA-256 of the line before. Prints
"ok: N records, head HEX" and exits 0 when the chain is whole; otherwise prints the
first bad record (line, record number, transaction id, what is wrong) and exits 1.

The head is the SHA-256 of the last record. Record it outside the log (a ticket, a
WORM bucket) and pass it back with --head later: the log may have grown since, but a
record with that hash must still be in it, or records were cut from its end or the
whole log was rewritten.

Flags:
`

// Command runs "fraudpipe audit" with args, the words after "audit": "verify FILE
// [--head HEX]" or "--help". It returns flag.ErrHelp after printing help, a *UsageError
// for a bad command line, an error wrapping ErrNotIntact when the log fails verification,
// and other errors when the log cannot be read.
func Command(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &UsageError{"missing command: verify"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, auditUsage)
		return flag.ErrHelp
	case "verify":
		return cmdVerify(args[1:], stdout)
	}
	return &UsageError{fmt.Sprintf("unknown command %q (commands: verify)", args[0])}
}

func cmdVerify(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	head := fs.String("head", "", "a chain head recorded earlier (64 hex digits) that must be the hash of a record of the log")
	// Flags may come before or after FILE.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, verifyUsage)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return err
			}
			return &UsageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(files) == 0:
		return &UsageError{"missing FILE: the audit log to verify"}
	case len(files) > 1:
		return &UsageError{fmt.Sprintf("unexpected argument %q: verify checks one FILE", files[1])}
	}
	path := files[0]
	if *head != "" {
		if _, err := ParseHead(strings.TrimSpace(*head)); err != nil {
			return &UsageError{"--head: " + err.Error()}
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	var res Result
	if *head != "" {
		res, err = VerifyHead(f, strings.TrimSpace(*head))
	} else {
		res, err = Verify(f)
	}
	var v *Violation
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "ok: %d records, head %s\n", res.Records, res.Head)
		if res.HeadAt > 0 {
			fmt.Fprintf(stdout, "the expected head is record %d's: the %d records up to it are unchanged\n", res.HeadAt, res.HeadAt)
		}
		return nil
	case errors.As(err, &v):
		fmt.Fprintf(stdout, "FAIL: %s: %v\n", path, v)
		fmt.Fprintf(stdout, "the %d records before it are intact, head %s\n", res.Records, res.Head)
		return fmt.Errorf("%s fails at line %d (record %d): %w", path, v.Line, v.Record, ErrNotIntact)
	case errors.Is(err, ErrHeadNotFound):
		fmt.Fprintf(stdout, "FAIL: %s: %v\n", path, err)
		fmt.Fprintf(stdout, "its %d records chain correctly, head %s\n", res.Records, res.Head)
		return fmt.Errorf("%s does not contain the expected head: %w", path, ErrNotIntact)
	default:
		return fmt.Errorf("verify %s: %w", path, err)
	}
}
