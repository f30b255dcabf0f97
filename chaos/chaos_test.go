package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fraudpipe/fraudpipe/sinks/opensearch"
	"github.com/fraudpipe/fraudpipe/sinks/opensearch/osdouble"
	"github.com/fraudpipe/fraudpipe/sources/gen"
	natssrc "github.com/fraudpipe/fraudpipe/sources/nats"
)

// params are the size and the fault durations of one run of the matrix.
type params struct {
	txns                       int
	repeat                     int
	s3Down, osDown, hookDown   time.Duration
	diskFull, natsDown, settle time.Duration
	rate                       float64
}

func loadParams(t *testing.T) params {
	d := envDuration(t, "CHAOS_FAULT", 2*time.Second)
	p := params{
		txns:     envInt(t, "CHAOS_TXNS", 60_000),
		repeat:   envInt(t, "CHAOS_REPEAT", 2),
		s3Down:   envDuration(t, "CHAOS_S3_DOWN", max(d, 3*time.Second)), // longer than roll_age (2s), so uploads fail
		osDown:   envDuration(t, "CHAOS_OS_DOWN", d),
		hookDown: envDuration(t, "CHAOS_WEBHOOK_DOWN", d),
		diskFull: envDuration(t, "CHAOS_DISK_FULL", d),
		natsDown: envDuration(t, "CHAOS_NATS_DOWN", time.Second),
		settle:   envDuration(t, "CHAOS_SETTLE", time.Second),
	}
	// Publish at a rate that spreads the stream over the fault schedule (with a margin for
	// the time recoveries take).
	sched := time.Duration(p.repeat) * (p.s3Down + 2*p.osDown + p.hookDown + 2*p.diskFull + p.natsDown + 8*p.settle + 4*time.Second)
	sched = sched * 3 / 2
	p.rate = float64(p.txns) / sched.Seconds()
	if r := envInt(t, "CHAOS_RATE", 0); r > 0 {
		p.rate = float64(r)
	}
	return p
}

// faultResult is what one injected fault did.
type faultResult struct {
	Kind      string
	Round     int
	Start     time.Time
	Held      time.Duration // how long the fault was in force
	Recovered time.Duration // from the end of the fault until every transaction published by then was decided; -1: not within the deadline
	Backlog   int           // transactions published and not yet decided at the end of the fault
	Retried   map[string]float64
	Failed    map[string]float64
	CkptFail  float64
	MaxLag    float64
	Note      string
}

// TestFaultMatrix runs the real binary on a NATS stream while it injects, each several
// times, SIGKILL of fraudpipe, S3 stopped, OpenSearch answering 429 then 500, the alert
// webhook down, the checkpoint disk full and the NATS server restarted; then checks that
// every published transaction was decided once, posted once when approved, indexed once,
// archived, and alerted on (docs/reliability.md).
func TestFaultMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary through a fault schedule of a minute or more")
	}
	p := loadParams(t)
	t.Logf("%d transactions at %.0f/s; each fault %d times: S3 down %s, OpenSearch 429 for %s then 500 for as long, webhook down %s, disk full %s, NATS down %s",
		p.txns, p.rate, p.repeat, p.s3Down, p.osDown, p.hookDown, p.diskFull, p.natsDown)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "fraudpipe.log")
	if keep := os.Getenv("CHAOS_KEEP"); keep != "" {
		t.Cleanup(func() {
			os.MkdirAll(keep, 0o755)
			for _, f := range []string{"fraudpipe.log", "run.yaml", "metrics.csv"} {
				if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					os.WriteFile(filepath.Join(keep, f), b, 0o644)
				}
			}
		})
	}

	// The checkpoint directory on a small tmpfs, to fill.
	ckptDir := filepath.Join(dir, "checkpoints")
	os.MkdirAll(ckptDir, 0o755)
	diskFault := true
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", ckptDir).CombinedOutput(); err != nil {
		diskFault = false
		t.Logf("the checkpoint-disk-full fault is skipped: mounting a tmpfs needs root (mount: %v: %s)", err, bytes.TrimSpace(out))
	} else {
		t.Cleanup(func() {
			if out, err := exec.Command("umount", ckptDir).CombinedOutput(); err != nil {
				exec.Command("umount", "-l", ckptDir).Run()
				t.Logf("umount %s: %v %s", ckptDir, err, out)
			}
		})
	}

	// NATS, external to fraudpipe, on a fixed port and store so that it can be restarted.
	natsAddr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	natsPort := natsAddr[strings.LastIndexByte(natsAddr, ':')+1:]
	natsOpts := natssrc.EmbeddedOptions{StoreDir: filepath.Join(dir, "nats"), Port: atoi(natsPort)}
	ns, err := natssrc.StartEmbedded(natsOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown() })
	natsURL := "nats://" + natsAddr
	{
		nc, err := nats.Connect(natsURL)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		ctx, cancel := ctxWithTimeout(10 * time.Second)
		if _, err := natssrc.EnsureStream(ctx, js, natssrc.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
		cancel()
		nc.Close()
	}

	// S3 on loopback, OpenSearch double, webhook receiver.
	backend := s3mem.New()
	if err := backend.CreateBucket("archive"); err != nil {
		t.Fatal(err)
	}
	s3srv, err := NewServer(gofakes3.New(backend).Server())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s3srv.Close)
	osd, err := osdouble.New(osdouble.Options{Mappings: opensearch.Mappings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(osd.Close)
	secret := "chaos-webhook-key-0123456789"
	hook := newWebhook([]byte(secret))
	hooksrv, err := NewServer(hook)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hooksrv.Close)
	adminAddr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}

	ledgerCfg := "{driver: sqlite, path: ledger.db}"
	if pg := firstEnv("PGURL", "FRAUDPIPE_TEST_POSTGRES"); pg != "" {
		ledgerCfg = "{driver: postgres, url: \"${CHAOS_PGURL}\"}"
		t.Log("ledger: PostgreSQL (an empty database is expected)")
	}
	cfg := fmt.Sprintf(`# Written by TestFaultMatrix.
source:
  type: nats
  nats: {url: "%s"}
ledger: %s
output:
  decisions: {path: decisions.ndjson}
  dead_letters: {path: dead-letters.ndjson}
  opensearch:
    - name: os
      urls: ["%s"]
      retention: 0s
      batching: {count: 1000}
      retry: {backoff: {initial_interval: 100ms, max_interval: 2s}}
  parquet:
    path: s3://archive/decisions
    spool_dir: parquet-spool
    roll_size_mb: 4
    roll_age: 2s
    s3: {endpoint: "%s", region: us-east-1, path_style: true, access_key_id: chaos, secret_access_key: "${CHAOS_S3_SECRET}"}
  alerts:
    - name: desk
      type: webhook
      url: "%s/required"
      secret: "${CHAOS_WEBHOOK_SECRET}"
      required: true
      rate_limit: 0
      retry: {backoff: {initial_interval: 100ms, max_interval: 2s}}
    - name: desk-best-effort
      type: webhook
      url: "%s/best-effort"
      secret: "${CHAOS_WEBHOOK_SECRET}"
      rate_limit: 0
      retry: {backoff: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 2s}}
admin: {listen: "%s"}
checkpoint: {dir: checkpoints, interval: 1s, keep: 2}
`, natsURL, ledgerCfg, osd.URL, s3srv.URL(), hooksrv.URL(), hooksrv.URL(), adminAddr)
	cfgPath := filepath.Join(dir, "run.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"CHAOS_WEBHOOK_SECRET=" + secret, "CHAOS_S3_SECRET=chaos-secret", "CHAOS_PGURL=" + firstEnv("PGURL", "FRAUDPIPE_TEST_POSTGRES")}
	if out, err := runBin(dir, env, "lint", "--config", cfgPath); err != nil {
		t.Fatalf("lint: %v\n%s", err, out)
	}

	fp := startProc(t, dir, logPath, env, "run", "--config", cfgPath)
	metricsURL := "http://" + adminAddr + "/metrics"
	sc := startScraper(metricsURL, 500*time.Millisecond)
	defer sc.close()
	if err := waitFor(time.Minute, 50*time.Millisecond, func() error { _, err := Scrape(metricsURL); return err }); err != nil {
		t.Fatalf("fraudpipe did not serve /metrics within a minute: %v\n%s", err, tail(logPath, 30))
	}

	// The publisher: a fixed-seed generated stream, cut at p.txns.
	o := gen.DefaultOptions()
	o.Seed, o.Customers, o.Terminals = 9, 3000, 6000
	o.Days = p.txns/(o.Customers*3/2) + 5 // about two payments a customer a day
	g := gen.New(o)
	var published []string
	left := p.txns
	next := func(dst []byte) ([]byte, bool) {
		if left == 0 {
			return dst, false
		}
		line, ok := g.Next(dst)
		if !ok {
			return dst, false
		}
		left--
		var tx struct{ ID string }
		json.Unmarshal(line[len(dst):], &tx)
		published = append(published, tx.ID)
		return line, true
	}
	pub := &Publisher{URL: natsURL, Subject: natssrc.StreamOptions{}.InputSubject(), Rate: p.rate}
	pubCtx, pubCancel := context.WithCancel(context.Background())
	defer pubCancel()
	pubDone := make(chan error, 1)
	pubStart := time.Now()
	go func() { pubDone <- pub.Run(pubCtx, next) }()

	decided := &lineCounter{path: filepath.Join(dir, "decisions.ndjson")}
	var results []faultResult
	recoverDeadline := 3*time.Minute + p.osDown
	run := func(kind string, round int, hold time.Duration, on, off func() error) {
		r := faultResult{Kind: kind, Round: round, Start: time.Now(), Retried: map[string]float64{}, Failed: map[string]float64{}}
		if err := on(); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if hold > 0 {
			time.Sleep(hold) // the fault stays in force this long
		}
		if off != nil {
			if err := off(); err != nil {
				t.Fatalf("%s, ending it: %v", kind, err)
			}
		}
		end := time.Now()
		r.Held = end.Sub(r.Start)
		target := int(pub.Sent.Load())
		r.Backlog = target - decided.count()
		objects := countObjects(t, s3srv.URL())
		if err := waitFor(recoverDeadline, 100*time.Millisecond, func() error {
			if err := ready(adminAddr); err != nil {
				return err
			}
			if n := decided.count(); n < target {
				return fmt.Errorf("%d of %d decided", n, target)
			}
			return nil
		}); err != nil {
			r.Recovered = -1
			r.Note = err.Error()
			t.Errorf("%s (round %d): not recovered within %s: %v\n%s", kind, round, recoverDeadline, err, tail(logPath, 20))
		} else {
			r.Recovered = time.Since(end)
		}
		if kind == "s3-down" {
			err := waitFor(recoverDeadline, 100*time.Millisecond, func() error {
				if countObjects(t, s3srv.URL()) > objects {
					return nil
				}
				if spooled, _ := filepath.Glob(filepath.Join(dir, "parquet-spool", "*.spool")); len(spooled) == 0 {
					return nil // nothing was waiting for S3
				}
				return errors.New("no object uploaded since S3 came back")
			})
			if err != nil {
				r.Note = err.Error()
			} else {
				r.Note = fmt.Sprintf("archive uploads going again %.1fs after S3 came back", time.Since(end).Seconds())
			}
		}
		if kind == "nats-restart" {
			r.Note = fmt.Sprintf("publisher resent %d messages so far", pub.Retries.Load())
		}
		win := sc.between(r.Start, time.Now())
		for _, s := range []string{"os", "parquet", "desk", "desk-best-effort", "decisions"} {
			r.Retried[s] = Increase(win, "fraudpipe_sink_items_total", `sink="`+s+`"`, `outcome="retried"`)
			r.Failed[s] = Increase(win, "fraudpipe_sink_items_total", `sink="`+s+`"`, `outcome="failed"`)
		}
		r.CkptFail = Increase(win, "fraudpipe_checkpoint_total", `result="failed"`)
		r.MaxLag = Max(win, "fraudpipe_source_lag_messages")
		t.Logf("%-20s round %d: held %5.1fs, backlog %6d, recovered in %5.1fs, retried %v, failed %v, checkpoint failures %.0f, max lag %.0f %s",
			kind, round, r.Held.Seconds(), r.Backlog, r.Recovered.Seconds(), compact(r.Retried), compact(r.Failed), r.CkptFail, r.MaxLag, r.Note)
		results = append(results, r)
		time.Sleep(p.settle) // normal operation between faults
	}

	filler := filepath.Join(ckptDir, "filler")
	for round := 1; round <= p.repeat; round++ {
		run("sigkill", round, 0, func() error {
			if !fp.kill() {
				return errors.New("no fraudpipe process to kill")
			}
			return nil
		}, nil)
		run("s3-down", round, p.s3Down, func() error { s3srv.Stop(); return nil }, s3srv.Start)
		run("opensearch-429-then-500", round, 0, func() error {
			osd.SetFault(429)
			time.Sleep(p.osDown) // 429s for this long, then 500s
			osd.SetFault(500)
			time.Sleep(p.osDown)
			osd.SetFault(0)
			return nil
		}, nil)
		run("webhook-down", round, p.hookDown, func() error { hooksrv.Stop(); return nil }, hooksrv.Start)
		if diskFault {
			run("checkpoint-disk-full", round, p.diskFull, func() error { return fill(filler) }, func() error { return os.Remove(filler) })
			// The disk fills, the process dies while checkpoints fail, and restarts on the
			// full disk: it must resume from the last checkpoint written before.
			run("disk-full+sigkill", round, p.diskFull, func() error {
				if err := fill(filler); err != nil {
					return err
				}
				time.Sleep(p.diskFull / 2) // let checkpoints fail for a while
				if !fp.kill() {
					return errors.New("no fraudpipe process to kill")
				}
				return nil
			}, func() error { return os.Remove(filler) })
		}
		run("nats-restart", round, p.natsDown, func() error { ns.Shutdown(); return nil }, func() error {
			var err error
			ns, err = natssrc.StartEmbedded(natsOpts)
			return err
		})
	}

	// The publisher finishes, fraudpipe catches up, then stops.
	if err := <-pubDone; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	pubElapsed := time.Since(pubStart)
	if err := waitFor(recoverDeadline, 100*time.Millisecond, func() error {
		if n := decided.count(); n < p.txns {
			return fmt.Errorf("%d of %d decided", n, p.txns)
		}
		return nil
	}); err != nil {
		t.Fatalf("fraudpipe did not catch up: %v\n%s", err, tail(logPath, 30))
	}
	// Alerts of the best-effort alerter are still being delivered in the background.
	waitFor(30*time.Second, 100*time.Millisecond, func() error {
		s, err := Scrape(metricsURL)
		if err != nil {
			return err
		}
		if q := s.Sum("fraudpipe_queue_depth"); q > 0 {
			return fmt.Errorf("queues hold %.0f batches", q)
		}
		return nil
	})
	final := sc.all()
	stopErr := fp.stop(2 * time.Minute)
	if stopErr != nil {
		t.Errorf("fraudpipe after SIGTERM: %v\n%s", stopErr, tail(logPath, 20))
	}
	starts, exits := fp.history()
	unexpected := 0
	for _, e := range exits {
		if !e.Expected {
			unexpected++
			t.Errorf("fraudpipe ended unexpectedly at %s: %s", e.At.Format(time.TimeOnly), e.Err)
		}
	}
	t.Logf("published %d in %.1fs (%d resent after failures); fraudpipe started %d times, %d unexpected exits",
		pub.Published.Load(), pubElapsed.Seconds(), pub.Retries.Load(), starts, unexpected)

	c := check(t, dir, env, published, osd, hook, s3srv.URL())
	writeMetricsCSV(t, filepath.Join(dir, "metrics.csv"), final)
	report(t, p, results, c, logSummary(t, logPath), final, starts, unexpected, pubElapsed)
}

// ready reports whether fraudpipe's /readyz answers 200.
func ready(addr string) error {
	resp, err := scrapeClient.Get("http://" + addr + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// countObjects counts the objects of the archive, or -1 when S3 cannot be listed.
func countObjects(t *testing.T, endpoint string) int {
	cl := s3.New(s3.Options{BaseEndpoint: aws.String(endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("chaos", "chaos-secret", "")})
	n := 0
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String("archive"), Prefix: aws.String("decisions/")})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			return -1
		}
		n += len(page.Contents)
	}
	return n
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func compact(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%s=%.0f", k, v))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func runBin(dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// fill writes path until the file system is full.
func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return fmt.Errorf("fill %s: %w", path, err)
		}
	}
}

// checks holds what the end-of-run checks counted.
type checks struct {
	Published, Decided, DecisionLines, Approved, LedgerEntries int
	Indexed, IndexedTwice                                      int
	Archived, ArchivedRows, ArchiveObjects                     int
	AlertsExpected, AlertsRequired, AlertsRequiredRepeats      int
	AlertsBestEffort, AlertsBestEffortDead, AlertsBestLost     int
	DeadLetters                                                int
}

func check(t *testing.T, dir string, env []string, published []string, osd *osdouble.Double, hook *webhook, s3url string) checks {
	var c checks
	c.Published = len(published)
	pubSet := map[string]bool{}
	for _, id := range published {
		pubSet[id] = true
	}
	if len(pubSet) != len(published) {
		t.Errorf("the generated stream repeats ids: %d ids in %d transactions", len(pubSet), len(published))
	}

	// Decisions file: one decision per id.
	final := map[string]decision{}
	readNDJSON(t, filepath.Join(dir, "decisions.ndjson"), func(line []byte) error {
		var d decision
		if err := json.Unmarshal(line, &d); err != nil {
			return err
		}
		c.DecisionLines++
		final[d.ID] = d
		return nil
	})
	c.Decided = len(final)
	if c.DecisionLines != c.Decided {
		t.Errorf("decisions file: %d lines for %d transactions: %d decided more than once", c.DecisionLines, c.Decided, c.DecisionLines-c.Decided)
	}
	missing := 0
	for _, id := range published {
		if _, ok := final[id]; !ok {
			if missing < 5 {
				t.Errorf("transaction %s was published and never decided", id)
			}
			missing++
		}
	}
	if missing > 0 || c.Decided != len(published) {
		t.Errorf("%d decisions for %d published transactions, %d missing", c.Decided, len(published), missing)
	}
	readNDJSON(t, filepath.Join(dir, "dead-letters.ndjson"), func([]byte) error { c.DeadLetters++; return nil })
	if c.DeadLetters > 0 {
		t.Errorf("%d input dead letters for a generated stream of valid transactions", c.DeadLetters)
	}

	// Ledger: each approved transaction posted once, invariants hold.
	wantPosted := map[string]bool{}
	for id, d := range final {
		if d.Decision == "approve" {
			wantPosted[id] = true
			if d.Ledger != "posted" && d.Ledger != "duplicate" {
				t.Errorf("%s approved with ledger %q", id, d.Ledger)
			}
		}
	}
	c.Approved = len(wantPosted)
	if out, err := runBin(dir, env, "ledger", "verify", "--config", "run.yaml"); err != nil {
		t.Errorf("ledger verify: %v\n%s", err, out)
	}
	exportPath := filepath.Join(dir, "ledger-export.ndjson")
	if out, err := runBin(dir, env, "ledger", "export", "--config", "run.yaml", "--out", exportPath); err != nil {
		t.Errorf("ledger export: %v\n%s", err, out)
	}
	posted := map[string]int{}
	readNDJSON(t, exportPath, func(line []byte) error {
		var e struct {
			TxID     string `json:"tx_id"`
			Reverses string `json:"reverses"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			return err
		}
		if e.Reverses == "" && !strings.HasPrefix(e.TxID, "opening:") && pubSet[e.TxID] {
			posted[e.TxID]++
		}
		return nil
	})
	c.LedgerEntries = len(posted)
	diffSets(t, "ledger entries", "approved decisions", posted, wantPosted)

	// OpenSearch: every decision indexed, once (in one index), nothing dead-lettered.
	ids := osd.IDs()
	c.Indexed = len(ids)
	for id, n := range ids {
		if n > 1 {
			c.IndexedTwice++
			if c.IndexedTwice <= 5 {
				t.Errorf("%s is indexed in %d indices", id, n)
			}
		}
	}
	diffSets(t, "OpenSearch documents", "decisions", ids, keys(final))
	if dl := deadLetterIDs(t, filepath.Join(dir, "os.dead.ndjson")); len(dl) > 0 {
		t.Errorf("OpenSearch dead letters after retryable faults only: %v", countsOf(dl))
	}

	// Parquet on S3: every decision archived; repeats allowed, deduplicated by id.
	archived, rows, objects := readArchive(t, s3url)
	c.Archived, c.ArchivedRows, c.ArchiveObjects = len(archived), rows, objects
	diffSets(t, "archived ids", "decisions", archived, keys(final))

	// Alerts: the required webhook has every decline and review; the best-effort one has
	// each delivered or dead-lettered, except what was queued when a SIGKILL landed.
	expected := map[string]bool{}
	for id, d := range final {
		if d.Decision == "decline" || d.Decision == "review" {
			expected[id] = true
		}
	}
	c.AlertsExpected = len(expected)
	req := hook.ids("/required")
	c.AlertsRequired = 0
	for id, n := range req {
		if expected[id] {
			c.AlertsRequired++
		}
		c.AlertsRequiredRepeats += n - 1
	}
	for id := range expected {
		if req[id] == 0 {
			t.Errorf("alert for %s (%s) never reached the required webhook", id, final[id].Decision)
			break
		}
	}
	if dl := deadLetterIDs(t, filepath.Join(dir, "desk.dead.ndjson")); len(dl) > 0 {
		t.Errorf("the required alerter dead-lettered %v", countsOf(dl))
	}
	be := hook.ids("/best-effort")
	beDead := deadLetterIDs(t, filepath.Join(dir, "desk-best-effort.dead.ndjson"))
	for id := range expected {
		switch {
		case be[id] > 0:
			c.AlertsBestEffort++
		case anyHas(beDead, id):
			c.AlertsBestEffortDead++
		default:
			c.AlertsBestLost++
		}
	}
	if hook.bad > 0 {
		t.Errorf("%d webhook requests with a bad signature", hook.bad)
	}
	return c
}

func keys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func anyHas(m map[string]map[string]bool, id string) bool {
	for _, s := range m {
		if s[id] {
			return true
		}
	}
	return false
}

func countsOf(m map[string]map[string]bool) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

// diffSets reports the ids in got and not in want and the reverse.
func diffSets[V any](t *testing.T, gotName, wantName string, got map[string]V, want map[string]bool) {
	t.Helper()
	var extra, missing []string
	for id := range got {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	for id := range want {
		if _, ok := got[id]; !ok {
			missing = append(missing, id)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	if len(extra) > 0 {
		t.Errorf("%d %s are not %s, e.g. %v", len(extra), gotName, wantName, extra[:min(5, len(extra))])
	}
	if len(missing) > 0 {
		t.Errorf("%d %s are missing from the %s, e.g. %v", len(missing), wantName, gotName, missing[:min(5, len(missing))])
	}
}

// readArchive reads back every Parquet object under s3://archive/decisions and returns
// the ids with their number of rows, the rows and the objects.
func readArchive(t *testing.T, endpoint string) (map[string]int, int, int) {
	t.Helper()
	ctx := context.Background()
	cl := s3.New(s3.Options{BaseEndpoint: aws.String(endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("chaos", "chaos-secret", "")})
	ids := map[string]int{}
	rows, objects := 0, 0
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String("archive"), Prefix: aws.String("decisions/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list the archive: %v", err)
		}
		for _, o := range page.Contents {
			if !strings.HasSuffix(*o.Key, ".parquet") {
				t.Errorf("archive object %s is not a Parquet file", *o.Key)
				continue
			}
			obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("archive"), Key: o.Key})
			if err != nil {
				t.Fatalf("get %s: %v", *o.Key, err)
			}
			b, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatalf("read %s: %v", *o.Key, err)
			}
			objects++
			rows += parquetIDs(t, *o.Key, b, ids)
		}
	}
	return ids, rows, objects
}

func parquetIDs(t *testing.T, name string, b []byte, ids map[string]int) int {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: not a readable Parquet file: %v", name, err)
	}
	defer rdr.Close()
	col := rdr.MetaData().Schema.ColumnIndexByName("id")
	if col < 0 {
		t.Fatalf("%s has no id column", name)
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 8192}, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cr, err := fr.GetColumn(context.Background(), col)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer cr.Release()
	n := 0
	for {
		chunked, err := cr.NextBatch(8192)
		if err != nil {
			t.Fatalf("%s: read ids: %v", name, err)
		}
		if chunked.Len() == 0 {
			chunked.Release()
			break
		}
		for _, arr := range chunked.Chunks() {
			s, ok := arr.(*array.String)
			if !ok {
				t.Fatalf("%s: id column is %s, want string", name, arr.DataType())
			}
			for i := 0; i < s.Len(); i++ {
				ids[s.Value(i)]++
				n++
			}
		}
		chunked.Release()
	}
	return n
}

// writeMetricsCSV writes a few series of every sample, for the record.
func writeMetricsCSV(t *testing.T, path string, samples []Sample) {
	var b strings.Builder
	b.WriteString("unix_ms,events_total,lag_messages,queue_depth,os_retried,parquet_retried,desk_retried,checkpoint_failed,heap_inuse_bytes,goroutines\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%d,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f\n", s.At.UnixMilli(),
			s.Sum("fraudpipe_engine_events_total"), s.Sum("fraudpipe_source_lag_messages"), s.Sum("fraudpipe_queue_depth"),
			s.Sum("fraudpipe_sink_items_total", `sink="os"`, `outcome="retried"`),
			s.Sum("fraudpipe_sink_items_total", `sink="parquet"`, `outcome="retried"`),
			s.Sum("fraudpipe_sink_items_total", `sink="desk"`, `outcome="retried"`),
			s.Sum("fraudpipe_checkpoint_total", `result="failed"`),
			s.Sum("go_memstats_heap_inuse_bytes"), s.Sum("go_goroutines"))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}

// report logs the results and, with CHAOS_OUT set, writes them there as Markdown.
func report(t *testing.T, p params, results []faultResult, c checks, logLines []string, samples []Sample, starts, unexpected int, pubElapsed time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s: %d transactions published at %.0f/s over %.1fs; fraudpipe started %d times (%d unexpected exits).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), c.Published, p.rate, pubElapsed.Seconds(), starts, unexpected)
	b.WriteString("| fault | round | held | backlog at end | recovered after | retried items | failed attempts | checkpoint failures | max lag | note |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		rec := fmt.Sprintf("%.1fs", r.Recovered.Seconds())
		if r.Recovered < 0 {
			rec = "not recovered"
		}
		fmt.Fprintf(&b, "| %s | %d | %.1fs | %d | %s | %s | %s | %.0f | %.0f | %s |\n", r.Kind, r.Round, r.Held.Seconds(), r.Backlog, rec,
			compact(r.Retried), compact(r.Failed), r.CkptFail, r.MaxLag, r.Note)
	}
	fmt.Fprintf(&b, "\nChecks: %d published, %d decided (%d decision lines), %d approved, %d ledger entries; %d indexed (%d in two indices); "+
		"%d archived ids in %d rows, %d objects; alerts: %d expected, %d at the required webhook (%d repeats), best-effort %d delivered, %d dead-lettered, %d lost; %d input dead letters.\n",
		c.Published, c.Decided, c.DecisionLines, c.Approved, c.LedgerEntries, c.Indexed, c.IndexedTwice,
		c.Archived, c.ArchivedRows, c.ArchiveObjects, c.AlertsExpected, c.AlertsRequired, c.AlertsRequiredRepeats,
		c.AlertsBestEffort, c.AlertsBestEffortDead, c.AlertsBestLost, c.DeadLetters)
	fmt.Fprintf(&b, "\nTotals from /metrics: ledger %s; sink items %s.\n", ledgerTotals(samples), sinkTotals(samples))
	b.WriteString("\nWarnings and errors in fraudpipe's log (count, level, message):\n\n```\n")
	for _, l := range logLines {
		b.WriteString(l + "\n")
	}
	b.WriteString("```\n")
	t.Log("\n" + b.String())
	if out := os.Getenv("CHAOS_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func ledgerTotals(samples []Sample) string {
	var parts []string
	for _, s := range []string{"posted", "duplicate", "rejected", "skipped"} {
		parts = append(parts, fmt.Sprintf("%s=%.0f", s, Increase(samples, "fraudpipe_ledger_results_total", `status="`+s+`"`)))
	}
	return strings.Join(parts, " ")
}

func sinkTotals(samples []Sample) string {
	var parts []string
	for _, s := range []string{"os", "parquet", "desk", "desk-best-effort"} {
		var sub []string
		for _, o := range []string{"written", "retried", "failed", "dead_lettered"} {
			if v := Increase(samples, "fraudpipe_sink_items_total", `sink="`+s+`"`, `outcome="`+o+`"`); v > 0 {
				sub = append(sub, fmt.Sprintf("%s %.0f", o, v))
			}
		}
		parts = append(parts, s+": "+strings.Join(sub, ", "))
	}
	return strings.Join(parts, "; ")
}
