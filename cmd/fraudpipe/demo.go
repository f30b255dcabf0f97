package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sources/feedback"
	"github.com/fraudpipe/fraudpipe/sources/gen"
	natssrc "github.com/fraudpipe/fraudpipe/sources/nats"
)

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "[--dir DIR] [--rate N] [--duration D] [--lines]",
		`Shows the whole system working on one machine, with nothing installed: an embedded NATS
JetStream server; the generator publishing payments into it at a steady rate, with its
fraud scenarios and chargebacks confirmed a week of simulated time later; the pipeline
reading the stream (enrichment, velocity and terminal features, rules, the bundled model),
posting approved payments to a SQLite ledger, archiving decisions in Parquet and publishing
alerts on a NATS subject; and a live view refreshed each second: rates, decisions, the
reasons that fire most, latency, the ledger and the alerts. Ctrl-C (or --duration) stops
it cleanly and prints where everything was written. Simulated time runs far faster than
the clock: a day of payments passes in a few seconds.`, stdout)
	dir := fs.String("dir", "out/demo", "folder for this run's files (a new subfolder each run)")
	rate := fs.Float64("rate", 2000, "payments published per second")
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	plain := fs.Bool("lines", false, "print the live view as one line a second instead of redrawing it (the default when the output is not a terminal)")
	customers := fs.Int("customers", 5000, "simulated customers (cards)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *rate <= 0 {
		return &usageError{"--rate must be more than 0"}
	}
	runDir := filepath.Join(*dir, time.Now().UTC().Format("20060102-150405"))
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(runDir, "fraudpipe.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	logger := slog.New(slog.NewTextHandler(logFile, nil))

	natsAddr := "127.0.0.1:4222"
	if !portFree(natsAddr) {
		if natsAddr, err = anyFreeAddr(); err != nil {
			return err
		}
	}
	// The demo's config is written beside its files, so it can be read, changed and run
	// again with fraudpipe run --config.
	cfgPath := filepath.Join(runDir, "demo.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(demoConfig, natsAddr, natsAddr)), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}

	reg := newRegistry()
	out := outputs{
		decisions: cfg.Resolve(cfg.Output.Decisions.Path), deadLetters: cfg.Resolve(cfg.Output.DeadLetters.Path),
		logger: logger, registry: reg,
	}
	out.metrics = pipeline.NewMetrics(reg)
	if out.checkpoints, err = openCheckpointStore(context.Background(), cfg); err != nil {
		return err
	}
	var adminAddr string
	if portFree("127.0.0.1:9464") {
		if adm, err := startAdmin("127.0.0.1:9464", reg, logger); err == nil {
			adm.ready.Store(true)
			defer adm.stop()
			adminAddr = "127.0.0.1:9464"
		}
	}
	// The source first: it starts the embedded server the alerts sink publishes to.
	src, err := openSource(cfg, sourceEnv{ctx: context.Background(), cfgPath: "demo", logger: logger, registry: reg})
	if err != nil {
		return err
	}
	defer src.Close()
	url := src.(*natsSource).embedded.ClientURL()
	st, err := build(cfg, out)
	if err != nil {
		return err
	}

	nc, err := nats.Connect(url)
	if err != nil {
		st.close(context.Background())
		return err
	}
	defer nc.Close()
	alertsPath := filepath.Join(runDir, "alerts.ndjson")
	alertsFile, err := os.Create(alertsPath)
	if err != nil {
		st.close(context.Background())
		return err
	}
	defer alertsFile.Close()
	var alerts atomic.Int64
	sub, err := nc.Subscribe("fraudpipe.alerts", func(m *nats.Msg) {
		alerts.Add(1)
		alertsFile.Write(append(m.Data, '\n'))
	})
	if err != nil {
		st.close(context.Background())
		return err
	}
	defer sub.Unsubscribe()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() { pubDone <- publishGenerated(pubCtx, nc, *customers, *rate, &published) }() // ends with the count stored

	fmt.Fprintf(stdout, "fraudpipe demo: NATS at %s (publish more with: fraudpipe publish --nats %s --input FILE)\n", url, url)
	if adminAddr != "" {
		fmt.Fprintf(stdout, "metrics: http://%s/metrics\n", adminAddr)
	}
	fmt.Fprintf(stdout, "files: %s   (Ctrl-C stops)\n\n", runDir)
	view := &liveView{reg: reg, out: stdout, redraw: !*plain && isTerminal(stdout), started: time.Now(),
		published: published.Load, alerts: alerts.Load}
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				view.frame()
			}
		}
	}()

	// On Ctrl-C (or at --duration) the publisher stops first; the pipeline then reads what
	// was published, for a few seconds at most, and stops with a final checkpoint.
	engineCtx, stopEngine := context.WithCancel(context.Background())
	defer stopEngine()
	var pubErr error
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-ctx.Done()
		stopPub()
		pubErr = <-pubDone
		for deadline := time.Now().Add(5 * time.Second); eventsSeen(reg) < float64(published.Load()) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond) // polling interval
		}
		stopEngine()
	}()
	runErr := st.engine.Run(engineCtx, src)
	stopEngine()
	stop() // the engine may have failed on its own: stop the publisher too
	<-drained
	<-viewDone
	view.frame()
	nc.Flush()
	closeErr := st.close(context.Background())
	if errors.Is(pubErr, context.Canceled) || errors.Is(pubErr, context.DeadlineExceeded) {
		pubErr = nil
	}
	if err := errors.Join(runErr, closeErr, pubErr); err != nil {
		return err
	}
	s := st.engine.Stats()
	fmt.Fprintf(stdout, "\nstopped after %s: %d published, %d decided (approve %d, review %d, decline %d), %d feedback, %d alerts\n",
		time.Since(view.started).Round(time.Second), published.Load(), s.Decided,
		s.ByOutcome[pipeline.Approve], s.ByOutcome[pipeline.Review], s.ByOutcome[pipeline.Decline], s.Feedback, alerts.Load())
	fmt.Fprintf(stdout, "decisions:    %s\n", cfg.Resolve(cfg.Output.Decisions.Path))
	fmt.Fprintf(stdout, "dead letters: %s\n", cfg.Resolve(cfg.Output.DeadLetters.Path))
	fmt.Fprintf(stdout, "ledger:       %s (fraudpipe ledger verify --ledger %s)\n", cfg.Resolve(cfg.Ledger.Path), cfg.Resolve(cfg.Ledger.Path))
	fmt.Fprintf(stdout, "archive:      %s (Parquet, by event-time hour)\n", cfg.Resolve(cfg.Output.Parquet.Path))
	fmt.Fprintf(stdout, "alerts:       %s\n", alertsPath)
	fmt.Fprintf(stdout, "checkpoints:  %s\n", cfg.Resolve(cfg.Checkpoint.Dir))
	fmt.Fprintf(stdout, "log:          %s\n", logFile.Name())
	return nil
}

// demoConfig is the demo's config; %s are the embedded server's address.
const demoConfig = `# The config of one fraudpipe demo run (fraudpipe demo). Run it again with
#   fraudpipe run --config THIS_FILE
source:
  type: nats
  nats:
    embedded: true
    listen: %s
    store_dir: nats
ledger:
  path: ledger.db
  chargebacks: true
output:
  decisions: {path: decisions.ndjson}
  dead_letters: {path: dead-letters.ndjson}
  parquet:
    path: archive
    spool_dir: parquet-spool
    roll_age: 15s
  alerts:
    - name: demo-alerts
      type: nats
      nats_url: nats://%s
      subject: fraudpipe.alerts
      on: [decline]
checkpoint:
  dir: checkpoints
  interval: 5s
`

// anyFreeAddr returns a loopback address with a free port.
func anyFreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// portFree reports whether addr can be listened on.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// publishGenerated publishes the generator's payments, with the feedback of its frauds a
// week of simulated time later, at rate messages a second, until ctx ends.
func publishGenerated(ctx context.Context, nc *nats.Conn, customers int, rate float64, n *atomic.Int64) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	o := gen.DefaultOptions()
	o.Customers, o.Terminals, o.Days = customers, 2*customers, 3650
	o.Seed = uint64(time.Now().UnixNano())
	o.Start = time.Now().UTC().Truncate(24 * time.Hour)
	stream := feedback.FromLabels(&genSource{g: gen.New(o)}, 7*24*time.Hour, 256)
	pr, pw := io.Pipe()
	go func() {
		for ctx.Err() == nil {
			msgs, _, err := stream.ReadBatch(ctx)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			for _, m := range msgs {
				if _, err := pw.Write(append(m.Data, '\n')); err != nil {
					return
				}
			}
		}
		pw.CloseWithError(ctx.Err())
	}()
	po, err := natssrc.PublishOptionsFor(ctx, js, natssrc.DefaultStream)
	if err != nil {
		return err
	}
	po.Rate = rate
	counting := &countingReader{r: pr, lines: n}
	_, err = natssrc.Publish(ctx, js, counting, po)
	pr.Close()
	// What the stream stored: a line read when the stop came may not have been sent.
	if s, serr := js.Stream(context.Background(), natssrc.DefaultStream); serr == nil {
		if info, ierr := s.Info(context.Background()); ierr == nil {
			n.Store(int64(info.State.Msgs))
		}
	}
	return err
}

// countingReader counts the lines read through it.
type countingReader struct {
	r     io.Reader
	lines *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.lines.Add(int64(strings.Count(string(p[:n]), "\n")))
	return n, err
}

// genSource is the generator as a source.
type genSource struct {
	g   *gen.Generator
	buf []byte
}

func (s *genSource) Name() string { return "gen" }
func (s *genSource) Close() error { return nil }
func (s *genSource) ReadBatch(context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	var msgs []pipeline.Message
	for range 256 {
		line, ok := s.g.Next(nil)
		if !ok {
			break
		}
		msgs = append(msgs, pipeline.Message{Data: line})
	}
	if len(msgs) == 0 {
		return nil, nil, pipeline.ErrEndOfInput
	}
	return msgs, nil, nil
}

// liveView renders the demo's live view from the metrics registry.
type liveView struct {
	reg       *prometheus.Registry
	out       io.Writer
	redraw    bool
	started   time.Time
	published func() int64
	alerts    func() int64

	lastEvents float64
	lastAt     time.Time
}

func (v *liveView) frame() {
	mfs, err := v.reg.Gather()
	if err != nil {
		return
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	events := sumOf(byName["fraudpipe_engine_events_total"])
	now := time.Now()
	rate := 0.0
	if !v.lastAt.IsZero() {
		rate = (events - v.lastEvents) / now.Sub(v.lastAt).Seconds()
	}
	v.lastEvents, v.lastAt = events, now
	outcomes := labelled(byName["fraudpipe_engine_decisions_total"], "outcome")
	ledgerSt := labelled(byName["fraudpipe_ledger_results_total"], "status")
	charge := labelled(byName["fraudpipe_ledger_chargebacks_total"], "result")
	reasons := labelled(byName["fraudpipe_engine_reasons_total"], "reason")
	p50, p99 := quantile(byName["fraudpipe_engine_latency_seconds"], 0.5), quantile(byName["fraudpipe_engine_latency_seconds"], 0.99)
	lag := sumOf(byName["fraudpipe_source_lag_messages"])
	top := topReasons(reasons, 4)
	elapsed := now.Sub(v.started).Round(time.Second)
	if !v.redraw {
		fmt.Fprintf(v.out, "t=%s published=%d events=%.0f rate=%.0f/s approve=%.0f review=%.0f decline=%.0f latency_p50=%s latency_p99=%s posted=%.0f reversed=%.0f alerts=%d lag=%.0f top=%s\n",
			elapsed, v.published(), events, rate, outcomes["approve"], outcomes["review"], outcomes["decline"],
			fmtSecs(p50), fmtSecs(p99), ledgerSt["posted"], charge["reversed"], v.alerts(), lag, strings.Join(top, ","))
		return
	}
	var b strings.Builder
	b.WriteString("\x1b[H\x1b[2J")
	fmt.Fprintf(&b, "fraudpipe demo, %s   (Ctrl-C stops)\n\n", elapsed)
	fmt.Fprintf(&b, "  published   %10d    decided %10.0f    %8.0f tx/s    not yet read %.0f\n", v.published(), events, rate, lag)
	fmt.Fprintf(&b, "  decisions   approve %10.0f    review %8.0f    decline %8.0f\n", outcomes["approve"], outcomes["review"], outcomes["decline"])
	fmt.Fprintf(&b, "  latency     p50 %s    p99 %s   (read to durable in every sink)\n", fmtSecs(p50), fmtSecs(p99))
	fmt.Fprintf(&b, "  ledger      posted %10.0f    rejected %6.0f    chargebacks reversed %.0f\n", ledgerSt["posted"], ledgerSt["rejected"], charge["reversed"])
	fmt.Fprintf(&b, "  alerts      %d published on fraudpipe.alerts\n\n", v.alerts())
	b.WriteString("  top reasons\n")
	for _, r := range top {
		fmt.Fprintf(&b, "    %s\n", r)
	}
	fmt.Fprint(v.out, b.String())
}

// eventsSeen is the number of messages the engine has taken through its stages.
func eventsSeen(reg *prometheus.Registry) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "fraudpipe_engine_events_total" {
			return sumOf(mf)
		}
	}
	return 0
}

// sumOf adds every series of a counter or gauge family.
func sumOf(mf *dto.MetricFamily) float64 {
	if mf == nil {
		return 0
	}
	var s float64
	for _, m := range mf.GetMetric() {
		switch {
		case m.Counter != nil:
			s += m.GetCounter().GetValue()
		case m.Gauge != nil:
			s += m.GetGauge().GetValue()
		}
	}
	return s
}

// labelled maps a label's values to their counter values.
func labelled(mf *dto.MetricFamily, label string) map[string]float64 {
	out := map[string]float64{}
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				out[lp.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// quantile estimates a quantile of a histogram by linear interpolation within buckets.
func quantile(mf *dto.MetricFamily, q float64) float64 {
	if mf == nil || len(mf.GetMetric()) == 0 {
		return math.NaN()
	}
	h := mf.GetMetric()[0].GetHistogram()
	total := float64(h.GetSampleCount())
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, b := range h.GetBucket() {
		c := float64(b.GetCumulativeCount())
		if c >= rank {
			if c == prevCount {
				return b.GetUpperBound()
			}
			return prevBound + (b.GetUpperBound()-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = b.GetUpperBound(), c
	}
	return prevBound
}

func fmtSecs(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return time.Duration(s * float64(time.Second)).Round(10 * time.Microsecond).String()
}

// topReasons lists the n most frequent reasons as "reason count".
func topReasons(m map[string]float64, n int) []string {
	type rc struct {
		r string
		c float64
	}
	var all []rc
	for r, c := range m {
		all = append(all, rc{r, c})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].c != all[j].c {
			return all[i].c > all[j].c
		}
		return all[i].r < all[j].r
	})
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, fmt.Sprintf("%s(%.0f)", all[i].r, all[i].c))
	}
	return out
}
