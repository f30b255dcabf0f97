package window

import (
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.txt (and the fuzz seeds)")

// The golden files in testdata/*.txt are lists of commands in the style of cockroachdb's
// datadriven package:
//
//	# a comment
//	command key=value key=value
//	----
//	expected output, up to a blank line
//
// A command with no output has no "----" block. `go test ./pipeline/window -update`
// rewrites the expected blocks from what the code does now.
//
// Commands:
//
//	config [durations=1h,24h,7d] [max_events=N] [ttl=48h]   new empty store
//	observe key=K ts=TIME [amount=N] [distinct=NAME]        prev event and windows
//	observe-many key=K from=TIME step=DUR n=N [amount=N] [amount_step=N]
//	        [distinct=NAME] [distinct_mod=N]                 the last one's output
//	peek key=K ts=TIME                                      windows without adding
//	expire watermark=TIME                                   evicted and remaining keys
//	state key=K                                             the exact events and buckets
//	keys                                                    the keys and their newest event
//	snapshot                                                marshal, restore into a new store
//	show-config                                             the effective config
//
// TIME is RFC 3339 (2026-01-05T10:00:00Z, 2026-01-05T10:59:59.999Z). DUR is a Go duration
// or a number of days (7d). NAME is hashed with FNV-1a for Event.Distinct.

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runGolden(t, f) })
	}
}

// chunk is a piece of a golden file: a raw line (comment or blank) or a command with its
// expected output.
type chunk struct {
	raw      string
	cmd      string
	lineNo   int
	hasBlock bool
	expected string
}

func parseGolden(t *testing.T, path string) []chunk {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var out []chunk
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if trimmed := strings.TrimSpace(l); trimmed == "" || strings.HasPrefix(trimmed, "#") {
			out = append(out, chunk{raw: l})
			continue
		}
		if l == "----" {
			t.Fatalf("%s:%d: ---- without a command", path, i+1)
		}
		c := chunk{cmd: l, lineNo: i + 1}
		if i+1 < len(lines) && lines[i+1] == "----" {
			c.hasBlock = true
			i += 2
			var exp []string
			for ; i < len(lines) && lines[i] != ""; i++ {
				exp = append(exp, lines[i])
			}
			c.expected = strings.Join(exp, "\n")
			i-- // the blank line ending the block stays a raw line
		}
		out = append(out, c)
	}
	return out
}

func runGolden(t *testing.T, path string) {
	chunks := parseGolden(t, path)
	g := &golden{t: t, names: map[uint64]string{}}
	g.store = NewStore(Config{})
	var rewritten strings.Builder
	needBlank := false // a block was written: a blank line must follow it
	for _, c := range chunks {
		if needBlank && c.raw != "" || needBlank && c.cmd != "" {
			rewritten.WriteString("\n")
		}
		needBlank = false
		if c.cmd == "" {
			rewritten.WriteString(c.raw + "\n")
			continue
		}
		got, err := g.run(c.cmd)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", path, c.lineNo, c.cmd, err)
		}
		got = strings.TrimRight(got, "\n")
		rewritten.WriteString(c.cmd + "\n")
		if got != "" {
			rewritten.WriteString("----\n" + got + "\n")
			needBlank = true
		}
		if *update {
			continue
		}
		if got != c.expected || (got != "" && !c.hasBlock) {
			t.Errorf("%s:%d: %s\nwant:\n%s\ngot:\n%s", path, c.lineNo, c.cmd, c.expected, got)
		}
	}
	if *update {
		out := strings.TrimRight(rewritten.String(), "\n") + "\n"
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// golden is the state of one golden file's run.
type golden struct {
	t     *testing.T
	store *Store
	names map[uint64]string // distinct hash -> name, for printing
	out   []Stats
}

func (g *golden) hash(name string) uint64 {
	if name == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	v := h.Sum64()
	if v == 0 {
		v = 1
	}
	g.names[v] = name
	return v
}

func (g *golden) name(h uint64) string {
	if n, ok := g.names[h]; ok {
		return n
	}
	return fmt.Sprintf("%#x", h)
}

// args parses "k=v" words; it returns an error for repeated or malformed ones.
func parseArgs(words []string) (map[string]string, error) {
	m := map[string]string{}
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad argument %q, want key=value", w)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("argument %q given twice", k)
		}
		m[k] = v
	}
	return m, nil
}

// argReader takes arguments out of a parsed map and remembers the first error.
type argReader struct {
	m   map[string]string
	err error
}

func (a *argReader) str(k string, required bool) string {
	v, ok := a.m[k]
	delete(a.m, k)
	if !ok && required && a.err == nil {
		a.err = fmt.Errorf("missing argument %s", k)
	}
	return v
}

func (a *argReader) int(k string, def int64) int64 {
	v := a.str(k, false)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && a.err == nil {
		a.err = fmt.Errorf("%s: %v", k, err)
	}
	return n
}

func (a *argReader) time(k string) int64 {
	v := a.str(k, true)
	if v == "" {
		return 0
	}
	ts, err := time.Parse(time.RFC3339Nano, v)
	if err != nil && a.err == nil {
		a.err = fmt.Errorf("%s: %v", k, err)
	}
	return ts.UnixMilli()
}

func (a *argReader) done() error {
	if a.err == nil && len(a.m) > 0 {
		var ks []string
		for k := range a.m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		a.err = fmt.Errorf("unknown arguments %v", ks)
	}
	return a.err
}

// parseDur parses a Go duration or a whole number of days ("7d").
func parseDur(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// fmtDur formats a duration the short way: 7d, 24h, 90m, 1500ms.
func fmtDur(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0 && d >= 48*time.Hour:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

func fmtTS(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.999Z07:00")
}

func (g *golden) fmtEvent(e Event) string {
	s := fmt.Sprintf("ts=%s amount=%d", fmtTS(e.TS), e.Amount)
	if e.Distinct != 0 {
		s += " distinct=" + g.name(e.Distinct)
	}
	return s
}

func (g *golden) fmtStats(b *strings.Builder, stats []Stats) {
	for i, st := range stats {
		fmt.Fprintf(b, "%s: count=%d sum=%d max=%d mean=%.2f distinct=%d\n",
			fmtDur(g.store.cfg.Durations[i]), st.Count, st.Sum, st.Max, st.Mean(), st.Distinct)
	}
}

func (g *golden) observe(b *strings.Builder, key string, ev Event) {
	stats, prev, ok := g.store.Observe(key, ev, g.out)
	g.out = stats
	if ok {
		b.WriteString("prev " + g.fmtEvent(prev) + "\n")
	} else {
		b.WriteString("prev=none\n")
	}
	g.fmtStats(b, stats)
}

func (g *golden) run(line string) (string, error) {
	words := strings.Fields(line)
	m, err := parseArgs(words[1:])
	if err != nil {
		return "", err
	}
	a := &argReader{m: m}
	var b strings.Builder
	switch words[0] {
	case "config":
		var cfg Config
		if v := a.str("durations", false); v != "" {
			for _, p := range strings.Split(v, ",") {
				d, err := parseDur(p)
				if err != nil {
					return "", err
				}
				cfg.Durations = append(cfg.Durations, d)
			}
		}
		cfg.MaxEvents = int(a.int("max_events", 0))
		if v := a.str("ttl", false); v != "" {
			if cfg.TTL, err = parseDur(v); err != nil {
				return "", err
			}
		}
		if err := a.done(); err != nil {
			return "", err
		}
		if err := cfg.Validate(); err != nil {
			return "", err
		}
		g.store = NewStore(cfg)
	case "show-config":
		if err := a.done(); err != nil {
			return "", err
		}
		c := g.store.Config()
		var ds []string
		for _, d := range c.Durations {
			ds = append(ds, fmtDur(d))
		}
		fmt.Fprintf(&b, "durations=%s max_events=%d ttl=%s max_buckets=%d\n",
			strings.Join(ds, ","), c.MaxEvents, fmtDur(c.TTL), g.store.maxBuckets)
	case "observe":
		key := a.str("key", true)
		ev := Event{TS: a.time("ts"), Amount: a.int("amount", 0), Distinct: g.hash(a.str("distinct", false))}
		if err := a.done(); err != nil {
			return "", err
		}
		g.observe(&b, key, ev)
	case "observe-many":
		key := a.str("key", true)
		from := a.time("from")
		step, err := parseDur(a.str("step", true))
		if err != nil && a.err == nil {
			a.err = err
		}
		n := a.int("n", 0)
		amount, amountStep := a.int("amount", 0), a.int("amount_step", 0)
		distinct, mod := a.str("distinct", false), a.int("distinct_mod", 0)
		if err := a.done(); err != nil {
			return "", err
		}
		if n < 1 {
			return "", fmt.Errorf("n must be positive")
		}
		var last strings.Builder
		for i := range n {
			name := distinct
			if distinct != "" && mod > 0 {
				name = fmt.Sprintf("%s%d", distinct, i%mod)
			}
			ev := Event{TS: from + i*step.Milliseconds(), Amount: amount + i*amountStep, Distinct: g.hash(name)}
			last.Reset()
			fmt.Fprintf(&last, "last %s\n", g.fmtEvent(ev))
			g.observe(&last, key, ev)
		}
		fmt.Fprintf(&b, "observed=%d\n%s", n, last.String())
	case "peek":
		key := a.str("key", true)
		ts := a.time("ts")
		if err := a.done(); err != nil {
			return "", err
		}
		g.out = g.store.Peek(key, ts, g.out)
		g.fmtStats(&b, g.out)
	case "expire":
		wm := a.time("watermark")
		if err := a.done(); err != nil {
			return "", err
		}
		n := g.store.Expire(wm)
		fmt.Fprintf(&b, "evicted=%d keys=%d\n", n, g.store.Len())
	case "state":
		key := a.str("key", true)
		if err := a.done(); err != nil {
			return "", err
		}
		sr := g.store.keys[key]
		if sr == nil {
			b.WriteString("no such key\n")
			break
		}
		fmt.Fprintf(&b, "exact=%d buckets=%d\n", sr.ev.n, sr.bk.n())
		for i := range sr.bk.n() {
			bk := sr.bk.at(i)
			fmt.Fprintf(&b, "bucket %s first=%s last=%s count=%d sum=%d max=%d\n",
				fmtTS(hourOf(bk.first)), fmtTS(bk.first), fmtTS(bk.last), bk.count, bk.sum, bk.max)
		}
		for i := range sr.ev.n {
			b.WriteString("event " + g.fmtEvent(*sr.ev.at(i)) + "\n")
		}
	case "keys":
		if err := a.done(); err != nil {
			return "", err
		}
		var ks []string
		for k := range g.store.keys {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		fmt.Fprintf(&b, "keys=%d\n", len(ks))
		for _, k := range ks {
			fmt.Fprintf(&b, "%s newest=%s\n", k, fmtTS(g.store.keys[k].newest()))
		}
	case "snapshot":
		if err := a.done(); err != nil {
			return "", err
		}
		data, err := g.store.MarshalBinary()
		if err != nil {
			return "", err
		}
		restored := NewStore(g.store.Config())
		if err := restored.UnmarshalBinary(data); err != nil {
			return "", err
		}
		again, _ := restored.MarshalBinary()
		if string(again) != string(data) {
			return "", fmt.Errorf("snapshot of the restored store differs")
		}
		g.store = restored
		fmt.Fprintf(&b, "restored keys=%d bytes=%d\n", restored.Len(), len(data))
	default:
		return "", fmt.Errorf("unknown command %q", words[0])
	}
	return b.String(), nil
}
