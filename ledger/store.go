package ledger

import (
	"context"
	"io"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Store is what both stores, SQLiteStore and PostgresStore, offer beyond pipeline.Ledger:
// the commands of fraudpipe ledger and the chargeback path use it.
type Store interface {
	pipeline.Ledger
	// Reverse posts the reversing entry of a posted transaction (a chargeback).
	Reverse(ctx context.Context, txID string, ts int64) (Reversal, error)
	// Balance returns an account as of the last committed Post.
	Balance(ctx context.Context, id string) (Account, error)
	// Verify re-checks every invariant from the stored entries.
	Verify(ctx context.Context) error
	// Stats summarizes the ledger.
	Stats(ctx context.Context) (Stats, error)
	// Export writes the entries posted since a wall-clock time (Unix ms) as NDJSON.
	Export(ctx context.Context, since int64, w io.Writer) error
	// Sync makes every batch Post returned durable against power loss.
	Sync(ctx context.Context) error
}

var (
	_ Store = (*SQLiteStore)(nil)
	_ Store = (*PostgresStore)(nil)
)

// Reverse posts the reversing entry of the posted transaction txID at event time ts (Unix
// ms): a new entry, ReversalPrefix+txID, whose postings negate the original's and which
// records txID in its reverses column. It is idempotent: a second call answers
// LedgerDuplicate. It returns an error wrapping ErrEntryNotFound when txID was never
// posted, and ErrNotReversible for a reversal or an opening balance.
func (s *SQLiteStore) Reverse(ctx context.Context, txID string, ts int64) (Reversal, error) {
	return s.reverse(ctx, &s.rd, txID, ts)
}

// Export writes every entry posted (committed) at or after since, wall clock in Unix ms,
// with its postings, as NDJSON (one ExportedEntry a line) in entry order, from one
// snapshot.
func (s *SQLiteStore) Export(ctx context.Context, since int64, w io.Writer) error {
	return s.rd.export(ctx, since, w)
}
