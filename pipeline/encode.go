package pipeline

import (
	"encoding/base64"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendDecisionJSON appends the decision of a decided event as one JSON object of
// CONTRACT.md, fields in a fixed order, so that the same decisions give the same bytes.
// Features are written when names is non-nil and the event carries them.
func AppendDecisionJSON(dst []byte, ev *Event, names []string) []byte {
	d := &ev.Decision
	dst = append(dst, `{"id":`...)
	dst = AppendJSONString(dst, ev.Tx.ID)
	dst = append(dst, `,"ts":`...)
	dst = AppendJSONString(dst, ev.Tx.TSText)
	dst = AppendOutcomeJSON(dst, d)
	dst = append(dst, `,"ledger":"`...)
	dst = append(dst, d.Ledger.String()...)
	dst = append(dst, '"')
	if d.Model != "" {
		dst = append(dst, `,"model":`...)
		dst = AppendJSONString(dst, d.Model)
	}
	if d.Rules != "" {
		dst = append(dst, `,"rules":`...)
		dst = AppendJSONString(dst, d.Rules)
	}
	if d.ShadowModel != "" {
		dst = append(dst, `,"shadow_model":`...)
		dst = AppendJSONString(dst, d.ShadowModel)
		if d.HasShadowScore {
			dst = append(dst, `,"shadow_score":`...)
			dst = AppendJSONFloat(dst, d.ShadowScore)
		}
	}
	if names != nil && ev.Features != nil {
		dst = append(dst, `,"features":{`...)
		for i, n := range names {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, n)
			dst = append(dst, ':')
			dst = AppendJSONFloat(dst, ev.Features[i])
		}
		dst = append(dst, '}')
	}
	if ev.Late {
		dst = append(dst, `,"late":true`...)
	}
	return append(dst, '}')
}

// AppendOutcomeJSON appends the fields every decision document shares, each preceded by a
// comma: "decision", "score" when a model ran, and "reasons", most important first.
func AppendOutcomeJSON(dst []byte, d *Decision) []byte {
	dst = append(dst, `,"decision":"`...)
	dst = append(dst, d.Outcome.String()...)
	dst = append(dst, '"')
	if d.HasScore {
		dst = append(dst, `,"score":`...)
		dst = AppendJSONFloat(dst, d.Score)
	}
	dst = append(dst, `,"reasons":[`...)
	for i, r := range d.Reasons {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, r)
	}
	return append(dst, ']')
}

// AppendDeadLetterJSON appends a refused event as {"raw":…,"reason":…,"source":…,"offset":…}.
// Raw bytes that are not valid UTF-8 are written base64-encoded as raw_base64 instead, so
// nothing is lost; a line cut at the size limit is marked "truncated":true.
func AppendDeadLetterJSON(dst []byte, ev *Event) []byte {
	raw := ev.Raw
	truncated := false
	if len(raw) > MaxLineBytes {
		raw, truncated = raw[:MaxLineBytes], true
	}
	if utf8.Valid(raw) {
		dst = append(dst, `{"raw":`...)
		dst = appendJSONBytes(dst, raw)
	} else {
		dst = append(dst, `{"raw_base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, raw)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"reason":`...)
	dst = AppendJSONString(dst, ev.Err.Error())
	dst = append(dst, `,"source":`...)
	dst = AppendJSONString(dst, ev.Source)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, ev.Pos, 10)
	if truncated {
		dst = append(dst, `,"truncated":true`...)
	}
	return append(dst, '}')
}

// AppendJSONFloat appends f in the shortest form that reads back exactly; NaN and
// infinities, which JSON cannot carry, are written as null.
func AppendJSONFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x7f {
			continue
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				start = i + 1
			} else if r == '\u2028' || r == '\u2029' {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\u202`...)
				dst = append(dst, hexDigits[r&0xf])
				start = i + size
			}
			i += size - 1
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendJSONBytes(dst []byte, b []byte) []byte {
	return AppendJSONString(dst, string(b))
}
