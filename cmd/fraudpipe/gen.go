package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fraudpipe/fraudpipe/sources/gen"
)

func cmdGen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gen", "[--seed N] [--customers N] [--days N] --out FILE",
		`Writes a labelled synthetic transaction stream (NDJSON, in time order): customers and
terminals on a 100x100 grid with Poisson daily transactions, and the fraud-detection
handbook's scenarios (1: amounts over 220; 2: compromised terminals for 28 days;
3: compromised cards, a third of 14 days' payments multiplied by 5). The same flags give
the same bytes. Each line carries a label {"fraud", "scenario"}.`, stdout)
	d := gen.DefaultOptions()
	seed := fs.Uint64("seed", d.Seed, "random seed")
	customers := fs.Int("customers", d.Customers, "number of customers (one card each)")
	terminals := fs.Int("terminals", d.Terminals, "number of terminals (merchants)")
	days := fs.Int("days", d.Days, "days to simulate")
	start := fs.String("start", d.Start.Format("2006-01-02"), "first day (YYYY-MM-DD, UTC)")
	out := fs.String("out", "", "file to write (required; - for standard output)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *out == "" {
		return &usageError{"--out is required"}
	}
	if *customers <= 0 || *terminals <= 0 || *days <= 0 {
		return &usageError{"--customers, --terminals and --days must be positive"}
	}
	t, err := time.Parse("2006-01-02", *start)
	if err != nil {
		return &usageError{fmt.Sprintf("--start %q is not a date like 2018-04-01", *start)}
	}
	o := d
	o.Seed, o.Customers, o.Terminals, o.Days, o.Start = *seed, *customers, *terminals, *days, t
	var w io.Writer = stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.Create(*out); err != nil {
			return fmt.Errorf("create output: %w", err)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	began := time.Now()
	var report func(day, days int)
	if isTerminal(stderr) && *out != "-" {
		last := time.Time{}
		report = func(day, days int) {
			if now := time.Now(); now.Sub(last) >= 200*time.Millisecond {
				last = now
				fmt.Fprint(stderr, "\r\x1b[K"+dayProgress(day, days))
			}
		}
	}
	sum, err := gen.WriteProgress(bw, o, report)
	if report != nil {
		fmt.Fprint(stderr, "\r\x1b[K")
	}
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
	}
	fmt.Fprintf(stderr, "gen: %s in %.2fs\n", sum, time.Since(began).Seconds())
	return nil
}
