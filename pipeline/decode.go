package pipeline

import (
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits on one input event. A line past them is a dead letter with reason too_long, never
// a crash, a stall or a large allocation: the decoder's work and memory are linear in the
// line's length and its recursion is bounded by MaxDepth.
const (
	MaxLineBytes = 64 << 10 // longest accepted input line
	MaxIDLen     = 128      // longest transaction id
	MaxFieldLen  = 256      // longest other field the pipeline reads (ids, ts, amount, label.scenario, ...)
	MaxKeyLen    = 128      // longest field name
	MaxValueLen  = 4 << 10  // longest string inside an ignored field (unknown fields, metadata)
	MaxFields    = 256      // most members of one object, or elements of one array
	MaxDepth     = 32       // deepest nesting of objects and arrays, the event object counting as 1
)

// Dead-letter reason codes. A dead letter's reason is "<code>: <detail>"; tools group by code.
const (
	ReasonInvalidJSON     = "invalid_json"
	ReasonMissingField    = "missing_field"
	ReasonBadField        = "bad_field"
	ReasonBadAmount       = "bad_amount"
	ReasonUnknownCurrency = "unknown_currency"
	ReasonBadTime         = "bad_ts"
	ReasonTooLong         = "too_long"
	ReasonDuplicateID     = "duplicate_id"
)

// DecodeError is why an input event was refused; its Error is the dead-letter reason.
type DecodeError struct {
	Code   string
	Detail string
}

func (e *DecodeError) Error() string { return e.Code + ": " + e.Detail }

// errIsFeedback is what DecodeTransaction returns for a line whose kind is "feedback";
// DecodeEvent then decodes it as feedback.
var errIsFeedback = &DecodeError{Code: ReasonBadField, Detail: `kind "feedback" is not a transaction`}

func decodeErr(code, detail string) *DecodeError { return &DecodeError{Code: code, Detail: detail} }

// field bits of the required fields, to report the first one missing.
const (
	fID = 1 << iota
	fTS
	fCard
	fAccount
	fMerchant
	fAmount
	fCurrency
	fRequired = fID | fTS | fCard | fAccount | fMerchant | fAmount | fCurrency
)

// bits of the fields an event may carry once.
const (
	kID uint32 = 1 << iota
	kTS
	kCard
	kAccount
	kMerchant
	kCurrency
	kAmount
	kCustomer
	kTerminal
	kDevice
	kIP
	kChannel
	kMCC
	kCountry
	kLat
	kLon
	kLabel
	kKind
	kFraud
)

var requiredNames = [...]string{"id", "ts", "card_id", "account_id", "merchant_id", "amount", "currency"}

// DecodeTransaction parses and validates one JSON transaction (CONTRACT.md). Field strings
// share the memory of one copy of line, so the caller may reuse line afterwards. It never
// goes through float64 for the amount. The error is a *DecodeError.
func DecodeTransaction(line []byte, tx *Transaction) error {
	*tx = Transaction{}
	if len(line) > MaxLineBytes {
		return decodeErr(ReasonTooLong, "line over "+strconv.Itoa(MaxLineBytes)+" bytes")
	}
	d := decoder{s: string(line)}
	var seen int
	var keys uint32
	var amountText string
	var amountIsNumber bool
	err := d.object(func(key string) error {
		switch key {
		case "id":
			if err := once(&keys, kID, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxIDLen)
			tx.ID = v
			seen |= nonEmpty(v, fID)
			return err
		case "ts":
			if err := once(&keys, kTS, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			tx.TSText = v
			seen |= nonEmpty(v, fTS)
			return err
		case "card_id":
			if err := once(&keys, kCard, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			tx.CardID = v
			seen |= nonEmpty(v, fCard)
			return err
		case "account_id":
			if err := once(&keys, kAccount, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			tx.AccountID = v
			seen |= nonEmpty(v, fAccount)
			return err
		case "merchant_id":
			if err := once(&keys, kMerchant, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			tx.MerchantID = v
			seen |= nonEmpty(v, fMerchant)
			return err
		case "currency":
			if err := once(&keys, kCurrency, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			if v != "" {
				tx.Currency.Code = v
				seen |= fCurrency
			}
			return err
		case "amount":
			if err := once(&keys, kAmount, key); err != nil {
				return err
			}
			d.ws()
			if d.peek() == '"' {
				v, err := d.stringField(key, MaxFieldLen)
				if err != nil {
					return err
				}
				amountText, amountIsNumber = v, false
			} else if d.peek() == 'n' {
				return d.literal("null")
			} else {
				v, err := d.number()
				if err != nil {
					return err
				}
				if len(v) > MaxFieldLen {
					return decodeErr(ReasonTooLong, "amount longer than "+strconv.Itoa(MaxFieldLen)+" bytes")
				}
				amountText, amountIsNumber = v, true
			}
			seen |= fAmount
			return nil
		case "customer_id":
			if err := once(&keys, kCustomer, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			tx.CustomerID = v
			return err
		case "terminal_id":
			if err := once(&keys, kTerminal, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			tx.TerminalID = v
			return err
		case "device_id":
			if err := once(&keys, kDevice, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			tx.DeviceID = v
			return err
		case "ip":
			if err := once(&keys, kIP, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			tx.IP = v
			return err
		case "channel":
			if err := once(&keys, kChannel, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			if err != nil || v == "" {
				return err
			}
			c, ok := ParseChannel(v)
			if !ok {
				return decodeErr(ReasonBadField, "channel "+strconv.Quote(v)+" is not one of pos, ecom, atm, transfer")
			}
			tx.Channel = c
			return nil
		case "mcc":
			if err := once(&keys, kMCC, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			if err != nil || v == "" {
				return err
			}
			if len(v) != 4 || !allDigits(v) {
				return decodeErr(ReasonBadField, "mcc "+strconv.Quote(v)+" is not a 4-digit code")
			}
			tx.MCC = v
			return nil
		case "country":
			if err := once(&keys, kCountry, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			if err != nil || v == "" {
				return err
			}
			if len(v) != 2 || v[0] < 'A' || v[0] > 'Z' || v[1] < 'A' || v[1] > 'Z' {
				return decodeErr(ReasonBadField, "country "+strconv.Quote(v)+" is not an ISO 3166-1 alpha-2 code")
			}
			tx.Country = v
			return nil
		case "lat", "lon":
			bit := kLat
			if key == "lon" {
				bit = kLon
			}
			if err := once(&keys, bit, key); err != nil {
				return err
			}
			f, present, err := d.floatField(key)
			if err != nil || !present {
				return err
			}
			if key == "lat" {
				if f < -90 || f > 90 {
					return decodeErr(ReasonBadField, "lat out of range [-90, 90]")
				}
				tx.Lat = f
				seen |= 1 << 20
			} else {
				if f < -180 || f > 180 {
					return decodeErr(ReasonBadField, "lon out of range [-180, 180]")
				}
				tx.Lon = f
				seen |= 1 << 21
			}
			return nil
		case "label":
			if err := once(&keys, kLabel, key); err != nil {
				return err
			}
			return d.label(&tx.Label)
		case "kind":
			if err := once(&keys, kKind, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			switch {
			case err != nil:
				return err
			case v == "feedback":
				return errIsFeedback
			case v != "transaction":
				return decodeErr(ReasonBadField, "kind "+strconv.Quote(v)+" is neither \"transaction\" nor \"feedback\"")
			}
			return nil
		default:
			return d.skip(1)
		}
	})
	if err != nil {
		return err
	}
	if seen&fRequired != fRequired {
		for i, n := range requiredNames {
			if seen&(1<<i) == 0 {
				return decodeErr(ReasonMissingField, n+" is required")
			}
		}
	}
	tx.HasGeo = seen&(3<<20) == 3<<20
	digits, ok := currencies[tx.Currency.Code]
	if !ok {
		return decodeErr(ReasonUnknownCurrency, strconv.Quote(tx.Currency.Code)+" is not an ISO 4217 currency code")
	}
	tx.Currency.Digits = digits
	amt, aerr := ParseAmount(amountText, digits)
	if aerr != nil {
		what := strconv.Quote(amountText)
		if amountIsNumber {
			what = amountText
		}
		switch aerr {
		case ErrAmountPrecision:
			return decodeErr(ReasonBadAmount, what+" has more fraction digits than "+tx.Currency.Code+" ("+strconv.Itoa(digits)+")")
		case ErrAmountRange:
			return decodeErr(ReasonBadAmount, what+" is out of range")
		default:
			return decodeErr(ReasonBadAmount, what+" is not a plain decimal number")
		}
	}
	if amt <= 0 {
		return decodeErr(ReasonBadAmount, "amount must be > 0, got "+amountText)
	}
	tx.Amount = amt
	ts, terr := ParseTime(tx.TSText)
	if terr != nil {
		return decodeErr(ReasonBadTime, strconv.Quote(tx.TSText)+" is not an RFC 3339 time with a zone")
	}
	tx.TS = ts
	return nil
}

// DecodeFeedback parses one feedback event: {"kind":"feedback","id":…,"ts":…,"fraud":bool}.
func DecodeFeedback(line []byte, fb *Feedback) error {
	*fb = Feedback{}
	if len(line) > MaxLineBytes {
		return decodeErr(ReasonTooLong, "line over "+strconv.Itoa(MaxLineBytes)+" bytes")
	}
	d := decoder{s: string(line)}
	var seen int
	var keys uint32
	err := d.object(func(key string) error {
		switch key {
		case "id":
			if err := once(&keys, kID, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxIDLen)
			fb.ID = v
			seen |= nonEmpty(v, 1)
			return err
		case "ts":
			if err := once(&keys, kTS, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			fb.TSText = v
			seen |= nonEmpty(v, 2)
			return err
		case "fraud":
			if err := once(&keys, kFraud, key); err != nil {
				return err
			}
			b, present, err := d.boolField(key)
			fb.Fraud = b
			if present {
				seen |= 4
			}
			return err
		case "kind":
			if err := once(&keys, kKind, key); err != nil {
				return err
			}
			v, err := d.stringField(key, MaxFieldLen)
			if err == nil && v != "feedback" {
				return decodeErr(ReasonBadField, "kind "+strconv.Quote(v)+" is not \"feedback\"")
			}
			return err
		default:
			return d.skip(1)
		}
	})
	if err != nil {
		return err
	}
	for i, n := range [...]string{"id", "ts", "fraud"} {
		if seen&(1<<i) == 0 {
			return decodeErr(ReasonMissingField, n+" is required")
		}
	}
	ts, terr := ParseTime(fb.TSText)
	if terr != nil {
		return decodeErr(ReasonBadTime, strconv.Quote(fb.TSText)+" is not an RFC 3339 time with a zone")
	}
	fb.TS = ts
	return nil
}

// DecodeEvent decodes one input line, a transaction or (with "kind":"feedback") a feedback
// event, into ev.Tx or ev.Feedback; a line that is neither gets ev.Err.
func DecodeEvent(ev *Event) {
	err := DecodeTransaction(ev.Raw, &ev.Tx)
	if err == nil {
		return
	}
	if err == errIsFeedback {
		ev.Tx = Transaction{}
		fb := new(Feedback)
		if err = DecodeFeedback(ev.Raw, fb); err == nil {
			ev.Feedback = fb
			return
		}
	}
	ev.Err = err.(*DecodeError)
}

// ParseTime parses an RFC 3339 time that carries a zone ("Z" or "±hh:mm") into Unix
// milliseconds. Fractions below a millisecond are truncated.
func ParseTime(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

func nonEmpty(v string, bit int) int {
	if v == "" {
		return 0
	}
	return bit
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// decoder is a small JSON scanner for flat event objects. Strings without escapes are
// substrings of s, so a decoded event costs one allocation for the whole line.
type decoder struct {
	s     string
	pos   int
	level int // objects and arrays around the value at pos
}

func (d *decoder) syntax(what string) error {
	return decodeErr(ReasonInvalidJSON, what+" at byte "+strconv.Itoa(d.pos))
}

// tooMany is the error of a container over MaxFields members.
func (d *decoder) tooMany(what string) error {
	return decodeErr(ReasonTooLong, "more than "+strconv.Itoa(MaxFields)+" "+what+" at byte "+strconv.Itoa(d.pos))
}

// key reads a field name, at most MaxKeyLen bytes.
func (d *decoder) key() (string, error) {
	k, err := d.str(MaxKeyLen)
	if err != nil {
		return "", keyErr(err)
	}
	return k, nil
}

func keyErr(err error) error {
	if de, ok := err.(*DecodeError); ok && de.Code == ReasonTooLong {
		de.Detail = "field name longer than " + strconv.Itoa(MaxKeyLen) + " bytes"
	}
	return err
}

// once records that the field of bit was read and refuses a second one: with duplicate
// keys, JSON parsers disagree on which value counts (encoding/json takes the last, others
// the first), and an event must mean the same thing to every stage and tool that reads it.
func once(keys *uint32, bit uint32, key string) error {
	if *keys&bit != 0 {
		return decodeErr(ReasonBadField, key+" appears more than once; send each field once")
	}
	*keys |= bit
	return nil
}

func (d *decoder) ws() {
	for d.pos < len(d.s) {
		switch d.s[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) peek() byte {
	if d.pos < len(d.s) {
		return d.s[d.pos]
	}
	return 0
}

// object parses a top-level object, calling field for each key with the decoder positioned
// at the value, and insists on nothing but white space after it.
func (d *decoder) object(field func(key string) error) error {
	d.ws()
	if d.peek() != '{' {
		if d.pos >= len(d.s) {
			return decodeErr(ReasonInvalidJSON, "empty line")
		}
		if len(d.s)-d.pos >= 3 && d.s[d.pos:d.pos+3] == "\xef\xbb\xbf" {
			return decodeErr(ReasonInvalidJSON, "line starts with a byte order mark (U+FEFF): write UTF-8 without a BOM")
		}
		return d.syntax("expected a JSON object")
	}
	d.pos++
	d.level = 1
	d.ws()
	if d.peek() == '}' {
		d.pos++
	} else {
		for n := 1; ; n++ {
			if n > MaxFields {
				return d.tooMany("fields in the object")
			}
			d.ws()
			if d.peek() != '"' {
				return d.syntax("expected a field name")
			}
			key, err := d.key()
			if err != nil {
				return err
			}
			d.ws()
			if d.peek() != ':' {
				return d.syntax("expected ':'")
			}
			d.pos++
			d.ws()
			if err := field(key); err != nil {
				return err
			}
			d.ws()
			c := d.peek()
			d.pos++
			if c == '}' {
				break
			}
			if c != ',' {
				d.pos--
				return d.syntax("expected ',' or '}'")
			}
		}
	}
	d.ws()
	if d.pos != len(d.s) {
		return d.syntax("unexpected data after the object")
	}
	return nil
}

// stringField reads a string or null value; null reads as "".
func (d *decoder) stringField(key string, max int) (string, error) {
	switch d.peek() {
	case '"':
		v, err := d.str(max)
		if err != nil {
			if de, ok := err.(*DecodeError); ok && de.Code == ReasonTooLong {
				de.Detail = key + " longer than " + strconv.Itoa(max) + " bytes"
			}
		}
		return v, err
	case 'n':
		return "", d.literal("null")
	}
	if err := d.skip(d.level); err != nil {
		return "", err
	}
	return "", decodeErr(ReasonBadField, key+" must be a string")
}

func (d *decoder) floatField(key string) (float64, bool, error) {
	switch c := d.peek(); {
	case c == 'n':
		return 0, false, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		t, err := d.number()
		if err != nil {
			return 0, false, err
		}
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return 0, false, decodeErr(ReasonBadField, key+" "+t+" is out of range")
		}
		return f, true, nil
	}
	if err := d.skip(d.level); err != nil {
		return 0, false, err
	}
	return 0, false, decodeErr(ReasonBadField, key+" must be a number")
}

func (d *decoder) boolField(key string) (bool, bool, error) {
	switch d.peek() {
	case 't':
		return true, true, d.literal("true")
	case 'f':
		return false, true, d.literal("false")
	case 'n':
		return false, false, d.literal("null")
	}
	if err := d.skip(d.level); err != nil {
		return false, false, err
	}
	return false, false, decodeErr(ReasonBadField, key+" must be true or false")
}

func (d *decoder) label(l *Label) error {
	switch d.peek() {
	case 'n':
		return d.literal("null")
	case '{':
	default:
		if err := d.skip(d.level); err != nil {
			return err
		}
		return decodeErr(ReasonBadField, "label must be an object")
	}
	d.pos++
	l.Present = true
	d.level++
	err := d.labelFields(l)
	d.level--
	return err
}

// labelFields reads the members of a label object after its '{'.
func (d *decoder) labelFields(l *Label) error {
	d.ws()
	if d.peek() == '}' {
		d.pos++
		return nil
	}
	var keys uint32 // kFraud: fraud read, kLabel: scenario read
	for n := 1; ; n++ {
		if n > MaxFields {
			return d.tooMany("fields in label")
		}
		d.ws()
		if d.peek() != '"' {
			return d.syntax("expected a field name")
		}
		key, err := d.key()
		if err != nil {
			return err
		}
		d.ws()
		if d.peek() != ':' {
			return d.syntax("expected ':'")
		}
		d.pos++
		d.ws()
		switch key {
		case "fraud":
			if err := once(&keys, kFraud, "label.fraud"); err != nil {
				return err
			}
			b, _, err := d.boolField("label.fraud")
			if err != nil {
				return err
			}
			l.Fraud = b
		case "scenario":
			if err := once(&keys, kLabel, "label.scenario"); err != nil {
				return err
			}
			switch c := d.peek(); {
			case c == '"':
				v, err := d.stringField("label.scenario", MaxFieldLen)
				if err != nil {
					return err
				}
				l.Scenario = v
			case c == '-' || (c >= '0' && c <= '9'):
				v, err := d.number()
				if err != nil {
					return err
				}
				if len(v) > MaxFieldLen {
					return decodeErr(ReasonTooLong, "label.scenario longer than "+strconv.Itoa(MaxFieldLen)+" bytes")
				}
				l.Scenario = v
			default:
				if err := d.skip(d.level); err != nil {
					return err
				}
			}
		default:
			if err := d.skip(d.level); err != nil {
				return err
			}
		}
		d.ws()
		c := d.peek()
		d.pos++
		if c == '}' {
			return nil
		}
		if c != ',' {
			d.pos--
			return d.syntax("expected ',' or '}'")
		}
	}
}

func (d *decoder) literal(lit string) error {
	if len(d.s)-d.pos >= len(lit) && d.s[d.pos:d.pos+len(lit)] == lit {
		d.pos += len(lit)
		return nil
	}
	return d.syntax("invalid literal")
}

// number scans a JSON number and returns its text.
func (d *decoder) number() (string, error) {
	start := d.pos
	if d.peek() == '-' {
		d.pos++
	}
	switch c := d.peek(); {
	case c == '0':
		d.pos++
	case c >= '1' && c <= '9':
		for d.pos < len(d.s) && d.s[d.pos] >= '0' && d.s[d.pos] <= '9' {
			d.pos++
		}
	default:
		return "", d.syntax("invalid number")
	}
	if d.peek() == '.' {
		d.pos++
		n := d.pos
		for d.pos < len(d.s) && d.s[d.pos] >= '0' && d.s[d.pos] <= '9' {
			d.pos++
		}
		if d.pos == n {
			return "", d.syntax("invalid number")
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.pos++
		if c := d.peek(); c == '+' || c == '-' {
			d.pos++
		}
		n := d.pos
		for d.pos < len(d.s) && d.s[d.pos] >= '0' && d.s[d.pos] <= '9' {
			d.pos++
		}
		if d.pos == n {
			return "", d.syntax("invalid number")
		}
	}
	return d.s[start:d.pos], nil
}

// str scans a JSON string at d.pos and returns its value, at most max bytes long.
func (d *decoder) str(max int) (string, error) {
	d.pos++ // opening quote
	start := d.pos
	ascii := true
	for d.pos < len(d.s) {
		c := d.s[d.pos]
		switch {
		case c == '"':
			v := d.s[start:d.pos]
			d.pos++
			if !ascii && !utf8.ValidString(v) {
				return "", decodeErr(ReasonInvalidJSON, "string is not valid UTF-8")
			}
			if len(v) > max {
				return "", decodeErr(ReasonTooLong, "string longer than "+strconv.Itoa(max)+" bytes")
			}
			return v, nil
		case c == '\\':
			return d.strEscaped(start, max)
		case c < 0x20:
			return "", d.syntax("control character in string")
		case c >= 0x80:
			ascii = false
		}
		d.pos++
	}
	return "", d.syntax("unterminated string")
}

func (d *decoder) strEscaped(start, max int) (string, error) {
	buf := make([]byte, 0, d.pos-start+16)
	buf = append(buf, d.s[start:d.pos]...)
	for d.pos < len(d.s) {
		if len(buf) > max {
			return "", decodeErr(ReasonTooLong, "string longer than "+strconv.Itoa(max)+" bytes")
		}
		c := d.s[d.pos]
		switch {
		case c == '"':
			d.pos++
			if !utf8.Valid(buf) {
				return "", decodeErr(ReasonInvalidJSON, "string is not valid UTF-8")
			}
			if len(buf) > max {
				return "", decodeErr(ReasonTooLong, "string longer than "+strconv.Itoa(max)+" bytes")
			}
			return string(buf), nil
		case c < 0x20:
			return "", d.syntax("control character in string")
		case c != '\\':
			buf = append(buf, c)
			d.pos++
			continue
		}
		d.pos++
		if d.pos >= len(d.s) {
			break
		}
		e := d.s[d.pos]
		d.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", d.syntax("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(d.s)-d.pos >= 6 && d.s[d.pos] == '\\' && d.s[d.pos+1] == 'u' {
					d.pos += 2
					r2, ok = d.hex4()
					if !ok {
						return "", d.syntax("invalid \\u escape")
					}
				}
				r = utf16.DecodeRune(r, r2)
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", d.syntax("invalid escape")
		}
	}
	return "", d.syntax("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.s)-d.pos < 4 {
		return 0, false
	}
	var r rune
	for i := 0; i < 4; i++ {
		c := d.s[d.pos+i]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}

// skip passes over any JSON value inside level objects and arrays. Nesting is refused past
// MaxDepth, so the recursion stays shallow whatever the input; a container over MaxFields
// members and a string over MaxValueLen bytes are refused too.
func (d *decoder) skip(level int) error {
	d.ws()
	switch c := d.peek(); {
	case c == '"':
		start := d.pos
		_, err := d.str(MaxValueLen)
		if de, ok := err.(*DecodeError); ok && de.Code == ReasonTooLong {
			de.Detail = "string longer than " + strconv.Itoa(MaxValueLen) + " bytes at byte " + strconv.Itoa(start)
		}
		return err
	case c == '{' || c == '[':
		if level >= MaxDepth {
			return decodeErr(ReasonTooLong, "objects and arrays nested deeper than "+strconv.Itoa(MaxDepth)+" levels at byte "+strconv.Itoa(d.pos))
		}
		closer, what := byte('}'), "fields in an object"
		if c == '[' {
			closer, what = ']', "elements in an array"
		}
		d.pos++
		d.ws()
		if d.peek() == closer {
			d.pos++
			return nil
		}
		for n := 1; ; n++ {
			if n > MaxFields {
				return d.tooMany(what)
			}
			d.ws()
			if c == '{' {
				if d.peek() != '"' {
					return d.syntax("expected a field name")
				}
				if _, err := d.key(); err != nil {
					return err
				}
				d.ws()
				if d.peek() != ':' {
					return d.syntax("expected ':'")
				}
				d.pos++
			}
			if err := d.skip(level + 1); err != nil {
				return err
			}
			d.ws()
			sep := d.peek()
			d.pos++
			if sep == closer {
				return nil
			}
			if sep != ',' {
				d.pos--
				return d.syntax("expected ',' or '" + string(closer) + "'")
			}
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := d.number()
		return err
	case c == 0 && d.pos >= len(d.s):
		return d.syntax("unexpected end of input")
	}
	return d.syntax("unexpected character")
}
