// Package config loads fraudpipe's YAML configuration: strictly (an unknown field is an
// error naming file and line), with ${VAR} and ${VAR:default} interpolation, and with every
// field's default and documentation declared once, in the struct tags below.
package config

// Config is the whole configuration of one fraudpipe process. Build one with Default, Load
// or Parse; a Config from Load also remembers its file, so that Resolve finds relative paths
// next to it and Validate points at the offending lines. reflect.DeepEqual sees that record
// too, so two Configs with the same values read from different files are not DeepEqual.
type Config struct {
	Engine     Engine     `yaml:"engine" doc:"How the engine splits and buffers work."`
	Windows    Windows    `yaml:"windows" doc:"Per-card sliding windows over event time."`
	Source     Source     `yaml:"source" doc:"Where transactions come from (run only; replay takes --input)."`
	Scoring    Scoring    `yaml:"scoring" doc:"Features, rules and models that decide."`
	Ledger     Ledger     `yaml:"ledger" doc:"The double-entry ledger that approved payments are posted to."`
	Output     Output     `yaml:"output" doc:"Where decisions and dead letters go."`
	Log        Log        `yaml:"log" doc:"What fraudpipe run logs, and how."`
	Admin      Admin      `yaml:"admin" doc:"The HTTP endpoints operators scrape and probe (fraudpipe run only)."`
	Checkpoint Checkpoint `yaml:"checkpoint" doc:"Checkpoints of fraudpipe run: state, source position and committed output, from which a restarted process resumes."`
	Scale      Scale      `yaml:"scale" doc:"Scale-out: several instances sharing one partitioned stream (docs/runbook.md, Scale out)."`

	src *origin // where the config was read from; nil for Default
}

// Engine sizes the engine's parallelism and queues.
type Engine struct {
	Partitions        int      `yaml:"partitions" default:"0" doc:"Partition workers, each owning the state of the cards hashed to it; 0 means one per CPU (GOMAXPROCS)."`
	BatchSize         int      `yaml:"batch_size" default:"512" doc:"Events per internal batch; larger batches cost latency and save per-batch overhead."`
	QueueBatches      int      `yaml:"queue_batches" default:"16" doc:"Batches in flight between stages; bounds memory and applies backpressure to the source."`
	MaxOutOfOrderness Duration `yaml:"max_out_of_orderness" default:"30s" doc:"How far behind the newest event time an event may be and still be on time; the watermark is the newest event time minus this."`
	AllowedLateness   Duration `yaml:"allowed_lateness" default:"5m" doc:"How far behind the watermark an event may be and still update the windows; a later one is decided from the windows as they are, flagged late and counted."`
	IdleTimeout       Duration `yaml:"idle_timeout" default:"1m" doc:"How long a source partition (a shard, a subject) may deliver nothing before the watermark stops waiting for it."`
	DedupTTL          Duration `yaml:"dedup_ttl" default:"48h" doc:"How long, in event time, a transaction id is remembered to drop redeliveries before they reach the ledger (which deduplicates forever)."`
}

// Windows configures the keyed sliding windows (pipeline/window).
type Windows struct {
	Durations []Duration `yaml:"durations" default:"[1h, 1d, 7d, 30d]" doc:"Window lengths; each window is (ts - d, ts], the current transaction included."`
	MaxEvents int        `yaml:"max_events" default:"256" doc:"Events kept exactly per card; older ones fold into hourly buckets."`
	TTL       Duration   `yaml:"ttl" default:"30d" doc:"A card idle this long in event time is forgotten."`
	MaxCards  int        `yaml:"max_cards_per_partition" default:"1000000" doc:"Most cards one partition keeps state for (about 750 bytes each with 10 payments buffered); past it, the cards idle the longest are forgotten, a tenth at a time, and counted. 0: no bound."`
}

// Scoring configures features and decision logic.
type Scoring struct {
	Enrich   Enrich   `yaml:"enrich" doc:"Reference data and per-card location and device features (docs/enrichment.md)."`
	Velocity Velocity `yaml:"velocity" doc:"Per-card velocity features."`
	History  History  `yaml:"history" doc:"Per-card amount z-score and recent declines (scorers/history)."`
	Terminal Terminal `yaml:"terminal" doc:"Per-terminal counts and fraud rates from delayed feedback (the handbook's terminal risk features)."`
	Rules    Rules    `yaml:"rules" doc:"CEL rules over the transaction and its features."`
	Remote   Remote   `yaml:"remote" doc:"A model server that scores each transaction instead of (or as a shadow beside) the model (docs/scorers.md)."`
	Model    Model    `yaml:"model" doc:"The tree model that scores each transaction, and what its score decides."`
}

// Velocity configures the per-card velocity features.
type Velocity struct {
	Enabled    bool `yaml:"enabled" default:"true" doc:"Compute per-card count, mean and distinct-merchant features over the windows."`
	NightStart int  `yaml:"night_start_hour" default:"0" doc:"First hour (UTC, 0-23) that counts as night."`
	NightEnd   int  `yaml:"night_end_hour" default:"6" doc:"Last hour (UTC, 0-23, inclusive) that counts as night."`
}

// Enrich configures the enrichment features (scorers/enrich).
type Enrich struct {
	Enabled     bool      `yaml:"enabled" default:"true" doc:"Compute dist_home_km, dist_prev_km, speed_kmh, country_changed, foreign, new_device, deny_listed, allow_listed, country_risk and merchant_risk. Without reference files the features that need them are 0 (or -1 for unknown distances)."`
	Customers   string    `yaml:"customers" doc:"Customers file (CSV, NDJSON or Parquet): customer_id, home_lat, home_lon, home_country. Relative to this config file."`
	Merchants   string    `yaml:"merchants" doc:"Merchants file: merchant_id, country, mcc, risk (0 to 1)."`
	Countries   string    `yaml:"countries" doc:"Country risk file: country, risk (0 to 1)."`
	Allow       ListFiles `yaml:"allow" doc:"Allow lists; only cards are read (the allow_listed feature)."`
	Deny        ListFiles `yaml:"deny" doc:"Deny lists; any hit sets deny_listed, which the built-in rule deny_listed declines."`
	ReloadEvery Duration  `yaml:"reload_every" default:"10s" doc:"How often the files are checked for changes; a changed file is reloaded atomically, a broken one keeps the old data and is reported."`
	TTL         Duration  `yaml:"ttl" default:"30d" doc:"Event time a card's location and device state outlives its last payment."`
}

// ListFiles names list files: one entry a line (# comments) or CSV with a value column.
type ListFiles struct {
	Cards     string `yaml:"cards" doc:"Card ids."`
	Merchants string `yaml:"merchants" doc:"Merchant ids."`
	Devices   string `yaml:"devices" doc:"Device ids."`
	IPs       string `yaml:"ips" doc:"IPv4 and IPv6 addresses and CIDR prefixes."`
}

// History configures amount_zscore and card_declines_24h (scorers/history).
type History struct {
	Enabled bool `yaml:"enabled" default:"true" doc:"Compute amount_zscore (the amount against the card's exponentially weighted mean and deviation) and card_declines_24h (the card's payments declined by scoring in the last 24 hours)."`
}

// Terminal configures the delayed-label terminal features (scorers/terminal).
type Terminal struct {
	Enabled bool       `yaml:"enabled" default:"true" doc:"Compute terminal_count_<w> and terminal_risk_<w>: transactions at the payment's terminal (its merchant when it has none) and the share of them confirmed fraud by feedback, in windows ending delay before the payment."`
	Delay   Duration   `yaml:"delay" default:"7d" doc:"How long before the payment the windows end: about how long fraud takes to be confirmed."`
	Windows []Duration `yaml:"windows" default:"[1d, 7d, 30d]" doc:"Window lengths, shortest first."`
}

// Rules says where the rule set is.
type Rules struct {
	File        string   `yaml:"file" doc:"A YAML rule file; relative paths are relative to this config file. Empty: the built-in rule set."`
	ReloadEvery Duration `yaml:"reload_every" default:"10s" doc:"fraudpipe run checks the rule file this often and puts a changed one in force atomically (SIGHUP checks at once); a file that does not compile keeps the rules in force and is logged with its line. 0s: never. Replay never reloads."`
}

// Ledger configures the ledger stage.
type Ledger struct {
	Driver       string   `yaml:"driver" default:"sqlite" enum:"sqlite,postgres,none" doc:"sqlite: an embedded SQLite file; postgres: a PostgreSQL database (url); none: no ledger (decisions say skipped)."`
	Path         string   `yaml:"path" default:"fraudpipe-ledger.db" doc:"The SQLite database file."`
	URL          string   `yaml:"url" doc:"The PostgreSQL database of driver postgres, as a postgres:// URL; keep the password out of the file with interpolation, e.g. postgres://fraudpipe:${PGPASSWORD}@db:5432/ledger."`
	AccountsFile string   `yaml:"accounts_file" doc:"Reference file of accounts (CSV with a header, or NDJSON): account, currency, kind, limit, opening. Created at start, limits updated, opening balances posted once against the currency's system:funding account. Relative paths are relative to this config file."`
	Chargebacks  bool     `yaml:"chargebacks" default:"false" doc:"Feedback that confirms fraud on a posted transaction reverses its entry (a chargeback)."`
	DefaultLimit Decimal  `yaml:"default_limit" default:"50000.00" doc:"Spending limit of an account created on first use, in its currency's major units: its balance may not go below minus this."`
	BatchSize    int      `yaml:"batch_size" default:"4096" doc:"Most postings committed in one database transaction (group commit)."`
	MaxDelay     Duration `yaml:"max_delay" default:"5ms" doc:"Longest a posting waits for its batch to fill before it is committed."`
}

// Output says where decisions and dead letters are written by fraudpipe run.
type Output struct {
	Decisions   FileOutput `yaml:"decisions" doc:"Decisions, one JSON object a line."`
	DeadLetters FileOutput `yaml:"dead_letters" doc:"Refused input lines with their reason."`
	Features    bool       `yaml:"features" default:"false" doc:"Include the feature values in each decision."`

	OpenSearch []OpenSearchOutput `yaml:"opensearch" default:"[]" doc:"OpenSearch indices that decisions are written to (docs/sinks.md)."`
	Alerts     []AlertOutput      `yaml:"alerts" default:"[]" doc:"Alerters (webhook, NATS, log) that matching decisions are sent to (docs/sinks.md)."`
	Audit      AuditOutput        `yaml:"audit" doc:"The hash-chained audit log of every decision (docs/audit.md)."`
	Parquet    ParquetOutput      `yaml:"parquet" doc:"The Parquet archive of every decision, by event-time hour, in a folder or on S3 (docs/parquet.md)."`
}

// AuditOutput is output.audit.
type AuditOutput struct {
	Path   string `yaml:"path" doc:"The audit log file; empty: no audit log. Relative to this config file."`
	Append bool   `yaml:"append" default:"false" doc:"Continue an existing log (after checking its tail) when no checkpoint covers it; false refuses to touch an existing log without a checkpoint."`
}

// FileOutput is an NDJSON file output.
type FileOutput struct {
	Path string `yaml:"path" doc:"File to write; - for standard output; empty to discard."`
}

// Checkpoint configures checkpoints (fraudpipe run only; replay never checkpoints).
type Checkpoint struct {
	Enabled  bool     `yaml:"enabled" default:"true" doc:"Take checkpoints, and resume from the newest complete one on start. Needs a source that can rewind (a file, not standard input)."`
	Dir      string   `yaml:"dir" default:"checkpoints" doc:"Where checkpoints go: a folder (a path or a file:// URL; relative paths are relative to this config file) or s3://bucket/prefix."`
	Interval Duration `yaml:"interval" default:"10s" doc:"Time between checkpoints. A restarted process redoes at most this much work."`
	Keep     int      `yaml:"keep" default:"3" doc:"Checkpoints kept; older ones are deleted after a new one is complete."`
	S3       S3       `yaml:"s3" doc:"How to reach S3 when dir is an s3:// URL."`
}

// Log configures the process's log (standard error).
type Log struct {
	Format string `yaml:"format" default:"text" enum:"text,json" doc:"text: key=value lines for people; json: one JSON object a line for log pipelines."`
	Level  string `yaml:"level" default:"info" enum:"debug,info,warn,error" doc:"The least severe level written. info is quiet in normal operation: start, stop, checkpoints restored, and problems."`
}

// Admin configures the operator endpoints.
type Admin struct {
	Listen string `yaml:"listen" doc:"Address of /metrics (Prometheus), /healthz (alive) and /readyz (state restored, reading), e.g. 127.0.0.1:9464 or :9464; empty: no endpoints."`
	TLS    TLS    `yaml:"tls" doc:"HTTPS for the endpoints, and optionally mutual TLS; without a certificate they speak plain HTTP."`
}
