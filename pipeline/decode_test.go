package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const goodTx = `{"id":"tx-000001","ts":"2026-11-25T10:15:30.123Z","card_id":"card-42","account_id":"acct-42","merchant_id":"m-991","amount":"123.45","currency":"EUR","channel":"ecom","country":"DE"}`

func TestDecodeTransaction(t *testing.T) {
	var tx Transaction
	if err := DecodeTransaction([]byte(goodTx), &tx); err != nil {
		t.Fatal(err)
	}
	if tx.ID != "tx-000001" || tx.CardID != "card-42" || tx.AccountID != "acct-42" || tx.MerchantID != "m-991" {
		t.Errorf("ids: %+v", tx)
	}
	if tx.Amount != 12345 || tx.Currency.Code != "EUR" || tx.Currency.Digits != 2 {
		t.Errorf("amount: %d %+v", tx.Amount, tx.Currency)
	}
	if tx.TS != 1795601730123 || tx.TSText != "2026-11-25T10:15:30.123Z" {
		t.Errorf("ts: %d %q", tx.TS, tx.TSText)
	}
	if tx.Channel != ChannelEcom || tx.Country != "DE" || tx.HasGeo || tx.Label.Present {
		t.Errorf("optional fields: %+v", tx)
	}
}

func TestDecodeTransactionFields(t *testing.T) {
	line := `{ "id" : "a\"b\u00e9\ud83d\ude00", "ts":"2026-01-02T03:04:05+02:00", "card_id":"c", "account_id":"a", "merchant_id":"m",
	"amount": 1000, "currency":"JPY", "lat": 52.5, "lon": -13.25, "mcc":"5411", "terminal_id":"t1", "customer_id":"cu",
	"device_id":"d", "ip":"10.0.0.1", "extra": {"deep": [1, 2, {"x": null}], "s": "\\"}, "label": {"fraud": true, "scenario": 2}, "channel": null}`
	var tx Transaction
	if err := DecodeTransaction([]byte(line), &tx); err != nil {
		t.Fatal(err)
	}
	if tx.ID != "a\"bé😀" {
		t.Errorf("escaped id: %q", tx.ID)
	}
	if tx.Amount != 1000 || tx.Currency.Digits != 0 {
		t.Errorf("JPY amount: %d", tx.Amount)
	}
	if tx.TS != 1767315845000 {
		t.Errorf("ts with offset: %d", tx.TS)
	}
	if !tx.HasGeo || tx.Lat != 52.5 || tx.Lon != -13.25 {
		t.Errorf("geo: %v %v %v", tx.HasGeo, tx.Lat, tx.Lon)
	}
	if !tx.Label.Present || !tx.Label.Fraud || tx.Label.Scenario != "2" {
		t.Errorf("label: %+v", tx.Label)
	}
	if tx.Channel != ChannelPOS || tx.MCC != "5411" || tx.TerminalID != "t1" || tx.CustomerID != "cu" || tx.DeviceID != "d" || tx.IP != "10.0.0.1" {
		t.Errorf("fields: %+v", tx)
	}
}

func TestDecodeTransactionErrors(t *testing.T) {
	base := map[string]any{"id": "t1", "ts": "2026-11-25T10:15:30Z", "card_id": "c", "account_id": "a", "merchant_id": "m", "amount": "1.00", "currency": "EUR"}
	with := func(k string, v any) string {
		m := map[string]any{}
		for kk, vv := range base {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name, line, code string
	}{
		{"empty", ``, ReasonInvalidJSON},
		{"not json", `hello`, ReasonInvalidJSON},
		{"array", `[1,2]`, ReasonInvalidJSON},
		{"truncated", goodTx[:40], ReasonInvalidJSON},
		{"trailing", goodTx + ` x`, ReasonInvalidJSON},
		{"two objects", goodTx + goodTx, ReasonInvalidJSON},
		{"bad escape", `{"id":"\q"}`, ReasonInvalidJSON},
		{"control char", "{\"id\":\"a\tb\"}", ReasonInvalidJSON},
		{"bad utf8", "{\"id\":\"\xff\"}", ReasonInvalidJSON},
		{"too deep", `{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, ReasonTooLong},
		{"missing id", with("id", nil), ReasonMissingField},
		{"empty id", with("id", ""), ReasonMissingField},
		{"missing card", with("card_id", nil), ReasonMissingField},
		{"missing amount", with("amount", nil), ReasonMissingField},
		{"missing currency", with("currency", nil), ReasonMissingField},
		{"null card", strings.Replace(with("card_id", "x"), `"x"`, `null`, 1), ReasonMissingField},
		{"zero amount", with("amount", "0.00"), ReasonBadAmount},
		{"negative amount", with("amount", "-1.00"), ReasonBadAmount},
		{"too precise", with("amount", "1.001"), ReasonBadAmount},
		{"exponent", strings.Replace(with("amount", "x"), `"x"`, `1e2`, 1), ReasonBadAmount},
		{"amount word", with("amount", "ten"), ReasonBadAmount},
		{"amount bool", strings.Replace(with("amount", "x"), `"x"`, `true`, 1), ReasonInvalidJSON},
		{"unknown currency", with("currency", "XYZ"), ReasonUnknownCurrency},
		{"lower currency", with("currency", "eur"), ReasonUnknownCurrency},
		{"bad ts", with("ts", "yesterday"), ReasonBadTime},
		{"ts without zone", with("ts", "2026-11-25T10:15:30"), ReasonBadTime},
		{"id too long", with("id", strings.Repeat("x", 129)), ReasonTooLong},
		{"id not string", strings.Replace(with("id", "x"), `"x"`, `12`, 1), ReasonBadField},
		{"bad channel", with("channel", "fax"), ReasonBadField},
		{"bad mcc", with("mcc", "54"), ReasonBadField},
		{"bad country", with("country", "Germany"), ReasonBadField},
		{"bad lat", strings.Replace(with("lat", "x"), `"x"`, `91`, 1), ReasonBadField},
		{"label not object", with("label", "fraud"), ReasonBadField},
		{"line too long", `{"id":"` + strings.Repeat("x", MaxLineBytes) + `"}`, ReasonTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tx Transaction
			err := DecodeTransaction([]byte(tt.line), &tx)
			de, ok := err.(*DecodeError)
			if !ok || de.Code != tt.code {
				t.Fatalf("DecodeTransaction(%.80q) = %v, want code %s", tt.line, err, tt.code)
			}
			if de.Detail == "" {
				t.Error("no detail")
			}
		})
	}
}

// nested returns a transaction whose extra field holds depth-1 nested arrays, so that with
// the event object the line nests depth levels.
func nested(depth int) string {
	return strings.TrimSuffix(goodTx, "}") + `,"extra":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
}

// withFields returns a transaction with extra fields added to make n fields in all.
func withFields(n int) string {
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(goodTx, "}"))
	for i := 9; i < n; i++ { // goodTx has 9 fields
		fmt.Fprintf(&b, `,"x%d":%d`, i, i)
	}
	return b.String() + "}"
}

// TestDecodeLimits checks each limit at its boundary: the last accepted size and the first
// refused one, and that the refusal says what was too large.
func TestDecodeLimits(t *testing.T) {
	elems := func(n int) string { return strings.TrimSuffix(strings.Repeat("0,", n), ",") }
	members := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k%d":0`, i)
		}
		return b.String()
	}
	extra := func(v string) string { return strings.TrimSuffix(goodTx, "}") + `,"extra":` + v + `}` }
	tests := []struct {
		name, line string
		detail     string // "" when accepted
	}{
		{"depth at limit", nested(MaxDepth), ""},
		{"depth over limit", nested(MaxDepth + 1), "nested deeper than 32 levels"},
		{"deep objects", extra(strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)), "nested deeper than 32 levels"},
		{"very deep", extra(strings.Repeat("[", MaxLineBytes-len(goodTx)-20)), "nested deeper than 32 levels"},
		{"fields at limit", withFields(MaxFields), ""},
		{"fields over limit", withFields(MaxFields + 1), "more than 256 fields in the object"},
		{"array at limit", extra("[" + elems(MaxFields) + "]"), ""},
		{"array over limit", extra("[" + elems(MaxFields+1) + "]"), "more than 256 elements in an array"},
		{"nested object over limit", extra("{" + members(MaxFields+1) + "}"), "more than 256 fields in an object"},
		{"label over limit", extra(`0,"label":{` + members(MaxFields+1) + "}"), "more than 256 fields in label"},
		{"key at limit", extra(`0,"` + strings.Repeat("k", MaxKeyLen) + `":1`), ""},
		{"key over limit", extra(`0,"` + strings.Repeat("k", MaxKeyLen+1) + `":1`), "field name longer than 128 bytes"},
		{"value at limit", extra(`"` + strings.Repeat("v", MaxValueLen) + `"`), ""},
		{"value over limit", extra(`"` + strings.Repeat("v", MaxValueLen+1) + `"`), "string longer than 4096 bytes"},
		{"escaped value over limit", extra(`"` + strings.Repeat(`\n`, MaxValueLen+1) + `"`), "string longer than 4096 bytes"},
		{"metadata value over limit", extra(`{"a":[{"b":"` + strings.Repeat("v", MaxValueLen+1) + `"}]}`), "string longer than 4096 bytes"},
		{"card at limit", strings.Replace(goodTx, `"card-42"`, `"`+strings.Repeat("c", MaxFieldLen)+`"`, 1), ""},
		{"card over limit", strings.Replace(goodTx, `"card-42"`, `"`+strings.Repeat("c", MaxFieldLen+1)+`"`, 1), "card_id longer than 256 bytes"},
		{"merchant over limit", strings.Replace(goodTx, `"m-991"`, `"`+strings.Repeat("m", MaxFieldLen+1)+`"`, 1), "merchant_id longer than 256 bytes"},
		{"amount string over limit", strings.Replace(goodTx, `"123.45"`, `"`+strings.Repeat("1", MaxFieldLen+1)+`"`, 1), "amount longer than 256 bytes"},
		{"amount number over limit", strings.Replace(goodTx, `"123.45"`, strings.Repeat("1", MaxFieldLen+1), 1), "amount longer than 256 bytes"},
		{"scenario over limit", extra(`0,"label":{"scenario":` + strings.Repeat("7", MaxFieldLen+1) + "}"), "label.scenario longer than 256 bytes"},
		{"scenario string over limit", extra(`0,"label":{"scenario":"` + strings.Repeat("s", MaxFieldLen+1) + `"}`), "label.scenario longer than 256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.line) > MaxLineBytes {
				t.Fatalf("case is %d bytes, over the line limit: it would not test its own limit", len(tt.line))
			}
			var tx Transaction
			err := DecodeTransaction([]byte(tt.line), &tx)
			if tt.detail == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			de, ok := err.(*DecodeError)
			if !ok || de.Code != ReasonTooLong || !strings.Contains(de.Detail, tt.detail) {
				t.Fatalf("got %v, want too_long: ...%s...", err, tt.detail)
			}
		})
	}
}

func TestDecodeDuplicateFields(t *testing.T) {
	base := strings.TrimSuffix(goodTx, "}")
	for _, tt := range []struct{ extra, field string }{
		{`,"amount":"999999.00"`, "amount"},
		{`,"id":"tx-other"`, "id"},
		{`,"currency":null`, "currency"},
		{`,"lat":1,"lat":2`, "lat"},
		{`,"label":{"fraud":false,"fraud":true}`, "label.fraud"},
		{`,"label":{"scenario":1,"scenario":"2"}`, "label.scenario"},
		{`,"label":null,"label":{}`, "label"},
	} {
		var tx Transaction
		err := DecodeTransaction([]byte(base+tt.extra+"}"), &tx)
		de, ok := err.(*DecodeError)
		if !ok || de.Code != ReasonBadField || !strings.HasPrefix(de.Detail, tt.field+" appears more than once") {
			t.Errorf("%s: got %v, want bad_field: %s appears more than once", tt.extra, err, tt.field)
		}
	}
	// Unknown fields are ignored, once or twice.
	var tx Transaction
	if err := DecodeTransaction([]byte(base+`,"note":"a","note":"b"}`), &tx); err != nil {
		t.Errorf("repeated unknown field: %v", err)
	}
	var fb Feedback
	err := DecodeFeedback([]byte(`{"kind":"feedback","id":"tx-1","ts":"2026-12-02T09:00:00Z","fraud":false,"fraud":true}`), &fb)
	if de, ok := err.(*DecodeError); !ok || de.Code != ReasonBadField {
		t.Errorf("feedback with fraud twice: %v", err)
	}
}

func TestDecodeByteOrderMark(t *testing.T) {
	var tx Transaction
	err := DecodeTransaction([]byte("\xef\xbb\xbf"+goodTx), &tx)
	de, ok := err.(*DecodeError)
	if !ok || de.Code != ReasonInvalidJSON || !strings.Contains(de.Detail, "byte order mark") {
		t.Fatalf("got %v, want invalid_json about the byte order mark", err)
	}
}

func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	lines := []string{
		goodTx,
		`{"id":"x\/y\n","ts":"2026-11-25T10:15:30Z","card_id":"c\u0041","account_id":"a","merchant_id":"m","amount":5,"currency":"USD"}`,
	}
	for _, l := range lines {
		var tx Transaction
		if err := DecodeTransaction([]byte(l), &tx); err != nil {
			t.Fatal(err)
		}
		var ref struct {
			ID     string `json:"id"`
			CardID string `json:"card_id"`
		}
		if err := json.Unmarshal([]byte(l), &ref); err != nil {
			t.Fatal(err)
		}
		if ref.ID != tx.ID || ref.CardID != tx.CardID {
			t.Errorf("got %q %q, encoding/json %q %q", tx.ID, tx.CardID, ref.ID, ref.CardID)
		}
	}
}

func TestDecodeFeedback(t *testing.T) {
	var fb Feedback
	if err := DecodeFeedback([]byte(`{"kind":"feedback","id":"tx-1","ts":"2026-12-02T09:00:00Z","fraud":true}`), &fb); err != nil {
		t.Fatal(err)
	}
	if fb.ID != "tx-1" || !fb.Fraud || fb.TS != 1796202000000 {
		t.Errorf("%+v", fb)
	}
	for _, bad := range []string{`{"kind":"feedback","id":"x","ts":"2026-12-02T09:00:00Z"}`, `{"kind":"other","id":"x","ts":"2026-12-02T09:00:00Z","fraud":false}`, `{`} {
		if err := DecodeFeedback([]byte(bad), &fb); err == nil {
			t.Errorf("DecodeFeedback(%s): no error", bad)
		}
	}
}

// FuzzDecodeTransaction checks that no input crashes the decoder, that whatever it accepts
// is valid JSON with the required fields, and that it agrees with encoding/json on them.
func FuzzDecodeTransaction(f *testing.F) {
	f.Add([]byte(goodTx))
	f.Add([]byte(`{"id":"a","ts":"2026-11-25T10:15:30+01:00","card_id":"c","account_id":"a","merchant_id":"m","amount":1.5,"currency":"EUR","label":{"fraud":false,"scenario":"0"}}`))
	f.Add([]byte(`{"id":"\ud800","x":[{}]}`))
	f.Add([]byte(strings.TrimSuffix(goodTx, "}") + `,"amount":"9.99","meta":{"a":[[[{"b":"c"}]]]}}`))
	f.Add([]byte("\xef\xbb\xbf" + goodTx + "\r"))
	f.Add([]byte(nested(MaxDepth)))
	f.Fuzz(func(t *testing.T, line []byte) {
		var tx Transaction
		err := DecodeTransaction(line, &tx)
		if err != nil {
			if _, ok := err.(*DecodeError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if !json.Valid(line) {
			t.Fatalf("accepted invalid JSON %q", line)
		}
		if tx.ID == "" || tx.CardID == "" || tx.Amount <= 0 || tx.Currency.Code == "" {
			t.Fatalf("accepted incomplete transaction %+v", tx)
		}
		var ref map[string]json.RawMessage
		if err := json.Unmarshal(line, &ref); err != nil {
			t.Fatalf("encoding/json refuses %q: %v", line, err)
		}
		var id string
		if err := json.Unmarshal(ref["id"], &id); err != nil || id != tx.ID {
			t.Fatalf("id %q, encoding/json %q (%v)", tx.ID, id, err)
		}
	})
}

func BenchmarkDecodeTransaction(b *testing.B) {
	line := []byte(`{"id":"tx-000000123","ts":"2018-04-01T07:19:05.000Z","card_id":"card-2954","account_id":"acct-2954","customer_id":"cust-2954","merchant_id":"m-3627","terminal_id":"term-3627","amount":"57.16","currency":"EUR","channel":"pos","mcc":"5411","country":"DE","lat":52.123,"lon":13.456,"label":{"fraud":false,"scenario":0}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	var tx Transaction
	for b.Loop() {
		if err := DecodeTransaction(line, &tx); err != nil {
			b.Fatal(err)
		}
	}
}
