package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// maxAnswer bounds the answer read from a model server.
const maxAnswer = 64 << 10

// HTTPOptions configures an HTTP JSON model server.
type HTTPOptions struct {
	// URL receives a POST per transaction with the JSON body
	// {"id":"tx-1","features":{"amount":12.5,"card_count_1d":3,...}} (a missing value is
	// null) and answers 2xx with {"score":0.87}.
	URL string
	// Headers are added to every request (an API key header, a tenant id).
	Headers map[string]string
	// BearerToken, when set, is sent as "Authorization: Bearer <token>".
	BearerToken string
	// Client replaces the default client (a keep-alive pool sized for many partitions).
	// The scorer's timeout applies through the request's context either way.
	Client *http.Client
}

// HTTP calls a model server that speaks JSON over HTTP.
type HTTP struct {
	url     string
	headers http.Header
	client  *http.Client
}

// NewHTTP checks the options and returns the caller.
func NewHTTP(o HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("remote scorer: url %q is not an http:// or https:// URL", o.URL)
	}
	h := make(http.Header)
	for k, v := range o.Headers {
		h.Set(k, v)
	}
	if o.BearerToken != "" {
		h.Set("Authorization", "Bearer "+o.BearerToken)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	c := o.Client
	if c == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Every partition may have a call in flight: keep that many connections alive
		// rather than opening one per call.
		t.MaxIdleConnsPerHost = 256
		t.MaxIdleConns = 256
		c = &http.Client{Transport: t}
	}
	return &HTTP{url: o.URL, headers: h, client: c}, nil
}

// Call posts the transaction's features and reads the score.
func (h *HTTP) Call(ctx context.Context, req *Request) (float64, error) {
	// A new buffer each call: the transport may still read a body after Do returns (when
	// the server answered before reading it all), so a pooled one could be overwritten.
	body := appendJSONRequest(make([]byte, 0, 64+32*len(req.Names)), req)
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	r.Header = h.headers.Clone()
	resp, err := h.client.Do(r)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("%w: %s: %s", ErrStatus, resp.Status, snippet(answer))
	}
	return parseScore(answer)
}

// appendJSONRequest appends {"id":...,"features":{name:value,...}}.
func appendJSONRequest(dst []byte, req *Request) []byte {
	dst = append(dst, `{"id":`...)
	dst = pipeline.AppendJSONString(dst, req.ID)
	dst = append(dst, `,"features":{`...)
	for i, n := range req.Names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = pipeline.AppendJSONString(dst, n)
		dst = append(dst, ':')
		dst = pipeline.AppendJSONFloat(dst, req.Values[i])
	}
	return append(dst, "}}"...)
}

// appendCSVRequest appends the values as one CSV row, the format of SageMaker's built-in
// XGBoost container: no header, no id, an empty field for a missing value.
func appendCSVRequest(dst []byte, req *Request) []byte {
	for i, v := range req.Values {
		if i > 0 {
			dst = append(dst, ',')
		}
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
		}
	}
	return dst
}

// parseScore reads a score from a model server's answer: {"score":p} (the HTTP JSON
// contract), {"predictions":[{"score":p}]} or {"predictions":[p]} (SageMaker JSON
// containers), [p], or a bare number, the first of a CSV answer (the XGBoost container's
// text/csv).
func parseScore(body []byte) (float64, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: empty answer", ErrInvalid)
	}
	var p float64
	switch b[0] {
	case '{':
		var a struct {
			Score       *float64          `json:"score"`
			Predictions []json.RawMessage `json:"predictions"`
		}
		if err := json.Unmarshal(b, &a); err != nil {
			return 0, fmt.Errorf("%w: %v: %s", ErrInvalid, err, snippet(b))
		}
		switch {
		case a.Score != nil:
			p = *a.Score
		case len(a.Predictions) > 0:
			return parseScore(a.Predictions[0])
		default:
			return 0, fmt.Errorf("%w: no score field: %s", ErrInvalid, snippet(b))
		}
	case '[':
		var a []json.RawMessage
		if err := json.Unmarshal(b, &a); err != nil || len(a) == 0 {
			return 0, fmt.Errorf("%w: not a list of scores: %s", ErrInvalid, snippet(b))
		}
		return parseScore(a[0])
	default:
		first := string(b)
		if i := strings.IndexAny(first, ",\n"); i >= 0 {
			first = first[:i]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(first), 64)
		if err != nil {
			return 0, fmt.Errorf("%w: not a number: %s", ErrInvalid, snippet(b))
		}
		p = v
	}
	if !(p >= 0 && p <= 1) {
		return 0, fmt.Errorf("%w: score %v is not a probability from 0 to 1", ErrInvalid, p)
	}
	return p, nil
}

// snippet returns the start of an answer for an error message.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}

var _ Caller = (*HTTP)(nil)
