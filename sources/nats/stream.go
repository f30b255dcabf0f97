package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of StreamOptions and Options.
const (
	DefaultStream          = "TXN"
	DefaultSubject         = "txn"
	DefaultDuplicateWindow = 2 * time.Minute
)

// StreamOptions describe the JetStream stream that holds transactions.
//
// Producers publish each transaction as one message with header Nats-Msg-Id set to the
// transaction id (the server drops a repeat within DuplicateWindow):
//
//   - unpartitioned (Partitions 0): on subject "<Subject>.in", e.g. txn.in, stored as is;
//   - partitioned (Partitions P > 0): on "<Subject>.in.<key>", e.g. txn.in.card-42, where
//     the key is the card id made into one subject token (see SubjectToken). The stream's
//     subject transform stores the message on "<Subject>.<p>", p = a hash of the key mod P
//     (the server's partition() mapping function), so every message of one card lands on
//     one partition and a consumer reads partitions 0 and 2 by filtering txn.0 and txn.2.
//     (Streams of earlier releases stored "<Subject>.<p>.<key>"; they are read as they are.)
type StreamOptions struct {
	Name            string        // stream name; default "TXN"
	Subject         string        // subject prefix, one or more tokens; default "txn"
	Partitions      int           // P; 0: unpartitioned
	MaxAge          time.Duration // how long messages are kept; 0: until removed
	Replicas        int           // copies in a cluster; 0: 1 for a new stream, and an existing stream's kept
	DuplicateWindow time.Duration // Nats-Msg-Id deduplication window; default 2m
	// MemoryStorage keeps the stream in memory instead of files (tests, benchmarks).
	MemoryStorage bool
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Name == "" {
		o.Name = DefaultStream
	}
	if o.Subject == "" {
		o.Subject = DefaultSubject
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = DefaultDuplicateWindow
	}
	return o
}

// InputSubject is the subject producers publish to when the stream is unpartitioned
// ("txn.in"); a partitioned stream takes InputSubject + "." + key.
func (o StreamOptions) InputSubject() string { return o.withDefaults().Subject + ".in" }

// PartitionFilter is the consumer filter subject of partition p of a stream EnsureStream
// creates, e.g. "txn.3" (Options.Partitions sets the filters itself, for streams of either
// form).
func (o StreamOptions) PartitionFilter(p int) string {
	return o.withDefaults().Subject + "." + strconv.Itoa(p)
}

// config is the stream configuration o asks for.
func (o StreamOptions) config() jetstream.StreamConfig {
	o = o.withDefaults()
	cfg := jetstream.StreamConfig{
		Name:        o.Name,
		Description: "fraudpipe transactions, one NDJSON line per message",
		Subjects:    []string{o.Subject + ".in"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      o.MaxAge,
		Replicas:    o.Replicas,
		Duplicates:  o.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	}
	if o.MemoryStorage {
		cfg.Storage = jetstream.MemoryStorage
	}
	if o.Partitions > 0 {
		in := o.Subject + ".in.*"
		cfg.Subjects = []string{in}
		cfg.SubjectTransform = &jetstream.SubjectTransformConfig{
			Source: in,
			// One subject per partition: a consumer filtering a few literal subjects is
			// served from the stream's per-subject index, where filters over thousands of
			// per-card subjects (txn.<p>.<card>) made the server scan (30 times slower).
			Destination: fmt.Sprintf("%s.{{partition(%d,1)}}", o.Subject, o.Partitions),
		}
	}
	return cfg
}

// EnsureStream creates the stream o describes, or checks that an existing one has the same
// subjects and partitioning and updates its limits (MaxAge, Replicas, DuplicateWindow).
func EnsureStream(ctx context.Context, js jetstream.JetStream, o StreamOptions) (jetstream.Stream, error) {
	if o.Partitions < 0 {
		return nil, fmt.Errorf("stream %s: partitions %d: use 0 for an unpartitioned stream or a positive count", o.Name, o.Partitions)
	}
	keepReplicas := o.Replicas <= 0
	want := o.config()
	st, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, want)
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := st.CachedInfo().Config
	if keepReplicas {
		want.Replicas = have.Replicas
	}
	if o.Partitions > 0 && have.SubjectTransform != nil && transformOf(have) == transformOf(legacyConfig(o)) {
		// A stream of an earlier release, stored on <subject>.<p>.<card>: same partitions.
		want.SubjectTransform = have.SubjectTransform
	}
	if !slices.Equal(have.Subjects, want.Subjects) || transformOf(have) != transformOf(want) {
		return nil, fmt.Errorf("stream %s exists with subjects %v (transform %q), the config asks for %v (transform %q): "+
			"a changed partition count would move cards between partitions; delete the stream or give a new stream name",
			want.Name, have.Subjects, transformOf(have), want.Subjects, transformOf(want))
	}
	if have.MaxAge == want.MaxAge && have.Replicas == want.Replicas && have.Duplicates == want.Duplicates {
		return st, nil
	}
	upd := have
	upd.MaxAge, upd.Replicas, upd.Duplicates = want.MaxAge, want.Replicas, want.Duplicates
	st, err = js.UpdateStream(ctx, upd)
	if err != nil {
		return nil, fmt.Errorf("update stream %s: %w", want.Name, err)
	}
	return st, nil
}

// legacyConfig is o's stream as earlier releases created it: each message stored on
// <subject>.<p>.<card>. Such a stream is still read (with filters <subject>.<p>.>).
func legacyConfig(o StreamOptions) jetstream.StreamConfig {
	c := o.config()
	if c.SubjectTransform != nil {
		c.SubjectTransform.Destination += ".{{wildcard(1)}}"
	}
	return c
}

// partitionFilter is the filter subject of partition p of a partitioned stream c:
// <prefix><p>, or <prefix><p>.> for a stream that keeps the card in the subject.
func partitionFilter(c jetstream.StreamConfig, prefix string, p int) string {
	if c.SubjectTransform != nil && strings.HasSuffix(c.SubjectTransform.Destination, ".{{wildcard(1)}}") {
		return prefix + strconv.Itoa(p) + ".>"
	}
	return prefix + strconv.Itoa(p)
}

func transformOf(c jetstream.StreamConfig) string {
	if c.SubjectTransform == nil {
		return ""
	}
	return c.SubjectTransform.Source + " -> " + c.SubjectTransform.Destination
}

// SubjectToken turns a key (a card id) into one subject token: characters that NATS
// treats specially ('.', '*', '>', white space, control characters) become '_', and an
// empty key becomes "_".
func SubjectToken(key string) string {
	if key == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(key); i++ {
		if tokenByteBad(key[i]) {
			clean = false
			break
		}
	}
	if clean {
		return key
	}
	b := []byte(key)
	for i, c := range b {
		if tokenByteBad(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func tokenByteBad(c byte) bool {
	return c <= ' ' || c == '.' || c == '*' || c == '>' || c == 0x7f
}

// partitionPrefix is the subject prefix before the partition token of a partitioned
// stream ("txn."), read from its subject transform; "" for an unpartitioned stream.
func partitionPrefix(c jetstream.StreamConfig) string {
	if c.SubjectTransform == nil {
		return ""
	}
	d := c.SubjectTransform.Destination
	i := strings.Index(d, "{{partition(")
	if i <= 0 || d[i-1] != '.' {
		return ""
	}
	return d[:i]
}

// partitionCount reads P from a partitioned stream's subject mapping
// <subject>.{{partition(P,1)}}; 0 when it cannot tell.
func partitionCount(c jetstream.StreamConfig) int {
	if c.SubjectTransform == nil {
		return 0
	}
	d := c.SubjectTransform.Destination
	i := strings.Index(d, "{{partition(")
	if i < 0 {
		return 0
	}
	rest := d[i+len("{{partition("):]
	j := strings.IndexAny(rest, ",)")
	if j < 0 {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(rest[:j]))
	if err != nil {
		return 0
	}
	return n
}
