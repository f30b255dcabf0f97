// Package config loads fraudpipe's YAML configuration: strictly (an unknown field is an
// error naming file and line), with ${VAR} and ${VAR:default} interpolation, and with every
// field's default and documentation declared once, in the struct tags below.
package config

// Config is the whole configuration of one fraudpipe process. Build one with Default, Load
// or Parse; a Config from Load also remembers its file, so that Resolve finds relative paths
// next to it and Validate points at the offending lines. reflect.DeepEqual sees that record
// too, so two Configs with the same values read from different files are not DeepEqual.
type Config struct {
	Engine  Engine  `yaml:"engine" doc:"How the engine splits and buffers work."`
	Windows Windows `yaml:"windows" doc:"Per-card sliding windows over event time."`
	Source  Source  `yaml:"source" doc:"Where transactions come from (run only; replay takes --input)."`
	Scoring Scoring `yaml:"scoring" doc:"Features, rules and models that decide."`
	Ledger  Ledger  `yaml:"ledger" doc:"The double-entry ledger that approved payments are posted to."`
	Output  Output  `yaml:"output" doc:"Where decisions and dead letters go."`

	src *origin // where the config was read from; nil for Default
}

// Engine sizes the engine's parallelism and queues.
type Engine struct {
	Partitions   int      `yaml:"partitions" default:"0" doc:"Partition workers, each owning the state of the cards hashed to it; 0 means one per CPU (GOMAXPROCS)."`
	BatchSize    int      `yaml:"batch_size" default:"512" doc:"Events per internal batch; larger batches cost latency and save per-batch overhead."`
	QueueBatches int      `yaml:"queue_batches" default:"16" doc:"Batches in flight between stages; bounds memory and applies backpressure to the source."`
	DedupTTL     Duration `yaml:"dedup_ttl" default:"48h" doc:"How long, in event time, a transaction id is remembered to drop redeliveries before they reach the ledger (which deduplicates forever)."`
}

// Windows configures the keyed sliding windows (pipeline/window).
type Windows struct {
	Durations []Duration `yaml:"durations" default:"[1h, 1d, 7d, 30d]" doc:"Window lengths; each window is (ts - d, ts], the current transaction included."`
	MaxEvents int        `yaml:"max_events" default:"256" doc:"Events kept exactly per card; older ones fold into hourly buckets."`
	TTL       Duration   `yaml:"ttl" default:"30d" doc:"A card idle this long in event time is forgotten."`
}

// Source selects the input of fraudpipe run.
type Source struct {
	Type string `yaml:"type" default:"file" enum:"file,stdin,gen" doc:"file: an NDJSON file (plain or .gz); stdin: NDJSON on standard input; gen: the built-in generator."`
	Path string `yaml:"path" doc:"The file to read, for type file."`
}

// Scoring configures features and decision logic.
type Scoring struct {
	Velocity Velocity `yaml:"velocity" doc:"Per-card velocity features."`
	Rules    Rules    `yaml:"rules" doc:"CEL rules over the transaction and its features."`
}

// Velocity configures the per-card velocity features.
type Velocity struct {
	Enabled    bool `yaml:"enabled" default:"true" doc:"Compute per-card count, mean and distinct-merchant features over the windows."`
	NightStart int  `yaml:"night_start_hour" default:"0" doc:"First hour (UTC, 0-23) that counts as night."`
	NightEnd   int  `yaml:"night_end_hour" default:"6" doc:"Last hour (UTC, 0-23, inclusive) that counts as night."`
}

// Rules says where the rule set is.
type Rules struct {
	File string `yaml:"file" doc:"A YAML rule file; relative paths are relative to this config file. Empty: the built-in rule set."`
}

// Ledger configures the ledger stage.
type Ledger struct {
	Driver       string   `yaml:"driver" default:"sqlite" enum:"sqlite,none" doc:"sqlite: an embedded SQLite file; none: no ledger (decisions say skipped)."`
	Path         string   `yaml:"path" default:"fraudpipe-ledger.db" doc:"The SQLite database file."`
	DefaultLimit Decimal  `yaml:"default_limit" default:"50000.00" doc:"Spending limit of an account created on first use, in its currency's major units: its balance may not go below minus this."`
	BatchSize    int      `yaml:"batch_size" default:"4096" doc:"Most postings committed in one database transaction (group commit)."`
	MaxDelay     Duration `yaml:"max_delay" default:"5ms" doc:"Longest a posting waits for its batch to fill before it is committed."`
}

// Output says where decisions and dead letters are written by fraudpipe run.
type Output struct {
	Decisions   FileOutput `yaml:"decisions" doc:"Decisions, one JSON object a line."`
	DeadLetters FileOutput `yaml:"dead_letters" doc:"Refused input lines with their reason."`
	Features    bool       `yaml:"features" default:"false" doc:"Include the feature values in each decision."`
}

// FileOutput is an NDJSON file output.
type FileOutput struct {
	Path string `yaml:"path" doc:"File to write; - for standard output; empty to discard."`
}
