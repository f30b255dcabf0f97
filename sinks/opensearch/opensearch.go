// Package opensearch indexes decisions into OpenSearch for analysts, through the _bulk API of
// github.com/opensearch-project/opensearch-go/v4. It is a sinks.Writer: the sinks framework
// batches, retries and dead-letters around it.
//
// Each decision is one document whose id is the transaction id, so a redelivery overwrites
// (daily indices) or is refused as a conflict that counts as done (data streams): indexing
// is idempotent. Per-item results are classified: 429 and 5xx are retried; mapping and
// validation errors (other 4xx) go to dead letters; a 413 for the whole request splits the
// batch in half. Nothing is reported written that the cluster did not confirm item by item.
//
// Before the first write it installs an index template with explicit mappings and, when a
// retention is set, an ISM policy that deletes old indices; both idempotently.
package opensearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	opensearchgo "github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/signer"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/sinks"
)

// Config configures a Writer.
type Config struct {
	URLs        []string // cluster nodes; default http://localhost:9200
	Username    string
	Password    string
	TLSInsecure bool
	// Index is the index prefix (daily indices <Index>-2026.11.25 by event time, UTC) or,
	// with DataStream, the data stream's name. Default fraudpipe-decisions.
	Index      string
	DataStream bool
	// InstallTemplate installs the index template and the ISM policy before the first write.
	InstallTemplate bool
	// Retention is the age at which the ISM policy deletes an index; 0 installs no policy.
	Retention time.Duration
	// Features are the feature names, indexed under features.<name>; nil for none.
	Features []string
	// Transport replaces the HTTP transport (tests); nil uses the default.
	Transport http.RoundTripper
	// Signer signs every request, in place of basic auth: AWS SigV4 for Amazon OpenSearch
	// Service (github.com/opensearch-project/opensearch-go/v4/signer/awsv2). nil for none.
	Signer signer.Signer
}

// Writer indexes batches of decisions with _bulk. It is used by one goroutine at a time
// (the sinks framework's).
type Writer struct {
	cfg    Config
	client *opensearchgo.Client

	mu      sync.Mutex
	ready   bool // template and policy installed
	body    bytes.Buffer
	scratch []byte
	dayMS   int64 // start of the day dayName is for, Unix ms
	dayName string
}

// New returns a Writer for the cluster cfg names. It does not connect: the first Write
// does, installing the template first when asked.
func New(cfg Config) (*Writer, error) {
	if len(cfg.URLs) == 0 {
		cfg.URLs = []string{"http://localhost:9200"}
	}
	if cfg.Index == "" {
		cfg.Index = "fraudpipe-decisions"
	}
	if cfg.Index != strings.ToLower(cfg.Index) || strings.ContainsAny(cfg.Index, `\/*?"<>| ,#:`) {
		return nil, fmt.Errorf("opensearch: index %q: use lower case letters, digits, - and _", cfg.Index)
	}
	for _, u := range cfg.URLs {
		if p, err := url.Parse(u); err != nil || p.Host == "" || (p.Scheme != "http" && p.Scheme != "https") {
			return nil, fmt.Errorf("opensearch: url %q: want http(s)://host:port", u)
		}
	}
	noDiscovery := false
	ocfg := opensearchgo.Config{
		Addresses:             cfg.URLs,
		Username:              cfg.Username,
		Password:              cfg.Password,
		InsecureSkipVerify:    cfg.TLSInsecure,
		Transport:             cfg.Transport,
		Signer:                cfg.Signer,
		DisableRetry:          true, // the sinks framework retries, per item, with backoff
		DiscoverNodesOnStart:  &noDiscovery,
		HealthCheckMaxRetries: -1,
	}
	c, err := opensearchgo.NewClient(ocfg)
	if err != nil {
		return nil, fmt.Errorf("opensearch: %w", err)
	}
	return &Writer{cfg: cfg, client: c}, nil
}

// Close releases the client's connections.
func (w *Writer) Close(context.Context) error { return w.client.Close() }

// Write indexes batch with one _bulk request (more when the cluster answers 413), and
// returns one result per decision: nil when the cluster confirmed it, a *sinks.ItemError
// otherwise.
func (w *Writer) Write(ctx context.Context, batch []*pipeline.Event) ([]error, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ready {
		if w.cfg.InstallTemplate {
			if err := w.install(ctx); err != nil {
				return nil, err
			}
		}
		w.ready = true
	}
	res := make([]error, len(batch))
	if err := w.bulk(ctx, batch, res); err != nil {
		return nil, err
	}
	return res, nil
}

// bulk sends batch and fills res; an error means no item of batch is known to be indexed.
func (w *Writer) bulk(ctx context.Context, batch []*pipeline.Event, res []error) error {
	w.body.Reset()
	for _, ev := range batch {
		w.scratch = w.appendAction(w.scratch[:0], ev)
		w.scratch = append(w.scratch, '\n')
		w.scratch = AppendDocument(w.scratch, ev, w.cfg.Features)
		w.scratch = append(w.scratch, '\n')
		w.body.Write(w.scratch)
	}
	status, body, err := w.do(ctx, http.MethodPost, "/_bulk", w.body.Bytes())
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusRequestEntityTooLarge:
		if len(batch) == 1 {
			res[0] = sinks.Permanent("request_entity_too_large: document of %d bytes refused (http.max_content_length)", w.body.Len())
			return nil
		}
		half := len(batch) / 2
		for _, part := range [][2]int{{0, half}, {half, len(batch)}} {
			if err := w.bulk(ctx, batch[part[0]:part[1]], res[part[0]:part[1]]); err != nil {
				for i := part[0]; i < part[1]; i++ {
					res[i] = sinks.Retryable("%v", err)
				}
			}
		}
		return nil
	case status < 200 || status > 299:
		return fmt.Errorf("opensearch _bulk: HTTP %d: %s", status, errorText(body))
	}
	return w.classify(body, res)
}

// bulkResponse is the part of a _bulk response that says what happened to each item.
type bulkResponse struct {
	Errors bool        `json:"errors"`
	Items  []bulkEntry `json:"items"`
}

// bulkEntry is one item of a _bulk response: an object with one key, the action.
type bulkEntry struct {
	Index  *bulkItem `json:"index"`
	Create *bulkItem `json:"create"`
	Update *bulkItem `json:"update"`
	Delete *bulkItem `json:"delete"`
}

type bulkItem struct {
	Status int `json:"status"`
	Error  *struct {
		Type     string `json:"type"`
		Reason   string `json:"reason"`
		CausedBy *struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"caused_by"`
	} `json:"error"`
}

// classify reads the per-item results of a 2xx _bulk response into res.
func (w *Writer) classify(body []byte, res []error) error {
	var r bulkResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("opensearch _bulk: unreadable response: %w", err)
	}
	if len(r.Items) != len(res) {
		return fmt.Errorf("opensearch _bulk: %d results for %d documents", len(r.Items), len(res))
	}
	for i, e := range r.Items {
		it := e.Index
		if w.cfg.DataStream {
			it = e.Create
		}
		if it == nil {
			return fmt.Errorf("opensearch _bulk: item %d is not the result of the action sent", i)
		}
		res[i] = w.itemResult(it)
	}
	return nil
}

func (w *Writer) itemResult(it *bulkItem) error {
	s := it.Status
	switch {
	case s >= 200 && s <= 299:
		return nil
	case s == http.StatusConflict && w.cfg.DataStream:
		return nil // create of an id already indexed: a redelivery, already done
	}
	reason := "HTTP " + strconv.Itoa(s)
	if e := it.Error; e != nil {
		reason = e.Type + ": " + e.Reason
		if e.CausedBy != nil && e.CausedBy.Reason != "" {
			reason += " (" + e.CausedBy.Type + ": " + e.CausedBy.Reason + ")"
		}
	}
	if s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s >= 500 || s == 0 {
		return sinks.Retryable("%s", reason)
	}
	return sinks.Permanent("%s", reason)
}

// appendAction appends the bulk action line of ev: index into its day's index, or create
// in the data stream, with the transaction id as document id.
func (w *Writer) appendAction(dst []byte, ev *pipeline.Event) []byte {
	if w.cfg.DataStream {
		dst = append(dst, `{"create":{"_index":`...)
		dst = pipeline.AppendJSONString(dst, w.cfg.Index)
	} else {
		dst = append(dst, `{"index":{"_index":`...)
		dst = pipeline.AppendJSONString(dst, w.IndexFor(ev.Tx.TS))
	}
	dst = append(dst, `,"_id":`...)
	dst = pipeline.AppendJSONString(dst, ev.Tx.ID)
	return append(dst, "}}"...)
}

const dayMS = 24 * 60 * 60 * 1000

// IndexFor returns the daily index of an event time in Unix milliseconds:
// fraudpipe-decisions-2026.11.25 (UTC).
func (w *Writer) IndexFor(tsMS int64) string {
	start := tsMS - ((tsMS%dayMS)+dayMS)%dayMS
	if w.dayName == "" || start != w.dayMS {
		w.dayMS = start
		w.dayName = w.cfg.Index + "-" + time.UnixMilli(start).UTC().Format("2006.01.02")
	}
	return w.dayName
}

// do sends one request through the client and returns the status and body; an error means
// no response (the network, the context).
func (w *Writer) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header = http.Header{"Content-Type": {"application/x-ndjson"}}
		if !strings.HasPrefix(path, "/_bulk") {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	resp, err := w.client.Stream(req)
	if resp == nil {
		if err == nil {
			err = errors.New("no response")
		}
		return 0, nil, fmt.Errorf("opensearch %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	if rerr != nil {
		return 0, nil, fmt.Errorf("opensearch %s %s: reading the response: %w", method, path, rerr)
	}
	return resp.StatusCode, b, nil
}

// errorText shortens an error response body for messages.
func errorText(body []byte) string {
	var e struct {
		Error struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Type != "" {
		return e.Error.Type + ": " + e.Error.Reason
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return strings.TrimSpace(string(body))
}
