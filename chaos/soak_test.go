package chaos

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fraudpipe/fraudpipe/sources/gen"
	natssrc "github.com/fraudpipe/fraudpipe/sources/nats"
)

// soakSeries are the series sampled by TestSoak, in CSV column order.
var soakSeries = []struct{ column, name string }{
	{"heap_inuse_bytes", "go_memstats_heap_inuse_bytes"},
	{"goroutines", "go_goroutines"},
	{"open_fds", "process_open_fds"},
	{"rss_bytes", "process_resident_memory_bytes"},
	{"lag_messages", "fraudpipe_source_lag_messages"},
	{"queue_depth", "fraudpipe_queue_depth"},
	{"events_total", "fraudpipe_engine_events_total"},
	{"state_cards", "fraudpipe_state_cards"},
}

// TestSoak runs fraudpipe with the embedded NATS server (examples/local.yaml's setup) at a
// steady publish rate for SOAK_DURATION, sampling memory, goroutines, file descriptors and
// lag from /metrics every SOAK_EVERY into a CSV, and fails when goroutines or file
// descriptors keep growing. scripts/soak runs it; it is skipped unless SOAK_DURATION is set.
func TestSoak(t *testing.T) {
	if testing.Short() || os.Getenv("SOAK_DURATION") == "" {
		t.Skip("a soak run: set SOAK_DURATION (scripts/soak)")
	}
	duration := envDuration(t, "SOAK_DURATION", 30*time.Minute)
	every := envDuration(t, "SOAK_EVERY", 10*time.Second)
	rate := envInt(t, "SOAK_RATE", 20_000)
	outDir := os.Getenv("SOAK_OUT")
	if outDir == "" {
		outDir = t.TempDir()
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	natsAddr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	adminAddr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// examples/local.yaml, with free ports and without the decisions file (at 20k/s it
	// would grow by about 6 MB a second).
	cfg := fmt.Sprintf(`source:
  type: nats
  nats: {embedded: true, store_dir: data/nats, listen: "%s"}
ledger: {driver: sqlite, path: data/ledger.db, chargebacks: true}
output:
  dead_letters: {path: data/dead-letters.ndjson}
  parquet: {path: data/archive, spool_dir: data/parquet-spool}
  alerts:
    - {name: log, type: log, on: [decline]}
admin: {listen: "%s"}
checkpoint: {dir: data/checkpoints, interval: 10s}
`, natsAddr, adminAddr)
	cfgPath := filepath.Join(dir, "soak.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	logPath := filepath.Join(outDir, "fraudpipe.log")
	os.Remove(logPath)
	fp := startProc(t, dir, logPath, nil, "run", "--config", cfgPath)
	if err := waitFor(time.Minute, 50*time.Millisecond, func() error { return ready(adminAddr) }); err != nil {
		t.Fatalf("fraudpipe not ready within a minute: %v\n%s", err, tail(logPath, 20))
	}
	// Keep the stream's disk bounded: messages are acknowledged at every checkpoint.
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := natssrc.EnsureStream(context.Background(), js, natssrc.StreamOptions{MaxAge: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	o := gen.DefaultOptions()
	o.Seed, o.Customers, o.Terminals = 5, 20000, 40000
	o.Days = int(float64(rate)*duration.Seconds())/(o.Customers*3/2) + 10
	g := gen.New(o)
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	pub := &Publisher{URL: "nats://" + natsAddr, Subject: natssrc.StreamOptions{}.InputSubject(), Rate: float64(rate)}
	pubDone := make(chan error, 1)
	start := time.Now()
	go func() { pubDone <- pub.Run(ctx, g.Next) }()

	csvPath := filepath.Join(outDir, "soak.csv")
	csv, err := os.Create(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer csv.Close()
	cols := []string{"elapsed_s", "published"}
	for _, s := range soakSeries {
		cols = append(cols, s.column)
	}
	fmt.Fprintln(csv, strings.Join(cols, ","))
	var rows [][]float64 // elapsed, published, series...
	tick := time.NewTicker(every)
	defer tick.Stop()
	failedScrapes := 0
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		s, err := Scrape("http://" + adminAddr + "/metrics")
		if err != nil {
			failedScrapes++
			t.Logf("scrape: %v", err)
			continue
		}
		row := []float64{time.Since(start).Seconds(), float64(pub.Published.Load())}
		for _, ser := range soakSeries {
			row = append(row, s.Sum(ser.name))
		}
		rows = append(rows, row)
		var cells []string
		for _, v := range row {
			cells = append(cells, fmt.Sprintf("%.0f", v))
		}
		fmt.Fprintln(csv, strings.Join(cells, ","))
	}
	if err := <-pubDone; err != nil && ctx.Err() == nil {
		t.Errorf("publisher: %v", err)
	}
	if err := fp.stop(2 * time.Minute); err != nil {
		t.Errorf("fraudpipe after SIGTERM: %v\n%s", err, tail(logPath, 20))
	}
	if _, exits := fp.history(); len(exits) > 0 {
		t.Errorf("fraudpipe ended %d times during the soak: %+v", len(exits), exits)
	}
	if len(rows) < 6 {
		t.Fatalf("only %d samples: run the soak for at least six sampling intervals", len(rows))
	}

	var b strings.Builder
	last := rows[len(rows)-1]
	fmt.Fprintf(&b, "soak of %s at %d/s (every %s): published %.0f (%.0f/s), decided %.0f; %d samples, %d failed scrapes\n\n",
		duration, rate, every, last[1], last[1]/last[0], last[2+6], len(rows), failedScrapes)
	b.WriteString("| series | first | last | max | slope per minute (second half) |\n|---|---|---|---|---|\n")
	for i, ser := range soakSeries {
		c := 2 + i
		first, mx := rows[0][c], 0.0
		for _, r := range rows {
			mx = math.Max(mx, r[c])
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %.1f |\n", ser.column, first, last[c], mx, slope(rows[len(rows)/2:], c)*60)
	}
	t.Log("\n" + b.String())
	os.WriteFile(filepath.Join(outDir, "summary.md"), []byte(b.String()), 0o644)

	// Goroutines and descriptors must level off: after the first third (warm-up), the
	// last third may not hold clearly more than the middle one.
	third := len(rows) / 3
	for _, c := range []struct {
		col   int
		name  string
		slack float64
	}{{3, "goroutines", 20}, {4, "open file descriptors", 20}} {
		mid, end := mean(rows[third:2*third], c.col), mean(rows[2*third:], c.col)
		if end > mid*1.2 && end-mid > c.slack {
			t.Errorf("%s keep growing: mean %.0f in the middle third of the run, %.0f in the last", c.name, mid, end)
		}
	}
	t.Logf("samples in %s", csvPath)
}

func mean(rows [][]float64, col int) float64 {
	var s float64
	for _, r := range rows {
		s += r[col]
	}
	return s / float64(len(rows))
}

// slope is the least-squares slope of column col against elapsed seconds (column 0).
func slope(rows [][]float64, col int) float64 {
	n := float64(len(rows))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, r := range rows {
		sx += r[0]
		sy += r[col]
		sxx += r[0] * r[0]
		sxy += r[0] * r[col]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
