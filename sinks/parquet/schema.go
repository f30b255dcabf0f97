package parquet

import (
	"fmt"
	"math"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	pq "github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
)

// AmountPrecision and AmountScale are the decimal type of the amount column. Scale 4 holds
// every ISO 4217 currency exactly (the most minor digits is 4, UYW); precision 20 holds the
// largest amount the contract accepts (10^15 minor units of a 0-digit currency, 10^19 at
// scale 4).
const (
	AmountPrecision = 20
	AmountScale     = 4
)

// FeaturePrefix starts the name of every feature column ("f_amount", "f_card_count_1h"), so
// a feature never collides with a fixed column.
const FeaturePrefix = "f_"

// Column indices of the fixed columns, in schema order.
const (
	colID = iota
	colTS
	colCard
	colAccount
	colMerchant
	colCustomer
	colTerminal
	colChannel
	colMCC
	colCountry
	colCurrency
	colAmount
	colAmountMinor
	colLat
	colLon
	colDecision
	colScore
	colReasons
	colLedger
	colModel
	colRules
	colLate
	colSeq
	numFixed
)

// Schema returns the Arrow schema of the Parquet files for the given feature names.
func Schema(features []string) *arrow.Schema {
	str := arrow.BinaryTypes.String
	f := func(name string, t arrow.DataType, nullable bool) arrow.Field {
		return arrow.Field{Name: name, Type: t, Nullable: nullable}
	}
	fields := []arrow.Field{
		colID:          f("id", str, false),
		colTS:          f("ts", &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, false),
		colCard:        f("card_id", str, false),
		colAccount:     f("account_id", str, false),
		colMerchant:    f("merchant_id", str, false),
		colCustomer:    f("customer_id", str, true),
		colTerminal:    f("terminal_id", str, true),
		colChannel:     f("channel", str, false),
		colMCC:         f("mcc", str, true),
		colCountry:     f("country", str, true),
		colCurrency:    f("currency", str, false),
		colAmount:      f("amount", &arrow.Decimal128Type{Precision: AmountPrecision, Scale: AmountScale}, false),
		colAmountMinor: f("amount_minor", arrow.PrimitiveTypes.Int64, false),
		colLat:         f("lat", arrow.PrimitiveTypes.Float64, true),
		colLon:         f("lon", arrow.PrimitiveTypes.Float64, true),
		colDecision:    f("decision", str, false),
		colScore:       f("score", arrow.PrimitiveTypes.Float64, true),
		colReasons:     f("reasons", arrow.ListOf(str), false),
		colLedger:      f("ledger", str, false),
		colModel:       f("model", str, true),
		colRules:       f("rules", str, true),
		colLate:        f("late", arrow.FixedWidthTypes.Boolean, false),
		colSeq:         f("seq", arrow.PrimitiveTypes.Int64, false),
	}
	for _, name := range features {
		fields = append(fields, f(FeaturePrefix+name, arrow.PrimitiveTypes.Float64, true))
	}
	return arrow.NewSchema(fields, nil)
}

// Compression names the codec of the Parquet files' pages.
type Compression string

// The codecs a Sink writes. zstd at its fastest level is the default: on the benchmark's
// rows its files are under a third the size of snappy's, for up to a quarter more CPU in
// the conversion (docs/parquet.md has the figures).
const (
	CompressionZstd   Compression = "zstd"
	CompressionSnappy Compression = "snappy"
	CompressionNone   Compression = "none"
)

func (c Compression) codec() (compress.Compression, int, error) {
	switch c {
	case CompressionZstd, "":
		return compress.Codecs.Zstd, zstdLevel, nil
	case CompressionSnappy:
		return compress.Codecs.Snappy, compress.DefaultCompressionLevel, nil
	case CompressionNone:
		return compress.Codecs.Uncompressed, compress.DefaultCompressionLevel, nil
	}
	return 0, 0, fmt.Errorf("parquet: unknown compression %q: use zstd, snappy or none", string(c))
}

// writerProps are the Parquet settings of every file: the compression codec, dictionary
// encoding on (off for the unique id, continuous values and the sequence number), statistics
// for predicate pushdown.
func writerProps(mem memory.Allocator, rowGroupBytes int64, features []string, compression Compression) (*pq.WriterProperties, error) {
	codec, level, err := compression.codec()
	if err != nil {
		return nil, err
	}
	// Encoded bytes are counted as data pages are cut, so pages must be small next to a
	// row group for the cut to land near its target.
	page := min(max(rowGroupBytes/64, 4<<10), 1<<20)
	opts := []pq.WriterProperty{
		pq.WithAllocator(mem),
		pq.WithDataPageSize(page),
		pq.WithCompression(codec),
		pq.WithCompressionLevel(level),
		pq.WithDictionaryDefault(true),
		pq.WithMaxRowGroupLength(math.MaxInt32),
		pq.WithStats(true),
		pq.WithCreatedBy("fraudpipe"),
	}
	// Dictionaries pay off on the repeating dimension columns (cards, merchants, countries,
	// reasons, versions); on unique or continuous values they only cost hashing until the
	// writer falls back to plain encoding. A column whose values turn out nearly unique
	// falls back after its first chunk of rows (dictColumn.maybeFallBack).
	for _, c := range []string{"id", "ts", "amount", "amount_minor", "lat", "lon", "score", "seq"} {
		opts = append(opts, pq.WithDictionaryFor(c, false))
	}
	for _, f := range features {
		opts = append(opts, pq.WithDictionaryFor(FeaturePrefix+f, false))
	}
	return pq.NewWriterProperties(opts...), nil
}

// batchRows is how many rows are collected into one chunk before they are encoded.
const batchRows = 8192

var scaleUp = [...]int64{10000, 1000, 100, 10, 1}

// scaleAmount converts minor units of a currency with digits minor digits to the amount
// column's scale, exactly: in int64 where it fits, in 128 bits beyond.
func scaleAmount(minor int64, digits byte) decimal128.Num {
	if int(digits) >= len(scaleUp) {
		return decimal128.FromI64(minor) // not a currency the contract accepts; kept as is
	}
	m := scaleUp[digits]
	if minor <= math.MaxInt64/10000 && minor >= math.MinInt64/10000 {
		return decimal128.FromI64(minor * m)
	}
	return decimal128.FromI64(minor).Mul(decimal128.FromI64(m))
}

var (
	channelNames  = [...]string{"pos", "ecom", "atm", "transfer"}
	outcomeNames  = [...]string{"approve", "review", "decline"}
	ledgerNames   = [...]string{"skipped", "posted", "rejected", "duplicate"}
	unknownString = "unknown"
)

// zstdLevel is zstd's fastest level: the default level costs the sink more CPU than all
// its other work on a column's pages.
const zstdLevel = 1
