package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// sameConfig compares the values of two configs, not where they came from.
func sameConfig(a, b *Config) bool {
	x, y := *a, *b
	x.src, y.src = nil, nil
	return reflect.DeepEqual(x, y)
}

func TestDefault(t *testing.T) {
	// The defaults of the core blocks; the plug-ins' blocks are checked by their own tests
	// and by the Example round trip.
	want := *Default()
	want.Engine = Engine{Partitions: 0, BatchSize: 512, QueueBatches: 16, DedupTTL: Duration(48 * time.Hour),
		MaxOutOfOrderness: Duration(30 * time.Second), AllowedLateness: Duration(5 * time.Minute), IdleTimeout: Duration(time.Minute)}
	want.Windows = Windows{
		Durations: []Duration{Duration(time.Hour), Duration(day), Duration(7 * day), Duration(30 * day)},
		MaxEvents: 256,
		TTL:       Duration(30 * day),
		MaxCards:  1_000_000,
	}
	want.Source.Type, want.Source.Path = "file", ""
	want.Scoring.Velocity = Velocity{Enabled: true, NightStart: 0, NightEnd: 6}
	want.Ledger.Driver, want.Ledger.Path, want.Ledger.DefaultLimit = "sqlite", "fraudpipe-ledger.db", mustDecimal(t, "50000.00")
	want.Ledger.BatchSize, want.Ledger.MaxDelay = 4096, Duration(5*time.Millisecond)
	want.Checkpoint = Checkpoint{Enabled: true, Dir: "checkpoints", Interval: Duration(10 * time.Second), Keep: 3}
	c := Default()
	if !sameConfig(c, &want) {
		t.Errorf("Default() = %+v\nwant %+v", *c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate(): %v", err)
	}
	// Each call is independent: changing one does not change the next.
	c.Windows.Durations[0] = 0
	if Default().Windows.Durations[0] != Duration(time.Hour) {
		t.Error("Default() shares its slices between calls")
	}
	if c.File() != "" {
		t.Errorf("Default().File() = %q", c.File())
	}
}

func TestLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prod.yaml")
	if err := os.WriteFile(path, []byte("scoring:\n  rules:\n    file: rules/prod.yaml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.File() != path {
		t.Errorf("File() = %q, want %q", c.File(), path)
	}
	abs := filepath.Join(t.TempDir(), "x.yaml")
	for in, want := range map[string]string{
		c.Scoring.Rules.File: filepath.Join(dir, "rules", "prod.yaml"),
		"../other.yaml":      filepath.Join(filepath.Dir(dir), "other.yaml"),
		abs:                  abs,
		"":                   "",
		"-":                  "-",
	} {
		if got := c.Resolve(in); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}

	// Without a file, relative paths stay relative to the working directory.
	if got := Default().Resolve("rules.yaml"); got != "rules.yaml" {
		t.Errorf("Default().Resolve = %q", got)
	}
	p, err := Parse("conf/prod.yaml", nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Resolve("rules.yaml"); got != "rules.yaml" {
		t.Errorf("Parse(...).Resolve = %q", got)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("engine:\n  partitions: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(bad)
	var e *Error
	if c != nil || !errors.As(err, &e) {
		t.Fatalf("Load(bad) = %v, %v; want a *Error", c, err)
	}
	want := bad + ": line 2: engine.partitions: must be 0 (one per CPU) or more, got -1"
	if err.Error() != want {
		t.Errorf("Load(bad) error %q, want %q", err, want)
	}
}

func TestLoadUsesProcessEnvironment(t *testing.T) {
	t.Setenv("FRAUDPIPE_TEST_PARTITIONS", "7")
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("engine:\n  partitions: ${FRAUDPIPE_TEST_PARTITIONS}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.Engine.Partitions != 7 {
		t.Fatalf("Load = %v, %v", c, err)
	}
}

func TestTestdataGood(t *testing.T) {
	for _, name := range []string{"good.yaml", "minimal.yaml", "anchors.yaml", "example.yaml"} {
		if _, err := Load(filepath.Join("testdata", name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	vars := map[string]string{"FRAUDPIPE_PARTITIONS": "3", "FRAUDPIPE_DATA": "/data"}
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("good.yaml", data, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	// What good.yaml sets; everything else keeps its default.
	want := *Default()
	want.Engine.Partitions, want.Engine.BatchSize, want.Engine.QueueBatches, want.Engine.DedupTTL = 3, 1024, 32, Duration(3*day)
	want.Windows.Durations = []Duration{Duration(10 * time.Minute), Duration(time.Hour), Duration(day), Duration(week), Duration(30 * day)}
	want.Windows.MaxEvents, want.Windows.TTL = 512, Duration(45*day)
	want.Source.Type, want.Source.Path = "file", "/var/lib/fraudpipe/in/transactions.ndjson.gz"
	want.Scoring.Velocity = Velocity{Enabled: true, NightStart: 22, NightEnd: 5}
	want.Scoring.Rules = Rules{File: "rules/prod.yaml", ReloadEvery: Duration(10 * time.Second)}
	want.Ledger.Path, want.Ledger.DefaultLimit = "/data/ledger.db", mustDecimal(t, "2500.50")
	want.Ledger.BatchSize, want.Ledger.MaxDelay = 8192, Duration(2*time.Millisecond)
	want.Output.Decisions, want.Output.Features = FileOutput{Path: "decisions.ndjson"}, true
	if !sameConfig(c, &want) {
		t.Errorf("good.yaml = %+v\nwant %+v", *c, want)
	}
}
