// Package osdouble is an HTTP double of the OpenSearch APIs the opensearch sink uses, as
// documented: _bulk (NDJSON action and source lines; a response with errors and per-item
// status and error), _index_template and _plugins/_ism/policies. It applies a strict
// mapping to documents, keeps what was indexed by index and _id, and can inject faults:
// per-item 429s, mapping errors, 413s, 503 storms, a node that is down, and whole-request
// 429 or 500 answers for as long as a fault is switched on.
//
// The sink's tests and the fault-matrix test (package chaos) run it on loopback.
package osdouble

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// Options configure New.
type Options struct {
	// Mappings are the index template's mappings; documents with a top-level field not
	// among Mappings["properties"] are refused as OpenSearch's dynamic: strict would. Nil
	// accepts any field.
	Mappings map[string]any
	// Addr is the address to listen on, e.g. 127.0.0.1:9200; empty takes a free loopback
	// port.
	Addr string
}

// Policy is an ISM policy as stored by the double.
type Policy struct {
	SeqNo, PrimaryTerm int64
	Body               json.RawMessage
}

// Double is a running OpenSearch double. Its exported fields are the injections and the
// counters; change or read them while the server runs only inside Set.
type Double struct {
	// URL is the base URL of the double, e.g. http://127.0.0.1:41234.
	URL string

	srv     *httptest.Server
	allowed map[string]bool

	mu sync.Mutex
	// Indices holds index -> _id -> source of every document indexed.
	Indices map[string]map[string]json.RawMessage
	// Order lists the ids in the order they were indexed, redeliveries included.
	Order     []string
	Templates map[string]json.RawMessage
	Policies  map[string]*Policy

	// TooMany: id -> per-item 429s left for that document.
	TooMany map[string]int
	// BadDoc: id -> refuse with a mapping error, for good.
	BadDoc map[string]bool
	// MaxBody > 0: a _bulk request with a larger body gets 413.
	MaxBody int
	// Storm: the next Storm _bulk requests are answered 503.
	Storm int
	// Down: every request is answered 503.
	Down bool
	// Fault, when not 0, is the status (429 or 500) every request is answered with, whole.
	Fault int
	// DataCheck, when set, validates each document; a non-empty answer refuses it with a
	// mapping error carrying that text.
	DataCheck func(id string, src map[string]any) string

	// Requests counts the _bulk requests seen, BulkDocs the documents in them (retries
	// included), Got413 the requests refused as too large, Faulted the requests answered
	// with Fault.
	Requests, BulkDocs, Got413, Faulted int
}

// New starts a double on loopback. Close it when done.
func New(o Options) (*Double, error) {
	d := &Double{
		Indices: map[string]map[string]json.RawMessage{}, Templates: map[string]json.RawMessage{},
		Policies: map[string]*Policy{}, TooMany: map[string]int{}, BadDoc: map[string]bool{},
	}
	if props, ok := o.Mappings["properties"].(map[string]any); ok {
		d.allowed = map[string]bool{}
		for k := range props {
			d.allowed[k] = true
		}
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("OpenSearch double: listen on %s: %w", addr, err)
	}
	d.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: d}}
	d.srv.Start()
	d.URL = d.srv.URL
	return d, nil
}

// Close stops the server.
func (d *Double) Close() { d.srv.Close() }

// Set runs f with the double locked, to change injections or read counters.
func (d *Double) Set(f func(d *Double)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

// SetFault makes every request answered with status (429 or 500) until SetFault(0).
func (d *Double) SetFault(status int) { d.Set(func(d *Double) { d.Fault = status }) }

// Delivered returns the ids indexed, in order, redeliveries included.
func (d *Double) Delivered() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.Order...)
}

// Where returns the indices holding id.
func (d *Double) Where(id string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, idx := range d.Indices {
		if _, ok := idx[id]; ok {
			out = append(out, name)
		}
	}
	return out
}

// IDs returns, for every id indexed, the number of indices holding it (1 when each
// decision is indexed once, in the index of its day).
func (d *Double) IDs() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{}
	for _, idx := range d.Indices {
		for id := range idx {
			out[id]++
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func osError(status int, typ, reason string) map[string]any {
	e := map[string]any{"type": typ, "reason": reason}
	return map[string]any{"error": map[string]any{"root_cause": []any{e}, "type": typ, "reason": reason}, "status": status}
}

// ServeHTTP answers one request as OpenSearch would, with the injections in force.
func (d *Double) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.Fault {
	case 0:
	case http.StatusTooManyRequests:
		d.Faulted++
		writeJSON(w, d.Fault, osError(d.Fault, "es_rejected_execution_exception", "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=0, max_coordinating_and_primary_bytes=0]"))
		return
	default:
		d.Faulted++
		writeJSON(w, d.Fault, osError(d.Fault, "internal_server_error", "injected fault"))
		return
	}
	if d.Down || (d.Storm > 0 && r.URL.Path == "/_bulk") {
		if d.Storm > 0 {
			d.Storm--
		}
		writeJSON(w, http.StatusServiceUnavailable, osError(503, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered]"))
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		writeJSON(w, 200, map[string]any{"name": "double", "version": map[string]any{"distribution": "opensearch", "number": "2.19.0"}})
	case r.URL.Path == "/_bulk" && r.Method == http.MethodPost:
		d.bulk(w, r, body)
	case len(parts) == 2 && parts[0] == "_index_template":
		d.template(w, r, parts[1], body)
	case len(parts) == 4 && parts[0] == "_plugins" && parts[1] == "_ism" && parts[2] == "policies":
		d.policy(w, r, parts[3], body)
	default:
		writeJSON(w, 400, osError(400, "illegal_argument_exception", "no handler found for uri ["+r.URL.Path+"] and method ["+r.Method+"]"))
	}
}

func (d *Double) template(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	switch r.Method {
	case http.MethodPut:
		var t struct {
			IndexPatterns []string `json:"index_patterns"`
			Template      struct {
				Mappings map[string]any `json:"mappings"`
			} `json:"template"`
		}
		if err := json.Unmarshal(body, &t); err != nil || len(t.IndexPatterns) == 0 || t.Template.Mappings == nil {
			writeJSON(w, 400, osError(400, "x_content_parse_exception", fmt.Sprintf("bad template: %v", err)))
			return
		}
		d.Templates[name] = body
		writeJSON(w, 200, map[string]any{"acknowledged": true})
	case http.MethodGet:
		b, ok := d.Templates[name]
		if !ok {
			writeJSON(w, 404, osError(404, "resource_not_found_exception", "index template matching ["+name+"] not found"))
			return
		}
		writeJSON(w, 200, map[string]any{"index_templates": []any{map[string]any{"name": name, "index_template": json.RawMessage(b)}}})
	default:
		writeJSON(w, 405, osError(405, "method_not_allowed", r.Method))
	}
}

func (d *Double) policy(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	p := d.Policies[id]
	switch r.Method {
	case http.MethodGet:
		if p == nil {
			writeJSON(w, 404, osError(404, "status_exception", "Policy not found"))
			return
		}
		writeJSON(w, 200, map[string]any{"_id": id, "_version": p.SeqNo + 1, "_seq_no": p.SeqNo, "_primary_term": p.PrimaryTerm,
			"policy": json.RawMessage(p.Body)})
	case http.MethodPut:
		var v struct {
			Policy struct {
				DefaultState string `json:"default_state"`
				States       []any  `json:"states"`
			} `json:"policy"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.Policy.DefaultState == "" || len(v.Policy.States) == 0 {
			writeJSON(w, 400, osError(400, "illegal_argument_exception", "bad policy"))
			return
		}
		q := r.URL.Query()
		if p == nil {
			d.Policies[id] = &Policy{PrimaryTerm: 1, Body: body}
			writeJSON(w, 201, map[string]any{"_id": id, "_seq_no": 0, "_primary_term": 1})
			return
		}
		if q.Get("if_seq_no") != strconv.FormatInt(p.SeqNo, 10) || q.Get("if_primary_term") != strconv.FormatInt(p.PrimaryTerm, 10) {
			writeJSON(w, 409, osError(409, "version_conflict_engine_exception", "["+id+"]: version conflict"))
			return
		}
		p.SeqNo++
		p.Body = body
		writeJSON(w, 200, map[string]any{"_id": id, "_seq_no": p.SeqNo, "_primary_term": p.PrimaryTerm})
	default:
		writeJSON(w, 405, osError(405, "method_not_allowed", r.Method))
	}
}

func (d *Double) bulk(w http.ResponseWriter, r *http.Request, body []byte) {
	d.Requests++
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") && !strings.HasPrefix(ct, "application/json") {
		writeJSON(w, 406, osError(406, "content_type", "Content-Type header ["+ct+"] is not supported"))
		return
	}
	if d.MaxBody > 0 && len(body) > d.MaxBody {
		d.Got413++
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		writeJSON(w, 400, osError(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]"))
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<24)
	var items []any
	errorsSeen := false
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			writeJSON(w, 400, osError(400, "illegal_argument_exception", "Malformed action/metadata line"))
			return
		}
		if !sc.Scan() {
			writeJSON(w, 400, osError(400, "illegal_argument_exception", "source line missing"))
			return
		}
		src := append([]byte(nil), sc.Bytes()...)
		for op, meta := range action {
			d.BulkDocs++
			res := map[string]any{"_index": meta.Index, "_id": meta.ID}
			status, errObj := d.indexOne(op, meta.Index, meta.ID, src)
			res["status"] = status
			if errObj != nil {
				res["error"] = errObj
				errorsSeen = true
			} else {
				res["result"] = "created"
				if status == 200 {
					res["result"] = "updated"
				}
				res["_version"] = 1
				res["_shards"] = map[string]int{"total": 2, "successful": 1, "failed": 0}
			}
			items = append(items, map[string]any{op: res})
		}
	}
	writeJSON(w, 200, map[string]any{"took": 3, "errors": errorsSeen, "items": items})
}

func (d *Double) indexOne(op, index, id string, src []byte) (int, map[string]any) {
	if op != "index" && op != "create" {
		return 400, map[string]any{"type": "illegal_argument_exception", "reason": "unknown action " + op}
	}
	if index == "" || id == "" {
		return 400, map[string]any{"type": "action_request_validation_exception", "reason": "index is missing"}
	}
	if n := d.TooMany[id]; n > 0 {
		d.TooMany[id] = n - 1
		return 429, map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}
	}
	var doc map[string]any
	if err := json.Unmarshal(src, &doc); err != nil {
		return 400, map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse", "caused_by": map[string]any{"type": "json_parse_exception", "reason": err.Error()}}
	}
	if d.allowed != nil {
		for k := range doc {
			if !d.allowed[k] {
				return 400, map[string]any{"type": "strict_dynamic_mapping_exception", "reason": "mapping set to strict, dynamic introduction of [" + k + "] within [_doc] is not allowed"}
			}
		}
	}
	if _, ok := doc["score"]; ok {
		if _, isNum := doc["score"].(float64); !isNum {
			return 400, map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse field [score] of type [float]"}
		}
	}
	if d.BadDoc[id] {
		return 400, map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse field [amount] of type [scaled_float] in document with id '" + id + "'",
			"caused_by": map[string]any{"type": "illegal_argument_exception", "reason": "Value out of range"}}
	}
	if d.DataCheck != nil {
		if msg := d.DataCheck(id, doc); msg != "" {
			return 400, map[string]any{"type": "mapper_parsing_exception", "reason": msg}
		}
	}
	idx := d.Indices[index]
	if idx == nil {
		idx = map[string]json.RawMessage{}
		d.Indices[index] = idx
	}
	_, exists := idx[id]
	if exists && op == "create" {
		return 409, map[string]any{"type": "version_conflict_engine_exception", "reason": "[" + id + "]: version conflict, document already exists"}
	}
	idx[id] = src
	d.Order = append(d.Order, id)
	if exists {
		return 200, nil
	}
	return 201, nil
}
