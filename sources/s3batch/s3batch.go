// Package s3batch reads batch files of transactions that banks drop into S3: every object
// under a prefix, once, in key order. NDJSON (plain or gzip) and CSV objects are streamed
// from the GetObject body; Parquet objects are read row group by row group through ranged
// GETs. Each row becomes one message in the transaction JSON of CONTRACT.md; a row or an
// object that cannot be read becomes a message the engine refuses, so it reaches the dead
// letters with the object's name and the problem instead of stopping the pipeline.
package s3batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/awsconf"
)

// Defaults of Options.
const (
	DefaultBatchSize = 512
	DefaultHorizon   = 24 * time.Hour
)

// idleWait is how long a live source waits for something new before it returns an empty
// batch, so the engine can checkpoint and notice cancellation.
const idleWait = 250 * time.Millisecond

// maxRetries is how often an object whose download broke off is opened again (and read up
// to where it broke off) before ReadBatch gives up with an error.
const maxRetries = 3

// Formats of Options.Format.
const (
	FormatAuto    = "auto"
	FormatNDJSON  = "ndjson"
	FormatCSV     = "csv"
	FormatParquet = "parquet"
)

// Options configure a Source.
type Options struct {
	Bucket    string // required
	Prefix    string // keys that start with it are read; "" reads the whole bucket
	Endpoint  string // e.g. http://127.0.0.1:9000 for an S3-compatible server; "" for AWS
	Region    string
	PathStyle bool // bucket in the path, as most S3-compatible servers want
	// AccessKeyID, SecretAccessKey and SessionToken, when AccessKeyID is set, replace the
	// standard AWS chain (environment, shared config, instance role).
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Format is "auto" (the default: by the key's extension, see docs/sources.md),
	// "ndjson", "csv" or "parquet".
	Format string
	// Poll is 0 for a batch source: the prefix is listed once and ReadBatch returns
	// pipeline.ErrEndOfInput when every object listed is read. Above 0 the source is live:
	// it lists the prefix again every Poll and reads what is new.
	Poll time.Duration
	// Horizon is how long after its last modification a finished object may still have a
	// later object with a smaller key arrive beside it; see "Once only" in the package docs.
	// Default 24h.
	Horizon   time.Duration
	BatchSize int    // most messages per ReadBatch; default 512
	Name      string // names the source in dead letters and metrics; default s3://bucket/prefix
	// Client, when set, is used instead of one built from the fields above (tests).
	Client *s3.Client
	Logger *slog.Logger // nil: discard
}

// Source is a pipeline.Source and pipeline.Positioner over the objects under an S3 prefix.
//
// Once only: the position records which objects are finished as a floor key (every key
// at or below it is finished) and the finished keys above the floor. Objects are read in
// key order, the smallest unfinished key first, so an object that appears later with a
// key below ones already read is still read. The floor passes a finished object only once
// it was last modified more than Horizon ago, so such a late object is missed only if it
// arrives more than Horizon after an object with a larger key was written. Keys are
// finished once, whatever happens to them later: an object overwritten under a finished
// key (a new ETag) is not read again.
type Source struct {
	client  *s3.Client
	bucket  string
	prefix  string
	format  string
	poll    time.Duration
	horizon time.Duration
	batch   int
	name    string
	log     *slog.Logger
	now     func() time.Time
	// listPage, when set, is the most keys per listing page (tests page through listings).
	listPage int32

	// life scopes the downloads: an object's body outlives one ReadBatch.
	life   context.Context
	cancel context.CancelFunc

	floor    string
	done     map[string]time.Time // finished keys above the floor: last modified (zero if unknown)
	pending  []object             // listed, not started, in key order
	listed   bool                 // the prefix was listed at least once
	listedAt time.Time
	cur      *current // the object being read, nil between objects
	err      error    // an error to return from the next ReadBatch, after the rows before it

	arenas sync.Pool
}

// object is one listed object.
type object struct {
	key      string
	etag     string
	size     int64
	modified time.Time
}

// current is the object being read and how far.
type current struct {
	object
	row     int64     // rows (lines, records) consumed so far
	rows    rowReader // nil until opened
	retries int
}

// Open checks the options and returns a source. Nothing is listed until the first
// ReadBatch, so Seek can set the position first.
func Open(ctx context.Context, o Options) (*Source, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3batch: bucket is required")
	}
	switch o.Format {
	case "":
		o.Format = FormatAuto
	case FormatAuto, FormatNDJSON, FormatCSV, FormatParquet:
	default:
		return nil, fmt.Errorf("s3batch: format %q is not one of auto, ndjson, csv, parquet", o.Format)
	}
	if o.Poll < 0 {
		return nil, fmt.Errorf("s3batch: poll %s is negative: use 0 to read the objects once and end, or a positive interval to keep polling", o.Poll)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Horizon <= 0 {
		o.Horizon = DefaultHorizon
	}
	if o.Name == "" {
		o.Name = "s3://" + path.Join(o.Bucket, o.Prefix)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	client := o.Client
	if client == nil {
		var err error
		if client, err = newClient(ctx, o); err != nil {
			return nil, err
		}
	}
	life, cancel := context.WithCancel(context.Background())
	return &Source{
		client: client, bucket: o.Bucket, prefix: o.Prefix, format: o.Format, poll: o.Poll,
		horizon: o.Horizon, batch: o.BatchSize, name: o.Name, log: o.Logger, now: time.Now,
		life: life, cancel: cancel, done: make(map[string]time.Time),
	}, nil
}

// ParseURL splits an s3://bucket/prefix URL into its bucket and key prefix. The prefix
// is kept as written after the bucket ("incoming/" lists keys under that folder,
// "incoming/bank-a-" keys that start with it).
func ParseURL(rawURL string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(rawURL, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	if !ok || bucket == "" {
		return "", "", fmt.Errorf("s3batch: %q is not an s3://bucket/prefix URL", rawURL)
	}
	return bucket, prefix, nil
}

// newClient builds an S3 client the way the project's other S3 users do: the standard AWS
// chain unless static credentials are given, and an endpoint override for S3-compatible
// servers.
func newClient(ctx context.Context, o Options) (*s3.Client, error) {
	cfg, err := awsconf.Load(ctx, "s3batch", awsconf.Static{
		Region: o.Region, AccessKeyID: o.AccessKeyID, SecretAccessKey: o.SecretAccessKey, SessionToken: o.SessionToken})
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		so.UsePathStyle = o.PathStyle
	}), nil
}

// Name identifies the source in dead letters and metrics.
func (s *Source) Name() string { return s.name }

// url names an object in messages.
func (s *Source) url(key string) string { return "s3://" + s.bucket + "/" + key }

// Close stops any download in progress.
func (s *Source) Close() error {
	s.cancel()
	if s.cur != nil && s.cur.rows != nil {
		s.cur.rows.close()
		s.cur.rows = nil
	}
	return nil
}

type arena struct {
	data []byte
	msgs []pipeline.Message
	ends []int
}

// ReadBatch returns up to the batch size of rows, from one object or several in key order.
// A batch source returns pipeline.ErrEndOfInput once every listed object is finished; a
// live one returns an empty batch after about 250 ms with nothing new.
func (s *Source) ReadBatch(ctx context.Context) ([]pipeline.Message, pipeline.AckFunc, error) {
	a, _ := s.arenas.Get().(*arena)
	if a == nil {
		a = &arena{}
	}
	a.data, a.msgs, a.ends = a.data[:0], a.msgs[:0], a.ends[:0]
	if err := s.err; err != nil {
		s.err = nil
		s.arenas.Put(a)
		return nil, nil, err
	}
	deadline := s.now().Add(idleWait)
	// fail returns err, or first the rows read before it: the position already covers them.
	fail := func(err error) ([]pipeline.Message, pipeline.AckFunc, error) {
		if len(a.msgs) == 0 {
			s.arenas.Put(a)
			return nil, nil, err
		}
		if ctx.Err() == nil { // a cancelled caller sees the cancellation itself next time
			s.err = err
		}
		return s.finishBatch(a)
	}
	for len(a.msgs) < s.batch {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if s.cur == nil {
			if err := s.next(ctx); err != nil {
				return fail(err)
			}
			if s.cur == nil { // nothing to read now
				if len(a.msgs) > 0 {
					break
				}
				if s.poll == 0 {
					s.arenas.Put(a)
					return nil, nil, pipeline.ErrEndOfInput
				}
				wait := min(deadline.Sub(s.now()), s.listedAt.Add(s.poll).Sub(s.now()))
				if wait <= 0 && !s.now().Before(deadline) {
					s.arenas.Put(a)
					return nil, nil, nil
				}
				if wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-ctx.Done():
						t.Stop()
						s.arenas.Put(a)
						return nil, nil, ctx.Err()
					case <-t.C:
					}
				}
				continue
			}
		}
		if err := s.readRows(a); err != nil {
			return fail(err)
		}
	}
	return s.finishBatch(a)
}

// finishBatch points the messages of a at their bytes.
func (s *Source) finishBatch(a *arena) ([]pipeline.Message, pipeline.AckFunc, error) {
	begin := 0
	for i, end := range a.ends {
		a.msgs[i].Data = a.data[begin:end:end]
		begin = end
	}
	return a.msgs, func(context.Context, error) error { s.arenas.Put(a); return nil }, nil
}

// next picks the next object to read into s.cur, listing the prefix when it is due. It
// leaves s.cur nil when there is nothing to read now.
func (s *Source) next(ctx context.Context) error {
	due := !s.listed || (s.poll > 0 && !s.now().Before(s.listedAt.Add(s.poll)))
	if due {
		if err := s.list(ctx); err != nil {
			if s.poll == 0 || errors.Is(err, context.Canceled) {
				return err
			}
			// A live source rides out a failed listing: the next poll tries again.
			s.log.Warn("listing failed; trying again at the next poll", "source", s.name, "err", err)
		}
	}
	if len(s.pending) == 0 {
		return nil
	}
	o := s.pending[0]
	s.pending = s.pending[1:]
	s.cur = &current{object: o}
	return nil
}

// list lists every object above the floor, advances the floor over old finished objects,
// and queues the unfinished ones in key order.
func (s *Source) list(ctx context.Context) error {
	s.listedAt = s.now()
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket)}
	if s.prefix != "" {
		in.Prefix = aws.String(s.prefix)
	}
	if s.floor != "" {
		in.StartAfter = aws.String(s.floor)
	}
	if s.listPage > 0 {
		in.MaxKeys = aws.Int32(s.listPage)
	}
	var objs []object
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w (the credentials need s3:ListBucket on the bucket)", s.url(s.prefix), err)
		}
		for _, c := range page.Contents {
			k := aws.ToString(c.Key)
			if strings.HasSuffix(k, "/") || k <= s.floor {
				continue // folder markers; keys at or below the floor are finished
			}
			objs = append(objs, object{key: k, etag: aws.ToString(c.ETag), size: aws.ToInt64(c.Size), modified: aws.ToTime(c.LastModified)})
		}
	}
	s.listed = true
	sort.Slice(objs, func(i, j int) bool { return objs[i].key < objs[j].key })
	// Advance the floor over the leading finished objects that are older than the horizon.
	old := s.now().Add(-s.horizon)
	for _, o := range objs {
		if _, ok := s.done[o.key]; !ok || !o.modified.Before(old) {
			break
		}
		s.floor = o.key
	}
	for k := range s.done {
		if k <= s.floor {
			delete(s.done, k)
		}
	}
	s.pending = s.pending[:0]
	for _, o := range objs {
		if o.key <= s.floor {
			continue
		}
		if _, ok := s.done[o.key]; ok {
			s.done[o.key] = o.modified
			continue
		}
		if s.cur != nil && s.cur.key == o.key {
			continue
		}
		s.pending = append(s.pending, o)
	}
	return nil
}

// finish marks the current object finished.
func (s *Source) finish() {
	if s.cur.rows != nil {
		s.cur.rows.close()
	}
	s.done[s.cur.key] = s.cur.modified
	s.cur = nil
}

// readRows appends rows of the current object to a until the batch is full or the object
// is finished.
func (s *Source) readRows(a *arena) error {
	c := s.cur
	if c.rows == nil {
		rows, err := s.openObject(c)
		if err != nil {
			var p *problem
			if errors.As(err, &p) {
				s.addProblem(a, c, p.Error())
				s.finish()
				return nil
			}
			if isNotFound(err) { // deleted since it was listed: nothing to read
				s.log.Info("object deleted before it was read", "object", s.url(c.key))
				s.cur = nil
				return nil
			}
			if errors.Is(err, context.Canceled) {
				return err
			}
			return s.retry(err)
		}
		c.rows = rows
	}
	for len(a.msgs) < s.batch {
		n := len(a.data)
		var pos int64
		var err error
		a.data, pos, err = c.rows.next(a.data)
		if err == nil {
			c.row = c.rows.row()
			c.retries = 0
			a.msgs = append(a.msgs, pipeline.Message{Pos: pos})
			a.ends = append(a.ends, len(a.data))
			continue
		}
		a.data = a.data[:n]
		if err == errEOF {
			s.finish()
			return nil
		}
		var te *transportError
		if errors.As(err, &te) {
			c.rows.close()
			c.rows = nil
			return s.retry(err)
		}
		// Anything else is the object's content: report it and go on with the next object.
		s.addProblem(a, c, fmt.Sprintf("object skipped after row %d: %v", c.rows.row(), err))
		s.finish()
		return nil
	}
	return nil
}

// retry counts a failed download of the current object; it is opened again (and read up
// to where it stopped) on the next call, up to maxRetries times in a row.
func (s *Source) retry(err error) error {
	s.cur.retries++
	if s.cur.retries > maxRetries {
		return fmt.Errorf("read %s: %w (the credentials need s3:GetObject on the objects)", s.url(s.cur.key), err)
	}
	s.log.Warn("object download failed; opening it again", "object", s.url(s.cur.key), "row", s.cur.row, "err", err)
	return nil
}

// addProblem appends a message that reports a problem with object c: it is not JSON, so
// the engine refuses it and its text reaches the dead letters.
func (s *Source) addProblem(a *arena, c *current, msg string) {
	a.data = appendProblem(a.data, s.url(c.key), msg)
	a.msgs = append(a.msgs, pipeline.Message{Pos: c.row + 1})
	a.ends = append(a.ends, len(a.data))
}

// appendProblem writes "s3batch: <object>: <msg>", cut to fit a line the engine accepts.
func appendProblem(dst []byte, object, msg string) []byte {
	start := len(dst)
	dst = append(dst, "s3batch: "...)
	dst = append(dst, object...)
	dst = append(dst, ": "...)
	dst = append(dst, msg...)
	if len(dst)-start > maxProblem {
		dst = append(dst[:start+maxProblem-3], "..."...)
	}
	return dst
}

// maxProblem bounds a problem message, well under pipeline.MaxLineBytes.
const maxProblem = 8 << 10

// formatOf is the format of key: the forced one, or by its extension.
func (s *Source) formatOf(key string) (format string, gz bool, err error) {
	base := strings.ToLower(key)
	if b, ok := strings.CutSuffix(base, ".gz"); ok {
		base, gz = b, true
	}
	format = s.format
	if format == FormatAuto {
		switch path.Ext(base) {
		case ".ndjson", ".jsonl", ".json":
			format = FormatNDJSON
		case ".csv":
			format = FormatCSV
		case ".parquet":
			format = FormatParquet
		default:
			return "", false, &problem{"the extension is not .ndjson, .jsonl, .json, .csv or .parquet (optionally .gz), so its format is unknown: rename it, or set format"}
		}
	}
	if format == FormatParquet && gz {
		return "", false, &problem{"gzip-compressed Parquet is not supported: Parquet compresses its own pages"}
	}
	return format, gz, nil
}

// openObject opens c and skips the c.row rows already read.
func (s *Source) openObject(c *current) (rowReader, error) {
	format, gz, err := s.formatOf(c.key)
	if err != nil {
		return nil, err
	}
	var rows rowReader
	if format == FormatParquet {
		rows, err = s.openParquet(c)
	} else {
		rows, err = s.openStream(c, format, gz)
	}
	if err != nil {
		return nil, err
	}
	if c.row > 0 {
		if err := rows.skip(c.row); err != nil {
			rows.close()
			if err == errEOF {
				return nil, &problem{fmt.Sprintf("has fewer rows than the %d already read", c.row)}
			}
			var te *transportError
			if errors.As(err, &te) {
				return nil, err
			}
			return nil, &problem{fmt.Sprintf("object skipped after row %d: %v", c.row, err)}
		}
	}
	return rows, nil
}

// openStream starts the download of an NDJSON or CSV object. A later download of an object
// already begun (a retry, a resume) must find the same ETag.
func (s *Source) openStream(c *current, format string, gz bool) (rowReader, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(c.key)}
	if c.row > 0 && c.etag != "" {
		in.IfMatch = aws.String(c.etag)
	}
	out, err := s.client.GetObject(s.life, in)
	if err != nil {
		if isPreconditionFailed(err) {
			return nil, &problem{fmt.Sprintf("changed (new ETag) after %d rows were read; the rest is not read", c.row)}
		}
		return nil, fmt.Errorf("get %s: %w", s.url(c.key), err)
	}
	if e := aws.ToString(out.ETag); e != "" {
		if c.row > 0 && c.etag != "" && e != c.etag {
			out.Body.Close()
			return nil, &problem{fmt.Sprintf("changed (ETag %s, was %s) after %d rows were read; the rest is not read", e, c.etag, c.row)}
		}
		c.etag = e
	}
	body := &transportReader{rc: out.Body}
	if format == FormatCSV {
		return newCSVRows(body, gz, s.url(c.key))
	}
	return newNDJSONRows(body, gz)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isNotFound(err error) bool {
	switch apiCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	}
	return false
}

func isPreconditionFailed(err error) bool { return apiCode(err) == "PreconditionFailed" }

// problem is an error with an object's content: reported as a message, never fatal.
type problem struct{ msg string }

func (p *problem) Error() string { return p.msg }
