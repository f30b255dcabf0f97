package opensearch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// TemplateName returns the name of the index template (and of the ISM policy) the writer
// installs: the index prefix or data stream name.
func (w *Writer) TemplateName() string { return w.cfg.Index }

// Mappings returns the explicit mappings of decision documents. Unknown top-level fields
// are refused (dynamic: strict), so a document that does not fit is a mapping error sent
// to dead letters rather than a silently guessed field; features.* are floats.
func Mappings() map[string]any {
	kw := map[string]any{"type": "keyword"}
	return map[string]any{
		"dynamic": "strict",
		"dynamic_templates": []any{map[string]any{
			"features_as_float": map[string]any{
				"path_match": "features.*", "mapping": map[string]any{"type": "float"},
			},
		}},
		"properties": map[string]any{
			"id":           kw,
			"ts":           map[string]any{"type": "date", "format": "strict_date_optional_time||epoch_millis"},
			"card_id":      kw,
			"account_id":   kw,
			"merchant_id":  kw,
			"customer_id":  kw,
			"terminal_id":  kw,
			"amount_minor": map[string]any{"type": "long"},
			"amount":       map[string]any{"type": "scaled_float", "scaling_factor": 10000},
			"currency":     kw,
			"channel":      kw,
			"mcc":          kw,
			"country":      kw,
			"location":     map[string]any{"type": "geo_point"},
			"device_id":    kw,
			"ip":           map[string]any{"type": "ip", "ignore_malformed": true},
			"decision":     kw,
			"score":        map[string]any{"type": "float"},
			"reasons":      kw,
			"ledger":       kw,
			"model":        kw,
			"rules":        kw,
			"late":         map[string]any{"type": "boolean"},
			"features":     map[string]any{"type": "object", "dynamic": true},
		},
	}
}

// Template returns the body of PUT _index_template/<name>.
func (w *Writer) Template() map[string]any {
	t := map[string]any{
		"priority": 200,
		"template": map[string]any{
			"settings": map[string]any{"index.refresh_interval": "5s"},
			"mappings": Mappings(),
		},
		"_meta": map[string]any{"managed_by": "fraudpipe", "version": 1},
	}
	if w.cfg.DataStream {
		t["index_patterns"] = []string{w.cfg.Index}
		t["data_stream"] = map[string]any{"timestamp_field": map[string]any{"name": "ts"}}
	} else {
		t["index_patterns"] = []string{w.cfg.Index + "-*"}
	}
	return t
}

// Policy returns the body of PUT _plugins/_ism/policies/<name>: delete indices older than
// the retention; data stream backing indices roll over daily first.
func (w *Writer) Policy() map[string]any {
	age := opensearchDuration(w.cfg.Retention)
	pattern := w.cfg.Index + "-*"
	var hot []any
	if w.cfg.DataStream {
		pattern = ".ds-" + w.cfg.Index + "-*"
		hot = append(hot, map[string]any{"rollover": map[string]any{"min_index_age": "1d"}})
	}
	if hot == nil {
		hot = []any{}
	}
	return map[string]any{"policy": map[string]any{
		"description":   "fraudpipe: delete decision indices after " + age,
		"default_state": "hot",
		"states": []any{
			map[string]any{
				"name": "hot", "actions": hot,
				"transitions": []any{map[string]any{"state_name": "delete", "conditions": map[string]any{"min_index_age": age}}},
			},
			map[string]any{"name": "delete", "actions": []any{map[string]any{"delete": map[string]any{}}}, "transitions": []any{}},
		},
		"ism_template": []any{map[string]any{"index_patterns": []string{pattern}, "priority": 100}},
	}}
}

// opensearchDuration writes d in OpenSearch's time units: 90d, 36h, 90s.
func opensearchDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// install puts the index template and the ISM policy. Both are idempotent: the template is
// overwritten with the same body; an existing policy is updated in place, guarded by its
// sequence number, so two processes starting together cannot clobber each other.
func (w *Writer) install(ctx context.Context) error {
	body, _ := json.Marshal(w.Template())
	status, resp, err := w.do(ctx, http.MethodPut, "/_index_template/"+w.TemplateName(), body)
	if err != nil {
		return fmt.Errorf("install index template: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("install index template %s: HTTP %d: %s", w.TemplateName(), status, errorText(resp))
	}
	if w.cfg.Retention <= 0 {
		return nil
	}
	path := "/_plugins/_ism/policies/" + w.TemplateName()
	status, resp, err = w.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return fmt.Errorf("read ISM policy: %w", err)
	}
	put := path
	switch status {
	case http.StatusOK:
		var cur struct {
			SeqNo       *int64 `json:"_seq_no"`
			PrimaryTerm *int64 `json:"_primary_term"`
		}
		if err := json.Unmarshal(resp, &cur); err != nil || cur.SeqNo == nil || cur.PrimaryTerm == nil {
			return fmt.Errorf("read ISM policy %s: no _seq_no and _primary_term in %s", w.TemplateName(), errorText(resp))
		}
		put += "?if_seq_no=" + strconv.FormatInt(*cur.SeqNo, 10) + "&if_primary_term=" + strconv.FormatInt(*cur.PrimaryTerm, 10)
	case http.StatusNotFound:
	default:
		return fmt.Errorf("read ISM policy %s: HTTP %d: %s", w.TemplateName(), status, errorText(resp))
	}
	body, _ = json.Marshal(w.Policy())
	status, resp, err = w.do(ctx, http.MethodPut, put, body)
	if err != nil {
		return fmt.Errorf("install ISM policy: %w", err)
	}
	switch status {
	case http.StatusOK, http.StatusCreated:
		return nil
	case http.StatusConflict:
		// Another process installed or updated it between our read and write: it is there.
		return nil
	}
	return fmt.Errorf("install ISM policy %s: HTTP %d: %s", w.TemplateName(), status, errorText(resp))
}
