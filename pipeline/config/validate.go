package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// maxMinorDigits is the most minor-unit digits of any payment currency (ISO 4217: UYW has 4);
// ledger.default_limit must convert to minor units of every currency.
const maxMinorDigits = 4

// Validate checks what the field types alone cannot: ranges, orderings and fields that
// depend on each other. Load and Parse call it; call it again after changing a Config in
// code. It returns a *Error listing every problem, with the line where the offending field
// was set when the config came from a file.
func (c *Config) Validate() error {
	if issues := c.validate(); len(issues) > 0 {
		return &Error{Issues: issues}
	}
	return nil
}

// validator collects the issues of one Validate call.
type validator struct {
	c      *Config
	issues []Issue
}

// add records a problem with the field at path, at the position it was set in the file.
func (v *validator) add(path, format string, args ...any) {
	is := Issue{Path: path, Msg: path + ": " + fmt.Sprintf(format, args...)}
	if v.c.src != nil {
		is.File = v.c.src.file
		p := v.c.src.lines[path]
		is.Line, is.Column = p.line, p.col
	}
	v.issues = append(v.issues, is)
}

func (c *Config) validate() []Issue {
	v := &validator{c: c}
	v.enums(reflect.ValueOf(c).Elem(), "")

	e := c.Engine
	if e.Partitions < 0 {
		v.add("engine.partitions", "must be 0 (one per CPU) or more, got %d", e.Partitions)
	}
	if e.BatchSize <= 0 {
		v.add("engine.batch_size", "must be 1 or more, got %d", e.BatchSize)
	}
	if e.QueueBatches <= 0 {
		v.add("engine.queue_batches", "must be 1 or more, got %d", e.QueueBatches)
	}
	v.positive("engine.dedup_ttl", e.DedupTTL)
	v.positive("engine.max_out_of_orderness", e.MaxOutOfOrderness)
	v.positive("engine.allowed_lateness", e.AllowedLateness)
	v.positive("engine.idle_timeout", e.IdleTimeout)

	v.scale(c)
	if ck := c.Checkpoint; ck.Enabled {
		v.positive("checkpoint.interval", ck.Interval)
		if ck.Keep < 1 {
			v.add("checkpoint.keep", "must be 1 or more, got %d", ck.Keep)
		}
		if ck.Dir == "" {
			v.add("checkpoint.dir", "must name a folder when checkpoint.enabled is true")
		}
	}

	v.source(c)
	v.security(c)

	w := c.Windows
	if len(w.Durations) == 0 {
		v.add("windows.durations", "must list at least one window length, such as [1h, 1d, 7d, 30d]")
	}
	for i, d := range w.Durations {
		path := fmt.Sprintf("windows.durations[%d]", i)
		switch {
		case d <= 0:
			v.add(path, "must be longer than 0, got %s", d)
		case i > 0 && d <= w.Durations[i-1]:
			v.add(path, "%s is not longer than the window before it (%s): list windows shortest first, each once",
				d, w.Durations[i-1])
		}
	}
	if w.MaxCards < 0 {
		v.add("windows.max_cards_per_partition", "must be 0 (no bound) or more, got %d", w.MaxCards)
	}
	if w.MaxEvents < 1 {
		v.add("windows.max_events", "must be 1 or more, got %d", w.MaxEvents)
	}
	if v.positive("windows.ttl", w.TTL) {
		var longest Duration
		for _, d := range w.Durations {
			longest = max(longest, d)
		}
		if w.TTL < longest {
			v.add("windows.ttl", "%s is shorter than the longest window (%s): a card would be forgotten while still inside it",
				w.TTL, longest)
		}
	}

	v.model(c.Scoring.Model)
	v.remote(c.Scoring.Remote, c.Scoring.Model)

	if en := c.Scoring.Enrich; en.Enabled {
		v.positive("scoring.enrich.reload_every", en.ReloadEvery)
		v.positive("scoring.enrich.ttl", en.TTL)
		for _, l := range []struct{ path, file string }{
			{"scoring.enrich.allow.merchants", en.Allow.Merchants},
			{"scoring.enrich.allow.devices", en.Allow.Devices},
			{"scoring.enrich.allow.ips", en.Allow.IPs},
		} {
			if l.file != "" {
				v.add(l.path, "only card allow lists are read (allow_listed); a merchant, device or IP allow list would have no effect: remove it")
			}
		}
	}
	if t := c.Scoring.Terminal; t.Enabled {
		v.positive("scoring.terminal.delay", t.Delay)
		if len(t.Windows) == 0 {
			v.add("scoring.terminal.windows", "must list at least one window length, such as [1d, 7d, 30d]")
		}
		for i, d := range t.Windows {
			path := fmt.Sprintf("scoring.terminal.windows[%d]", i)
			switch {
			case d <= 0:
				v.add(path, "must be longer than 0, got %s", d)
			case i > 0 && d <= t.Windows[i-1]:
				v.add(path, "%s is not longer than the window before it (%s): list windows shortest first, each once", d, t.Windows[i-1])
			}
		}
	}

	vel := c.Scoring.Velocity
	v.hour("scoring.velocity.night_start_hour", vel.NightStart)
	v.hour("scoring.velocity.night_end_hour", vel.NightEnd)

	l := c.Ledger
	if l.Driver == "sqlite" && l.Path == "" {
		v.add("ledger.path", "must name the SQLite database file when ledger.driver is sqlite")
	}
	if l.Driver == "postgres" && l.URL == "" {
		v.add("ledger.url", "must be a postgres:// URL when ledger.driver is postgres, e.g. postgres://fraudpipe:${PGPASSWORD}@db:5432/fraudpipe")
	}
	if l.BatchSize <= 0 {
		v.add("ledger.batch_size", "must be 1 or more, got %d", l.BatchSize)
	}
	v.positive("ledger.max_delay", l.MaxDelay)
	if l.DefaultLimit.Sign() < 0 {
		v.add("ledger.default_limit", "must be 0 or more, got %s", l.DefaultLimit)
	} else if _, err := l.DefaultLimit.Minor(maxMinorDigits); errors.Is(err, ErrDecimalPrecision) {
		v.add("ledger.default_limit", "%s has more fraction digits than any currency (%d)", l.DefaultLimit, maxMinorDigits)
	} else if err != nil {
		v.add("ledger.default_limit", "%s is too large to hold in minor units", l.DefaultLimit)
	}
	return v.issues
}

// positive checks that a duration is longer than 0 and reports whether it is.
func (v *validator) positive(path string, d Duration) bool {
	if d <= 0 {
		v.add(path, "must be longer than 0, got %s", d)
		return false
	}
	return true
}

// hour checks an hour of the day.
func (v *validator) hour(path string, h int) {
	if h < 0 || h > 23 {
		v.add(path, "must be an hour from 0 to 23, got %d", h)
	}
}

// enums checks every field with an enum tag, for Configs built or changed in code (decoding
// already refuses values outside the enum).
func (v *validator) enums(val reflect.Value, path string) {
	for _, f := range fieldsOf(val.Type()) {
		fv := val.Field(f.index)
		child := joinPath(path, f.name)
		if bad, ok := badEnum(fv, f.enum); ok {
			v.add(child, "%q is not one of %s", bad, strings.Join(f.enum, ", "))
		}
		if fv.Kind() == reflect.Struct && isBlock(fv.Type()) {
			v.enums(fv, child)
		}
	}
}

// source checks the block of the source type chosen.
func (v *validator) source(c *Config) {
	s := c.Source
	switch s.Type {
	case "file":
		// replay takes --input, so an empty path is checked by run
	case "nats":
		n := s.NATS
		if n.URL == "" && !n.Embedded {
			v.add("source.nats.url", "must name a NATS server (nats://host:4222) unless source.nats.embedded is true")
		}
		if n.Embedded && n.URL == "" && n.StoreDir == "" {
			v.add("source.nats.store_dir", "must name a folder for the embedded server's streams")
		}
		if n.Stream == "" {
			v.add("source.nats.stream", "must name the JetStream stream")
		}
		if n.Subject == "" || strings.ContainsAny(n.Subject, " *>") {
			v.add("source.nats.subject", "must be a subject prefix without spaces or wildcards, such as txn; got %q", n.Subject)
		}
		if n.Partitions < 0 {
			v.add("source.nats.partitions", "must be 0 (unpartitioned) or more, got %d", n.Partitions)
		}
		if n.Replicas < 0 || n.Replicas > 5 {
			v.add("source.nats.replicas", "must be 0 (keep) or 1 to 5, got %d", n.Replicas)
		}
		if n.Durable == "" || strings.ContainsAny(n.Durable, " .*>") {
			v.add("source.nats.durable", "must be a consumer name without spaces, dots or wildcards; got %q", n.Durable)
		}
		if v.positive("source.nats.ack_wait", n.AckWait) && c.Checkpoint.Enabled && n.AckWait <= 2*c.Checkpoint.Interval {
			v.add("source.nats.ack_wait", "%s is not more than twice checkpoint.interval (%s): messages are acknowledged only when a checkpoint covers them, so the server would redeliver them first; set ack_wait to at least %s",
				n.AckWait, c.Checkpoint.Interval, 3*c.Checkpoint.Interval)
		}
		if n.MaxAckPending < 1 {
			v.add("source.nats.max_ack_pending", "must be 1 or more, got %d", n.MaxAckPending)
		}
		if n.FetchBatch < 1 {
			v.add("source.nats.fetch_batch", "must be 1 or more, got %d", n.FetchBatch)
		}
	case "kinesis":
		k := s.Kinesis
		if k.Stream == "" {
			v.add("source.kinesis.stream", "must name the Kinesis stream (its name or ARN)")
		}
		if k.Limit < 1 || k.Limit > 10000 {
			v.add("source.kinesis.limit", "must be between 1 and 10000, got %d", k.Limit)
		}
		v.positive("source.kinesis.poll_interval", k.PollInterval)
		v.positive("source.kinesis.shard_refresh", k.ShardRefresh)
		if k.AccessKeyID != "" && k.SecretAccessKey == "" {
			v.add("source.kinesis.secret_access_key", "must be set with access_key_id (write ${AWS_SECRET_ACCESS_KEY})")
		}
	case "http":
		h := s.HTTP
		if h.Listen == "" {
			v.add("source.http.listen", "must be an address such as 127.0.0.1:8080 or :8080")
		}
		if (h.TLSCert == "") != (h.TLSKey == "") {
			v.add("source.http.tls_cert", "tls_cert and tls_key go together: set both for HTTPS, or neither")
		}
		if h.RateLimit < 0 {
			v.add("source.http.rate_limit", "must be 0 (no limit) or more, got %g", h.RateLimit)
		}
		if h.RateLimit > 0 && h.Burst < 1 {
			v.add("source.http.burst", "must be 1 or more with a rate_limit, got %d", h.Burst)
		}
		if h.MaxBodyBytes < 256 {
			v.add("source.http.max_body_bytes", "must be 256 or more, got %d", h.MaxBodyBytes)
		}
		if h.MaxBatchBytes < h.MaxBodyBytes {
			v.add("source.http.max_batch_bytes", "must be at least max_body_bytes (%d), got %d", h.MaxBodyBytes, h.MaxBatchBytes)
		}
		if h.MaxBatch < 1 {
			v.add("source.http.max_batch", "must be 1 or more, got %d", h.MaxBatch)
		}
		v.positive("source.http.timeout", h.Timeout)
		if h.Auth.HS256Secret != "" && len(h.Auth.HS256Secret) < 32 {
			v.add("source.http.auth.hs256_secret", "is %d bytes; an HS256 secret needs at least 32 random bytes", len(h.Auth.HS256Secret))
		}
	case "s3":
		if !strings.HasPrefix(s.S3.URL, "s3://") || len(s.S3.URL) <= len("s3://") {
			v.add("source.s3.url", "must be s3://bucket/prefix, got %q", s.S3.URL)
		}
		if s.S3.Poll < 0 {
			v.add("source.s3.poll", "must be 0 (read once) or more, got %s", s.S3.Poll)
		}
	}
}
