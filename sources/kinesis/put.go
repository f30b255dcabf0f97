package kinesis

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// PutRecords' limits per call.
const (
	putMaxRecords = 500
	putMaxBytes   = 5 << 20
	maxKeyLen     = 256
	putMaxRetries = 10
)

// Putter is the part of the Kinesis client Put uses; *kinesis.Client implements it.
type Putter interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Put writes lines to a stream (name or ARN) with PutRecords, 500 records or 5 MiB a call,
// each record's partition key keyOf(line) (CardKey when keyOf is nil). Records Kinesis
// refuses (throttling) are put again with backoff. Lines of one key keep their order in the
// stream as long as no record is refused; a refused record is put again after the ones
// accepted in the same call, so a producer that needs strict order under throttling must
// put one record at a time.
func Put(ctx context.Context, client Putter, stream string, lines [][]byte, keyOf func([]byte) string) error {
	if keyOf == nil {
		keyOf = CardKey
	}
	var entries []types.PutRecordsRequestEntry
	size := 0
	flush := func() error {
		if len(entries) == 0 {
			return nil
		}
		err := putAll(ctx, client, stream, entries)
		entries, size = entries[:0], 0
		return err
	}
	for _, line := range lines {
		key := keyOf(line)
		if key == "" {
			key = "-"
		}
		if len(key) > maxKeyLen {
			key = key[:maxKeyLen]
		}
		n := len(line) + len(key)
		if n > 1<<20 {
			return fmt.Errorf("kinesis put: a record of %d bytes is over Kinesis' 1 MiB limit", n)
		}
		if len(entries) == putMaxRecords || size+n > putMaxBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		entries = append(entries, types.PutRecordsRequestEntry{Data: line, PartitionKey: aws.String(key)})
		size += n
	}
	return flush()
}

// putAll puts entries, again and again for the ones refused, until all are in.
func putAll(ctx context.Context, client Putter, stream string, entries []types.PutRecordsRequestEntry) error {
	var bo backoff
	for {
		in := &kinesis.PutRecordsInput{Records: entries}
		if isARN(stream) {
			in.StreamARN = aws.String(stream)
		} else {
			in.StreamName = aws.String(stream)
		}
		out, err := client.PutRecords(ctx, in)
		if err != nil {
			kind := classify(err)
			if kind == errKindFatal || kind == errKindGone || bo.attempt >= putMaxRetries || !bo.wait(ctx) {
				return fmt.Errorf("kinesis put to %s: %w", stream, err)
			}
			continue
		}
		if aws.ToInt32(out.FailedRecordCount) == 0 {
			return nil
		}
		var again []types.PutRecordsRequestEntry
		var last string
		for i, r := range out.Records {
			if r.ErrorCode != nil && i < len(entries) {
				again = append(again, entries[i])
				last = aws.ToString(r.ErrorCode) + ": " + aws.ToString(r.ErrorMessage)
			}
		}
		if len(again) == 0 {
			return nil
		}
		if bo.attempt >= putMaxRetries || !bo.wait(ctx) {
			return fmt.Errorf("kinesis put to %s: %d records still refused after %d tries (%s)", stream, len(again), bo.attempt+1, last)
		}
		entries = again
	}
}

// CardKey is the card_id of a transaction line, the partition key that keeps each card's
// transactions on one shard and in order; "-" for a line without one.
func CardKey(line []byte) string {
	var tx struct {
		CardID string `json:"card_id"`
	}
	if err := json.Unmarshal(line, &tx); err != nil || tx.CardID == "" {
		return "-"
	}
	return tx.CardID
}
