package opensearch

import (
	"strconv"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// AppendDocument appends the OpenSearch document of a decided event: the transaction's
// fields, the decision, and (when features is non-nil) the feature values. Its fields match
// the index template's mappings (template.go); absent optional fields are left out.
func AppendDocument(dst []byte, ev *pipeline.Event, features []string) []byte {
	tx, d := &ev.Tx, &ev.Decision
	dst = append(dst, `{"id":`...)
	dst = pipeline.AppendJSONString(dst, tx.ID)
	dst = append(dst, `,"ts":`...)
	dst = pipeline.AppendJSONString(dst, tx.TSText)
	dst = str(dst, "card_id", tx.CardID)
	dst = str(dst, "account_id", tx.AccountID)
	dst = str(dst, "merchant_id", tx.MerchantID)
	dst = str(dst, "customer_id", tx.CustomerID)
	dst = str(dst, "terminal_id", tx.TerminalID)
	dst = append(dst, `,"amount_minor":`...)
	dst = strconv.AppendInt(dst, tx.Amount, 10)
	dst = append(dst, `,"amount":`...)
	dst = AppendMajor(dst, tx.Amount, tx.Currency.Digits)
	dst = str(dst, "currency", tx.Currency.Code)
	dst = str(dst, "channel", tx.Channel.String())
	dst = str(dst, "mcc", tx.MCC)
	dst = str(dst, "country", tx.Country)
	if tx.HasGeo {
		dst = append(dst, `,"location":{"lat":`...)
		dst = pipeline.AppendJSONFloat(dst, tx.Lat)
		dst = append(dst, `,"lon":`...)
		dst = pipeline.AppendJSONFloat(dst, tx.Lon)
		dst = append(dst, '}')
	}
	dst = str(dst, "device_id", tx.DeviceID)
	dst = str(dst, "ip", tx.IP)
	dst = pipeline.AppendOutcomeJSON(dst, d)
	dst = append(dst, `,"ledger":"`...)
	dst = append(dst, d.Ledger.String()...)
	dst = append(dst, '"')
	dst = str(dst, "model", d.Model)
	dst = str(dst, "rules", d.Rules)
	if ev.Late {
		dst = append(dst, `,"late":true`...)
	}
	if features != nil && len(ev.Features) == len(features) {
		dst = append(dst, `,"features":{`...)
		for i, n := range features {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = pipeline.AppendJSONString(dst, n)
			dst = append(dst, ':')
			dst = pipeline.AppendJSONFloat(dst, ev.Features[i])
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// str appends ,"name":"value" when value is not empty.
func str(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return pipeline.AppendJSONString(dst, value)
}

// AppendMajor appends minor units as a decimal number of major units, exactly: 12345 with
// 2 digits is 123.45, 5 with 2 is 0.05, 700 with 0 is 700.
func AppendMajor(dst []byte, minor int64, digits int) []byte {
	if minor < 0 {
		dst = append(dst, '-')
		minor = -minor
	}
	if digits <= 0 {
		return strconv.AppendUint(dst, uint64(minor), 10)
	}
	start := len(dst)
	dst = strconv.AppendUint(dst, uint64(minor), 10)
	for len(dst)-start <= digits { // pad to at least one integer digit: 5 -> 005
		dst = append(dst, 0)
		copy(dst[start+1:], dst[start:])
		dst[start] = '0'
	}
	dst = append(dst, 0)
	point := len(dst) - 1 - digits
	copy(dst[point+1:], dst[point:])
	dst[point] = '.'
	return dst
}
