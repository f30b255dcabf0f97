package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fraudpipe/fraudpipe/ledger"
	"github.com/fraudpipe/fraudpipe/pipeline"
)

// ledgerSubcommands are the commands of fraudpipe ledger.
var ledgerSubcommands = []struct {
	name, summary string
	run           func(args []string, stdout io.Writer) error
}{
	{"balance", "print an account's balance and limit", cmdLedgerBalance},
	{"verify", "re-check every invariant from the stored entries", cmdLedgerVerify},
	{"export", "write the entries with their postings as NDJSON", cmdLedgerExport},
}

func ledgerUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: fraudpipe ledger COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Reads the double-entry ledger that approved payments are posted to: the config's")
	fmt.Fprintln(w, "(--config), a SQLite file (--ledger) or a PostgreSQL database (--url).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range ledgerSubcommands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'fraudpipe ledger COMMAND --help' for a command's flags.")
}

func cmdLedger(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{"missing command: balance, verify or export"}
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		ledgerUsage(stdout)
		return flag.ErrHelp
	}
	for _, c := range ledgerSubcommands {
		if c.name == args[0] {
			return c.run(args[1:], stdout)
		}
	}
	return &usageError{fmt.Sprintf("unknown command %q (commands: balance, verify, export)", args[0])}
}

// ledgerFlags are the flags that say which ledger a ledger command reads.
type ledgerFlags struct {
	config, path, url *string
}

func addLedgerFlags(fs *flags) ledgerFlags {
	return ledgerFlags{
		config: fs.String("config", "", "config file whose ledger to read (default: the built-in config)"),
		path:   fs.String("ledger", "", "SQLite ledger file (instead of the config's ledger)"),
		url:    fs.String("url", "", "PostgreSQL ledger, postgres://user:pass@host:port/db (instead of the config's ledger)"),
	}
}

// open opens the ledger the flags name, for reading. A SQLite file must exist: the
// commands never create an empty ledger.
func (lf ledgerFlags) open() (ledger.Store, error) {
	if *lf.path != "" && *lf.url != "" {
		return nil, &usageError{"--ledger and --url exclude each other"}
	}
	cfg, err := loadConfig(*lf.config)
	if err != nil {
		return nil, err
	}
	path := *lf.path
	if path == "" && *lf.url == "" && cfg.Ledger.Driver == "sqlite" {
		path = cfg.Resolve(cfg.Ledger.Path)
	}
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no ledger at %s: %w", path, errors.Unwrap(err))
		}
	}
	return openLedgerStore(cfg, ledgerTarget{path: path, url: *lf.url}, true)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func cmdLedgerBalance(args []string, stdout io.Writer) error {
	fs := newFlags("ledger balance", "[--config FILE | --ledger PATH | --url URL] ACCOUNT",
		`Prints one account of the ledger: its balance (credits minus debits), currency, kind and
credit limit, in the currency's major units. A customer's balance may go down to minus
its limit. Exits 1 when the ledger has no such account.`, stdout)
	lf := addLedgerFlags(fs)
	if err := fs.parseWithArgs(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		return &usageError{"missing ACCOUNT"}
	case fs.NArg() > 1:
		return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(1))}
	}
	s, err := lf.open()
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := signalContext()
	defer cancel()
	a, err := s.Balance(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	d := a.Currency.Digits
	fmt.Fprintf(stdout, "%s %s %s balance %s limit %s\n", a.ID, a.Currency.Code, a.Kind,
		pipeline.FormatAmount(a.Balance, d), pipeline.FormatAmount(a.Limit, d))
	return nil
}

func cmdLedgerVerify(args []string, stdout io.Writer) error {
	fs := newFlags("ledger verify", "[--config FILE | --ledger PATH | --url URL]",
		`Re-checks every invariant of the ledger from its stored entries and postings, in one
snapshot: one entry per transaction id, every entry balanced and crediting its amount,
every reversal the exact negation of an earlier entry reversed once, every currency
summing to zero, every account's balance the sum of its postings, no customer below
minus its limit. Exits 0 and prints a summary when all hold; exits 1 and names the first
violation otherwise.`, stdout)
	lf := addLedgerFlags(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	s, err := lf.open()
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := signalContext()
	defer cancel()
	if err := s.Verify(ctx); err != nil {
		return err
	}
	st, err := s.Stats(ctx)
	if err != nil {
		return err
	}
	var accts int64
	for _, n := range st.Accounts {
		accts += n
	}
	fmt.Fprintf(stdout, "ledger ok: %d entries, %d accounts, %d currencies\n", st.Entries, accts, len(st.Currencies))
	return nil
}

func cmdLedgerExport(args []string, stdout io.Writer) error {
	fs := newFlags("ledger export", "[--config FILE | --ledger PATH | --url URL] [--since TS] [--out FILE]",
		`Writes the entries posted (committed) at or after --since, with their postings, as NDJSON
in entry order: {"seq","tx_id","ts","posted_at","currency","amount","reverses","postings":
[{"account","amount"}]}, amounts in minor units (postings signed). --since is an RFC 3339
time or a date (2026-11-25, midnight UTC); without it every entry is written.`, stdout)
	lf := addLedgerFlags(fs)
	since := fs.String("since", "", "write entries posted at or after this time (RFC 3339 or YYYY-MM-DD)")
	out := fs.String("out", "-", "file to write (- for standard output)")
	if err := fs.parse(args); err != nil {
		return err
	}
	var sinceMS int64
	if *since != "" {
		t, err := parseSince(*since)
		if err != nil {
			return &usageError{err.Error()}
		}
		sinceMS = t.UnixMilli()
	}
	s, err := lf.open()
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := signalContext()
	defer cancel()
	w := stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.Create(*out); err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if err := s.Export(ctx, sinceMS, w); err != nil {
		return err
	}
	if f != nil {
		return f.Close()
	}
	return nil
}

func parseSince(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-11-25T10:00:00Z) or a date (2026-11-25)", strings.TrimSpace(s))
}
