package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	natssrc "github.com/fraudpipe/fraudpipe/sources/nats"
)

// TestScaleOut runs real fraudpipe processes over a 12-partition stream on a three-node
// NATS cluster, sharing a PostgreSQL ledger and a checkpoint folder: three instances
// decide the first part of a generated stream; one is killed and the other two take its
// partitions over (restarted as instances of two); then three again. At the end every
// transaction is decided, every card's window features equal those of a single replay of
// the whole stream, each approved payment is in the ledger once and the ledger verifies.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a NATS cluster and several fraudpipe processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()

	input := filepath.Join(dir, "in.ndjson")
	if code, _, stderr := fraudpipe(t, "gen", "--seed", "21", "--customers", "500", "--terminals", "1000", "--days", "20", "--out", input); code != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	all := lines(t, input)
	allIDs := ids(t, input)

	// The reference: one replay of the whole stream.
	refCfg := filepath.Join(dir, "ref.yaml")
	os.WriteFile(refCfg, []byte("ledger: {path: ref.db}\noutput: {features: true}\n"), 0o644)
	refOut := filepath.Join(dir, "ref.ndjson")
	if code, _, stderr := fraudpipe(t, "replay", "--config", refCfg, "--input", input, "--out", refOut); code != 0 {
		t.Fatalf("reference replay: %s", stderr)
	}
	ref := map[string]map[string]float64{}
	for _, l := range lines(t, refOut) {
		var d scaleDecision
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatal(err)
		}
		ref[d.ID] = d.Features
	}

	urls := startNATSCluster(t, 3)
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := natssrc.EnsureStream(ctx, js, natssrc.StreamOptions{Partitions: 12, Replicas: 3})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream on the cluster: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	publish := func(part []string) {
		t.Helper()
		data := strings.Join(part, "\n") + "\n"
		if _, err := natssrc.Publish(ctx, js, strings.NewReader(data), natssrc.PublishOptions{Partitioned: true}); err != nil {
			t.Fatal(err)
		}
	}

	cfg := filepath.Join(dir, "scale.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`source:
  type: nats
  nats: {url: %q, partitions: 12, replicas: 3, ack_wait: 30s}
ledger: {path: "ledger/p-{partition}.db"}
output:
  decisions: {path: "decisions-${FP_SLOT}.ndjson"}
  dead_letters: {path: "dead-${FP_SLOT}.ndjson"}
  features: true
checkpoint: {dir: checkpoints, interval: 200ms, keep: 3}
`, strings.Join(urls, ","))), 0o644)

	type proc struct {
		cmd  *exec.Cmd
		done chan struct{} // closed when it exited
		err  error
	}
	procs := map[int]*proc{}
	start := func(i, n int) {
		t.Helper()
		cmd := exec.Command(bin, "run", "--config", cfg, "--instance", fmt.Sprintf("%d/%d", i, n))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), fmt.Sprintf("FP_SLOT=%d", i))
		logf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("log-%d.txt", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		p := &proc{cmd: cmd, done: make(chan struct{})}
		go func() { p.err = cmd.Wait(); close(p.done) }()
		procs[i] = p
	}
	stop := func(i int, sig syscall.Signal) {
		t.Helper()
		p := procs[i]
		delete(procs, i)
		p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
			if sig == syscall.SIGTERM && p.err != nil {
				t.Fatalf("instance %d after SIGTERM: %v\n%s", i, p.err, tail(filepath.Join(dir, fmt.Sprintf("log-%d.txt", i))))
			}
		case <-time.After(60 * time.Second):
			p.cmd.Process.Kill()
			t.Fatalf("instance %d did not stop within a minute of %v", i, sig)
		}
	}
	defer func() {
		for _, p := range procs {
			p.cmd.Process.Kill()
			<-p.done
		}
	}()
	// waitDecided polls the decisions files until every id of want is decided.
	waitDecided := func(want []string, what string) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for {
			got := decidedIDs(t, dir)
			missing := 0
			for _, id := range want {
				if !got[id] {
					missing++
				}
			}
			if missing == 0 {
				return
			}
			for i, p := range procs {
				select {
				case <-p.done:
					t.Fatalf("instance %d exited (%v):\n%s", i, p.err, tail(filepath.Join(dir, fmt.Sprintf("log-%d.txt", i))))
				default:
				}
			}
			if time.Now().After(deadline) {
				var logs strings.Builder
				for i := range procs {
					fmt.Fprintf(&logs, "--- instance %d:\n%s\n", i, tail(filepath.Join(dir, fmt.Sprintf("log-%d.txt", i))))
				}
				t.Fatalf("%s: %d of %d transactions undecided after 3 minutes\n%s", what, missing, len(want), logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	cut1, cut2 := len(all)*2/5, len(all)*7/10
	// Three instances decide the first part.
	for i := range 3 {
		start(i, 3)
	}
	publish(all[:cut1])
	waitDecided(allIDs[:cut1], "three instances")
	// Instance 2 dies; its partitions wait until the others take them over as two.
	stop(2, syscall.SIGKILL)
	publish(all[cut1:cut2])
	stop(0, syscall.SIGTERM)
	stop(1, syscall.SIGTERM)
	start(0, 2)
	start(1, 2)
	waitDecided(allIDs[:cut2], "two instances after a kill")
	// Back to three.
	stop(0, syscall.SIGTERM)
	stop(1, syscall.SIGTERM)
	for i := range 3 {
		start(i, 3)
	}
	publish(all[cut2:])
	waitDecided(allIDs, "three instances again")
	for i := range 3 {
		stop(i, syscall.SIGTERM)
	}

	// Every decision, repeats included (a killed instance's last decisions are made again
	// by the partition's next owner), has the card features of the single replay.
	decided := map[string]string{}
	for _, path := range decisionFiles(t, dir) {
		for _, l := range lines(t, path) {
			var d scaleDecision
			if err := json.Unmarshal([]byte(l), &d); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			want, ok := ref[d.ID]
			if !ok {
				t.Fatalf("decision for %s, which was never published", d.ID)
			}
			for name, v := range want {
				if strings.HasPrefix(name, "card_") && name != "card_declines_24h" || name == "secs_since_last" {
					if d.Features[name] != v {
						t.Fatalf("%s: %s = %v, a single replay says %v", d.ID, name, d.Features[name], v)
					}
				}
			}
			if prev, ok := decided[d.ID]; !ok || prev != "approve" {
				decided[d.ID] = d.Decision
			}
		}
	}
	if len(decided) != len(allIDs) {
		t.Fatalf("%d transactions decided, %d published", len(decided), len(allIDs))
	}

	// The ledger, a shard per stream partition: every approved payment posted once, in
	// the shard of its card's partition, and every shard balances.
	shards, err := filepath.Glob(filepath.Join(dir, "ledger", "p-*.db"))
	if err != nil || len(shards) != 12 {
		t.Fatalf("ledger shards %v (%v), want 12", shards, err)
	}
	posted := map[string]int{}
	for _, shard := range shards {
		code, out, stderr := fraudpipe(t, "ledger", "export", "--ledger", shard)
		if code != 0 {
			t.Fatalf("ledger export %s: %s", shard, stderr)
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e struct {
				TxID string `json:"tx_id"`
			}
			json.Unmarshal(sc.Bytes(), &e)
			posted[e.TxID]++
		}
		if code, out, stderr := fraudpipe(t, "ledger", "verify", "--ledger", shard); code != 0 || !strings.HasPrefix(out, "ledger ok") {
			t.Fatalf("ledger verify %s: exit %d %s %s", shard, code, out, stderr)
		}
	}
	for id, n := range posted {
		if n != 1 {
			t.Fatalf("%s posted %d times", id, n)
		}
	}
	for id, d := range decided {
		if d == "approve" && posted[id] == 0 {
			// An approved payment the ledger refused (a limit) is declined with a ledger
			// reason, so every approve in the files is posted.
			t.Fatalf("%s approved but not in the ledger", id)
		}
	}
	t.Logf("%d transactions, %d decided, %d posted", len(allIDs), len(decided), len(posted))
}

// waitLimit bounds each wait of TestScaleOut for the instances to catch up.
var waitLimit = 40 * time.Second

type scaleDecision struct {
	ID       string             `json:"id"`
	Decision string             `json:"decision"`
	Features map[string]float64 `json:"features"`
}

func decisionFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "decisions-*.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// decidedIDs reads the ids of every complete line of the decisions files.
func decidedIDs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, path := range decisionFiles(t, dir) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			data = data[:i+1]
		} else {
			continue
		}
		for _, l := range bytes.Split(data[:len(data)-1], []byte("\n")) {
			var d struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(l, &d) == nil {
				got[d.ID] = true
			}
		}
	}
	return got
}

// tail is the end of a log file, for failure messages.
func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// startNATSCluster starts n JetStream servers in this process, clustered over loopback
// routes, and returns their client URLs once the cluster has a JetStream leader.
func startNATSCluster(t *testing.T, n int) []string {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var urls []string
	for i := range n {
		o := &natsserver.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    natsserver.ClusterOpts{Name: "fraudpipe-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     natsserver.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := natsserver.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatalf("NATS server %d not ready", i+1)
		}
		urls = append(urls, s.ClientURL())
	}
	return urls
}

// BenchmarkScaleOut measures a stream of about 200k transactions already in a 12-partition
// JetStream stream decided by 1, 2 and 3 instances (real processes, each with its share of
// the partitions, its ledger shards and checkpoints): transactions per second from the
// start of the instances until every transaction is decided.
//
//	go test -run '^$' -bench BenchmarkScaleOut -benchtime 1x ./cmd/fraudpipe
func BenchmarkScaleOut(b *testing.B) {
	bin := buildBinary(b)
	dir := b.TempDir()
	input := filepath.Join(dir, "in.ndjson")
	if out, err := exec.Command(bin, "gen", "--seed", "11", "--customers", "2000", "--terminals", "4000", "--days", "52", "--out", input).CombinedOutput(); err != nil {
		b.Fatalf("gen: %v %s", err, out)
	}
	data, err := os.ReadFile(input)
	if err != nil {
		b.Fatal(err)
	}
	total := bytes.Count(data, []byte("\n"))
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				run := b.TempDir()
				srv, err := natssrc.StartEmbedded(natssrc.EmbeddedOptions{StoreDir: filepath.Join(run, "nats"), Port: -1})
				if err != nil {
					b.Fatal(err)
				}
				nc, err := nats.Connect(srv.ClientURL())
				if err != nil {
					b.Fatal(err)
				}
				js, _ := jetstream.New(nc)
				ctx := context.Background()
				if _, err := natssrc.EnsureStream(ctx, js, natssrc.StreamOptions{Partitions: 12}); err != nil {
					b.Fatal(err)
				}
				if _, err := natssrc.Publish(ctx, js, bytes.NewReader(data), natssrc.PublishOptions{Partitioned: true}); err != nil {
					b.Fatal(err)
				}
				cfg := filepath.Join(run, "scale.yaml")
				os.WriteFile(cfg, []byte(fmt.Sprintf(`source:
  type: nats
  nats: {url: %q, partitions: 12, ack_wait: 2m}
ledger: {path: "ledger/p-{partition}.db"}
output:
  decisions: {path: "decisions-${FP_SLOT}.ndjson"}
  dead_letters: {path: "dead-${FP_SLOT}.ndjson"}
checkpoint: {dir: checkpoints, interval: 10s}
`, srv.ClientURL())), 0o644)
				b.StartTimer()
				var cmds []*exec.Cmd
				for i := range n {
					cmd := exec.Command(bin, "run", "--config", cfg, "--instance", fmt.Sprintf("%d/%d", i, n))
					cmd.Dir = run
					cmd.Env = append(os.Environ(), fmt.Sprintf("FP_SLOT=%d", i))
					if err := cmd.Start(); err != nil {
						b.Fatal(err)
					}
					cmds = append(cmds, cmd)
				}
				start := time.Now()
				deadline := start.Add(10 * time.Minute)
				for {
					decided := 0
					files, _ := filepath.Glob(filepath.Join(run, "decisions-*.ndjson"))
					for _, f := range files {
						d, _ := os.ReadFile(f)
						decided += bytes.Count(d, []byte("\n"))
					}
					if decided >= total {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d decided after 10 minutes", decided, total)
					}
					time.Sleep(20 * time.Millisecond)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				for _, cmd := range cmds {
					cmd.Process.Signal(syscall.SIGTERM)
					cmd.Wait()
				}
				nc.Close()
				srv.Shutdown()
				b.ReportMetric(float64(total)/elapsed.Seconds(), "tx/s")
				b.StartTimer()
			}
		})
	}
}
