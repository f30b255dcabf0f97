package kinesis

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// fatalError marks an error no retry can cure (a missing stream, denied access): the source
// stops and ReadBatch returns it.
type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }
func (f *fatalError) Unwrap() error { return f.err }

func isFatal(err error) bool {
	var f *fatalError
	return errors.As(err, &f)
}

// Backoff between retries: full jitter over an interval that doubles from backoffInitial up
// to backoffMax.
const (
	backoffInitial = 100 * time.Millisecond
	backoffMax     = 5 * time.Second
)

type errKind int

const (
	errKindRetry     errKind = iota // transient: network, 5xx, unknown
	errKindThrottled                // over a rate limit
	errKindExpired                  // the shard iterator is older than 5 minutes
	errKindGone                     // the stream or shard does not exist
	errKindFatal                    // access denied, bad request: retrying cannot help
)

// classify sorts an error of the Kinesis API by what the source should do about it.
func classify(err error) errKind {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ExpiredIteratorException":
			return errKindExpired
		case "ProvisionedThroughputExceededException", "LimitExceededException", "KMSThrottlingException",
			"ThrottlingException", "Throttling", "RequestLimitExceeded", "TooManyRequestsException":
			return errKindThrottled
		case "ResourceNotFoundException":
			return errKindGone
		case "AccessDeniedException", "KMSAccessDeniedException", "KMSDisabledException", "KMSNotFoundException",
			"KMSInvalidStateException", "KMSOptInRequired", "InvalidArgumentException", "ValidationException",
			"UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature",
			"MissingAuthenticationToken", "InvalidClientTokenId", "ExpiredTokenException":
			return errKindFatal
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == 429 {
		return errKindThrottled
	}
	return errKindRetry
}

// backoff waits between retries of one operation.
type backoff struct {
	attempt int
}

func (b *backoff) reset() { b.attempt = 0 }

// next is the wait before the next retry: a random duration in [d/2, d), d doubling from
// backoffInitial to at most backoffMax.
func (b *backoff) next() time.Duration {
	d := backoffInitial << min(b.attempt, 10)
	if d > backoffMax || d <= 0 {
		d = backoffMax
	}
	b.attempt++
	return d/2 + rand.N(d/2)
}

// wait sleeps for the next backoff; false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool { return sleep(ctx, b.next()) }

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
