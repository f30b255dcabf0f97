package opensearch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// double is an HTTP double of the OpenSearch APIs the writer uses, as documented: _bulk
// (NDJSON action and source lines; a response with errors and per-item status and error),
// _index_template and _plugins/_ism/policies. It applies the installed template's strict
// mapping to documents, and can inject per-item 429s, mapping errors, 413s and 5xx storms.
type double struct {
	srv *httptest.Server

	mu        sync.Mutex
	indices   map[string]map[string]json.RawMessage // index -> id -> source
	order     []string                              // ids in the order they were indexed, redeliveries included
	templates map[string]json.RawMessage
	policies  map[string]*policy
	// injections
	tooMany   map[string]int  // id -> per-item 429s left
	badDoc    map[string]bool // id -> mapping error
	maxBody   int             // > 0: a larger _bulk request gets 413
	storm     int             // next requests answered 503
	down      bool            // every request answered 503
	requests  int             // _bulk requests seen
	bulkDocs  int             // documents seen in _bulk requests, retries included
	got413    int
	dataCheck func(id string, src map[string]any) string // extra validation; "" accepts
}

type policy struct {
	seqNo, primaryTerm int64
	body               json.RawMessage
}

func newDouble(t testing.TB) *double {
	d := &double{
		indices: map[string]map[string]json.RawMessage{}, templates: map[string]json.RawMessage{},
		policies: map[string]*policy{}, tooMany: map[string]int{}, badDoc: map[string]bool{},
	}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
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

func (d *double) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down || (d.storm > 0 && r.URL.Path == "/_bulk") {
		if d.storm > 0 {
			d.storm--
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

func (d *double) template(w http.ResponseWriter, r *http.Request, name string, body []byte) {
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
		d.templates[name] = body
		writeJSON(w, 200, map[string]any{"acknowledged": true})
	case http.MethodGet:
		b, ok := d.templates[name]
		if !ok {
			writeJSON(w, 404, osError(404, "resource_not_found_exception", "index template matching ["+name+"] not found"))
			return
		}
		writeJSON(w, 200, map[string]any{"index_templates": []any{map[string]any{"name": name, "index_template": json.RawMessage(b)}}})
	default:
		writeJSON(w, 405, osError(405, "method_not_allowed", r.Method))
	}
}

func (d *double) policy(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	p := d.policies[id]
	switch r.Method {
	case http.MethodGet:
		if p == nil {
			writeJSON(w, 404, osError(404, "status_exception", "Policy not found"))
			return
		}
		writeJSON(w, 200, map[string]any{"_id": id, "_version": p.seqNo + 1, "_seq_no": p.seqNo, "_primary_term": p.primaryTerm,
			"policy": json.RawMessage(p.body)})
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
			d.policies[id] = &policy{primaryTerm: 1, body: body}
			writeJSON(w, 201, map[string]any{"_id": id, "_seq_no": 0, "_primary_term": 1})
			return
		}
		if q.Get("if_seq_no") != strconv.FormatInt(p.seqNo, 10) || q.Get("if_primary_term") != strconv.FormatInt(p.primaryTerm, 10) {
			writeJSON(w, 409, osError(409, "version_conflict_engine_exception", "["+id+"]: version conflict"))
			return
		}
		p.seqNo++
		p.body = body
		writeJSON(w, 200, map[string]any{"_id": id, "_seq_no": p.seqNo, "_primary_term": p.primaryTerm})
	default:
		writeJSON(w, 405, osError(405, "method_not_allowed", r.Method))
	}
}

// allowed are the top-level fields of the strict mapping (Mappings).
var allowed = func() map[string]bool {
	m := map[string]bool{}
	for k := range Mappings()["properties"].(map[string]any) {
		m[k] = true
	}
	return m
}()

func (d *double) bulk(w http.ResponseWriter, r *http.Request, body []byte) {
	d.requests++
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") && !strings.HasPrefix(ct, "application/json") {
		writeJSON(w, 406, osError(406, "content_type", "Content-Type header ["+ct+"] is not supported"))
		return
	}
	if d.maxBody > 0 && len(body) > d.maxBody {
		d.got413++
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
			d.bulkDocs++
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

func (d *double) indexOne(op, index, id string, src []byte) (int, map[string]any) {
	if op != "index" && op != "create" {
		return 400, map[string]any{"type": "illegal_argument_exception", "reason": "unknown action " + op}
	}
	if index == "" || id == "" {
		return 400, map[string]any{"type": "action_request_validation_exception", "reason": "index is missing"}
	}
	if n := d.tooMany[id]; n > 0 {
		d.tooMany[id] = n - 1
		return 429, map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}
	}
	var doc map[string]any
	if err := json.Unmarshal(src, &doc); err != nil {
		return 400, map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse", "caused_by": map[string]any{"type": "json_parse_exception", "reason": err.Error()}}
	}
	for k := range doc {
		if !allowed[k] {
			return 400, map[string]any{"type": "strict_dynamic_mapping_exception", "reason": "mapping set to strict, dynamic introduction of [" + k + "] within [_doc] is not allowed"}
		}
	}
	if _, ok := doc["score"]; ok {
		if _, isNum := doc["score"].(float64); !isNum {
			return 400, map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse field [score] of type [float]"}
		}
	}
	if d.badDoc[id] {
		return 400, map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse field [amount] of type [scaled_float] in document with id '" + id + "'",
			"caused_by": map[string]any{"type": "illegal_argument_exception", "reason": "Value out of range"}}
	}
	if d.dataCheck != nil {
		if msg := d.dataCheck(id, doc); msg != "" {
			return 400, map[string]any{"type": "mapper_parsing_exception", "reason": msg}
		}
	}
	idx := d.indices[index]
	if idx == nil {
		idx = map[string]json.RawMessage{}
		d.indices[index] = idx
	}
	_, exists := idx[id]
	if exists && op == "create" {
		return 409, map[string]any{"type": "version_conflict_engine_exception", "reason": "[" + id + "]: version conflict, document already exists"}
	}
	idx[id] = src
	d.order = append(d.order, id)
	if exists {
		return 200, nil
	}
	return 201, nil
}

// delivered returns the ids indexed, in order, redeliveries included.
func (d *double) delivered() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.order...)
}

// where returns the indices holding id.
func (d *double) where(id string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, idx := range d.indices {
		if _, ok := idx[id]; ok {
			out = append(out, name)
		}
	}
	return out
}

func (d *double) set(f func(d *double)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}
