package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/sinks/alert"
)

var binPath string // the fraudpipe binary, built once by TestMain

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	if bin := os.Getenv("CHAOS_BIN"); bin != "" { // a binary built beforehand
		binPath = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "fraudpipe-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "fraudpipe")
	if out, err := exec.Command("go", "build", "-o", binPath, "../cmd/fraudpipe").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ../cmd/fraudpipe: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// envInt and envDuration read a size or duration parameter from the environment.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("%s=%q: want a duration such as 30s or 2m", name, v)
	}
	return d
}

// waitFor polls fn every interval until it returns nil or the deadline passes, and
// returns fn's last error.
func waitFor(d, interval time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval) // polling interval
	}
}

// exitRecord is one end of a fraudpipe process.
type exitRecord struct {
	At       time.Time
	Expected bool // killed by the test
	Err      string
}

// proc runs fraudpipe as a supervisor would (systemd's Restart=always): a process that
// ends is started again after a short delay, unless the test stops it.
type proc struct {
	t        *testing.T
	args     []string
	dir      string
	env      []string
	logPath  string
	restart  time.Duration
	mu       sync.Mutex
	cmd      *exec.Cmd
	starts   int
	killing  bool
	stopping bool
	exits    []exitRecord
	done     chan error // the supervisor's end: the last process's exit error
}

func startProc(t *testing.T, dir, logPath string, env []string, args ...string) *proc {
	p := &proc{t: t, args: args, dir: dir, env: env, logPath: logPath, restart: 500 * time.Millisecond, done: make(chan error, 1)}
	go p.supervise()
	t.Cleanup(func() {
		p.mu.Lock()
		p.stopping = true
		if p.cmd != nil && p.cmd.Process != nil {
			p.cmd.Process.Kill()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *proc) supervise() {
	for {
		logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			p.done <- err
			return
		}
		cmd := exec.Command(binPath, p.args...)
		cmd.Dir = p.dir
		cmd.Env = append(os.Environ(), p.env...)
		cmd.Stdout, cmd.Stderr = logf, logf
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			logf.Close()
			p.done <- nil
			return
		}
		fmt.Fprintf(logf, "--- chaos: start %d at %s\n", p.starts+1, time.Now().UTC().Format(time.RFC3339Nano))
		err = cmd.Start()
		if err == nil {
			p.cmd = cmd
			p.starts++
		}
		p.mu.Unlock()
		if err != nil {
			logf.Close()
			p.done <- err
			return
		}
		err = cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.cmd = nil
		rec := exitRecord{At: time.Now(), Expected: p.killing}
		if err != nil {
			rec.Err = err.Error()
		}
		p.killing = false
		stopping := p.stopping
		if !stopping {
			p.exits = append(p.exits, rec)
		}
		p.mu.Unlock()
		if stopping {
			p.done <- err
			return
		}
		time.Sleep(p.restart) // a supervisor's restart delay
	}
}

// kill sends SIGKILL to the running process; the supervisor starts a new one.
func (p *proc) kill() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	p.killing = true
	p.cmd.Process.Signal(syscall.SIGKILL)
	return true
}

// stop sends SIGTERM and waits for the process to end, without restarting it.
func (p *proc) stop(timeout time.Duration) error {
	p.mu.Lock()
	p.stopping = true
	if p.cmd != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	p.mu.Unlock()
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		p.mu.Lock()
		if p.cmd != nil {
			p.cmd.Process.Kill()
		}
		p.mu.Unlock()
		return fmt.Errorf("fraudpipe did not stop within %s of SIGTERM", timeout)
	}
}

func (p *proc) history() (starts int, exits []exitRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts, append([]exitRecord(nil), p.exits...)
}

// lineCounter counts the lines of a file that grows and may be cut back (the decisions
// file after a restart), reading only what was added since the last call.
type lineCounter struct {
	path  string
	off   int64
	lines int
}

func (c *lineCounter) count() int {
	f, err := os.Open(c.path)
	if err != nil {
		return c.lines
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return c.lines
	}
	if fi.Size() < c.off { // cut back to a checkpoint: count again
		c.off, c.lines = 0, 0
	}
	if _, err := f.Seek(c.off, io.SeekStart); err != nil {
		return c.lines
	}
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			// Count only whole lines: stop at the last newline.
			chunk := buf[:n]
			last := bytes.LastIndexByte(chunk, '\n')
			if last < 0 {
				break
			}
			c.lines += bytes.Count(chunk[:last+1], []byte{'\n'})
			c.off += int64(last + 1)
			if last+1 < n {
				f.Seek(c.off, io.SeekStart)
			}
		}
		if err != nil {
			break
		}
	}
	return c.lines
}

// webhook is an alert receiver: it checks each request's signature and records the
// Idempotency-Key (the transaction id) by path.
type webhook struct {
	secret []byte
	mu     sync.Mutex
	got    map[string]map[string]int // path -> id -> deliveries
	bad    int                       // requests with a bad signature or body
}

func newWebhook(secret []byte) *webhook {
	return &webhook{secret: secret, got: map[string]map[string]int{}}
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	ok := alert.Verify(w.secret, r.Header.Get("X-Fraudpipe-Timestamp"), body, r.Header.Get("X-Fraudpipe-Signature"), 5*time.Minute, time.Now())
	var a struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &a) != nil || a.ID != r.Header.Get("Idempotency-Key") {
		ok = false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ok {
		w.bad++
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	m := w.got[r.URL.Path]
	if m == nil {
		m = map[string]int{}
		w.got[r.URL.Path] = m
	}
	m[a.ID]++
	rw.WriteHeader(http.StatusNoContent)
}

func (w *webhook) ids(path string) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for k, v := range w.got[path] {
		out[k] = v
	}
	return out
}

// decision is what the checks read of a decisions-file line.
type decision struct {
	ID       string `json:"id"`
	Decision string `json:"decision"`
	Ledger   string `json:"ledger"`
}

func readNDJSON(t *testing.T, path string, each func(line []byte) error) {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<22)
	n := 0
	for sc.Scan() {
		n++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := each(sc.Bytes()); err != nil {
			t.Fatalf("%s line %d: %v", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
}

// deadLetterIDs returns the transaction ids of a sink's dead letters, by reason code.
func deadLetterIDs(t *testing.T, path string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	readNDJSON(t, path, func(line []byte) error {
		var dl struct {
			Raw    string `json:"raw"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(line, &dl); err != nil {
			return err
		}
		var d decision
		if err := json.Unmarshal([]byte(dl.Raw), &d); err != nil {
			return fmt.Errorf("dead letter raw is not a decision: %w", err)
		}
		code, _, _ := strings.Cut(dl.Reason, ":")
		if out[code] == nil {
			out[code] = map[string]bool{}
		}
		out[code][d.ID] = true
		return nil
	})
	return out
}

var logMsg = regexp.MustCompile(`level=(WARN|ERROR) msg=("(?:[^"\\]|\\.)*"|\S+)`)

// logSummary counts the warning and error messages of fraudpipe's log.
func logSummary(t *testing.T, path string) []string {
	counts := map[string]int{}
	readNDJSON(t, path, func(line []byte) error {
		if m := logMsg.FindSubmatch(line); m != nil {
			msg := string(m[2])
			if u, err := strconv.Unquote(msg); err == nil {
				msg = u
			}
			counts[string(m[1])+" "+msg]++
		}
		return nil
	})
	var out []string
	for k, v := range counts {
		out = append(out, fmt.Sprintf("%6d  %s", v, k))
	}
	sort.Slice(out, func(i, j int) bool { return out[i][7:] < out[j][7:] })
	return out
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// scraper samples /metrics every interval until stopped.
type scraper struct {
	url     string
	mu      sync.Mutex
	samples []Sample
	failed  int
	stop    chan struct{}
	done    chan struct{}
}

func startScraper(url string, every time.Duration) *scraper {
	s := &scraper{url: url, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			smp, err := Scrape(url)
			s.mu.Lock()
			if err != nil {
				s.failed++
			} else {
				s.samples = append(s.samples, smp)
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *scraper) close() { close(s.stop); <-s.done }

// between returns the samples taken from a to b.
func (s *scraper) between(a, b time.Time) []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Sample
	for _, smp := range s.samples {
		if !smp.At.Before(a) && !smp.At.After(b) {
			out = append(out, smp)
		}
	}
	return out
}

func (s *scraper) all() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...)
}

func ctxWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
