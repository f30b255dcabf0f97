package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // issues as printed; none from a Default config has a file or line
	}{
		{"default is valid", func(c *Config) {}, nil},
		{"partitions", func(c *Config) { c.Engine.Partitions = -1 },
			[]string{"engine.partitions: must be 0 (one per CPU) or more, got -1"}},
		{"batch sizes and queues", func(c *Config) { c.Engine.BatchSize = 0; c.Engine.QueueBatches = -2; c.Ledger.BatchSize = 0 },
			[]string{
				"engine.batch_size: must be 1 or more, got 0",
				"engine.queue_batches: must be 1 or more, got -2",
				"ledger.batch_size: must be 1 or more, got 0",
			}},
		{"durations positive", func(c *Config) { c.Engine.DedupTTL = 0; c.Ledger.MaxDelay = Duration(-time.Millisecond) },
			[]string{
				"engine.dedup_ttl: must be longer than 0, got 0s",
				"ledger.max_delay: must be longer than 0, got -1ms",
			}},
		{"windows empty", func(c *Config) { c.Windows.Durations = nil },
			[]string{"windows.durations: must list at least one window length, such as [1h, 1d, 7d, 30d]"}},
		{"windows ascending and positive", func(c *Config) {
			c.Windows.Durations = []Duration{0, Duration(day), Duration(day), Duration(time.Hour)}
		}, []string{
			"windows.durations[0]: must be longer than 0, got 0s",
			"windows.durations[2]: 1d is not longer than the window before it (1d): list windows shortest first, each once",
			"windows.durations[3]: 1h is not longer than the window before it (1d): list windows shortest first, each once",
		}},
		{"max events", func(c *Config) { c.Windows.MaxEvents = 0 },
			[]string{"windows.max_events: must be 1 or more, got 0"}},
		{"ttl shorter than a window", func(c *Config) { c.Windows.TTL = Duration(week) },
			[]string{"windows.ttl: 7d is shorter than the longest window (30d): a card would be forgotten while still inside it"}},
		{"ttl zero", func(c *Config) { c.Windows.TTL = 0 },
			[]string{"windows.ttl: must be longer than 0, got 0s"}},
		{"night hours", func(c *Config) { c.Scoring.Velocity.NightStart = -1; c.Scoring.Velocity.NightEnd = 24 },
			[]string{
				"scoring.velocity.night_start_hour: must be an hour from 0 to 23, got -1",
				"scoring.velocity.night_end_hour: must be an hour from 0 to 23, got 24",
			}},
		{"night hours at the edges", func(c *Config) { c.Scoring.Velocity.NightStart = 23; c.Scoring.Velocity.NightEnd = 0 }, nil},
		{"enums set in code", func(c *Config) { c.Source.Type = "kafka"; c.Ledger.Driver = "" },
			[]string{
				`source.type: "kafka" is not one of file, stdin, nats, kinesis, http, s3`,
				`ledger.driver: "" is not one of sqlite, postgres, none`,
			}},
		{"sqlite needs a path", func(c *Config) { c.Ledger.Path = "" },
			[]string{"ledger.path: must name the SQLite database file when ledger.driver is sqlite"}},
		{"no ledger needs no path", func(c *Config) { c.Ledger.Path = ""; c.Ledger.Driver = "none" }, nil},
		{"negative limit", func(c *Config) { c.Ledger.DefaultLimit = mustDecimal(t, "-1.00") },
			[]string{"ledger.default_limit: must be 0 or more, got -1.00"}},
		{"zero limit", func(c *Config) { c.Ledger.DefaultLimit = Decimal{} }, nil},
		{"limit finer than any currency", func(c *Config) { c.Ledger.DefaultLimit = mustDecimal(t, "0.00001") },
			[]string{"ledger.default_limit: 0.00001 has more fraction digits than any currency (4)"}},
		{"limit with trailing zeros", func(c *Config) { c.Ledger.DefaultLimit = mustDecimal(t, "5.000000") }, nil},
		{"huge limit", func(c *Config) { c.Ledger.DefaultLimit = mustDecimal(t, "999999999999999999") },
			[]string{"ledger.default_limit: 999999999999999999 is too large to hold in minor units"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Validate = %v, want a *Error", err)
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("Validate:\n%s\nwant:\n%s", got, strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestValidateKeepsLines(t *testing.T) {
	c := parseOK(t, "windows:\n  durations:\n    - 1h\n    - 1d\n  max_events: 4\n", nil)
	c.Windows.Durations[1] = Duration(time.Minute)
	c.Windows.MaxEvents = 0
	c.Engine.BatchSize = 0 // not in the file: no line
	want := "t.yaml: line 4: windows.durations[1]: 1m is not longer than the window before it (1h): list windows shortest first, each once\n" +
		"t.yaml: line 5: windows.max_events: must be 1 or more, got 0\n" +
		"t.yaml: engine.batch_size: must be 1 or more, got 0"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate: no error")
	}
	// Validate reports in check order; Parse sorts by line.
	got := strings.Split(err.Error(), "\n")
	if len(got) != 3 || !strings.Contains(want, got[0]) || !strings.Contains(want, got[1]) || !strings.Contains(want, got[2]) {
		t.Errorf("Validate:\n%s\nwant (in any order):\n%s", err, want)
	}
}
