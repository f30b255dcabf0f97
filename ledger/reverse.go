package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// ErrEntryNotFound is returned (wrapped) by Reverse for a transaction id the ledger has no
// entry for: it was never posted (rejected, skipped) or is unknown.
var ErrEntryNotFound = errors.New("entry not found")

// ErrNotReversible is returned (wrapped) by Reverse for an entry that cannot be reversed:
// a reversal itself, or an entry that is not one payer-to-payee payment (an opening
// balance).
var ErrNotReversible = errors.New("entry cannot be reversed")

// ReversalPrefix starts the transaction id of a reversing entry: the reversal of "tx-1" is
// "reversal:tx-1".
const ReversalPrefix = "reversal:"

// Reversal is the outcome of Reverse.
type Reversal struct {
	// TxID is the reversing entry's transaction id: ReversalPrefix + the original's.
	TxID string
	// Status is LedgerPosted when this call reversed the entry, LedgerDuplicate when it was
	// reversed already, LedgerRejected (with Reason) when the reversal would break the
	// limit of the account it debits.
	Status pipeline.LedgerStatus
	// Reason is the rejection reason code, such as ReasonInsufficientFunds.
	Reason string
}

// original is the entry Reverse reverses.
type original struct {
	currency     string
	amount       int64
	reverses     string
	payer, payee string // the debited and the credited account
	postings     int
}

// findEntry reads the entry of txID and its postings; the caller holds the store's mutex.
//
// SQLite's postings have no index on entry_seq (it would cost every posting a second
// B-tree insert): as every entry has two postings written in entry order, the postings of
// entry seq are at rowids 2*seq-1 and 2*seq, which is looked up first; only a ledger whose
// postings were written otherwise falls back to a scan.
func (rd *reader) findEntry(ctx context.Context, txID string) (original, error) {
	const head = `SELECT e.currency, e.amount, coalesce(e.reverses, ''), p.account_id, p.amount FROM entries e JOIN postings p ON `
	queries := []string{head + `p.entry_seq = e.seq WHERE e.tx_id = ` + rd.dialect.ph(1)}
	if rd.dialect == dialectSQLite {
		queries = []string{
			head + `p.rowid IN (2*e.seq-1, 2*e.seq) AND p.entry_seq = e.seq WHERE e.tx_id = ?`,
			queries[0],
		}
	}
	var o original
	for _, q := range queries {
		o = original{}
		err := rd.viewOpen(ctx, false, func(tx, _ querier) error {
			rows, err := tx.Query(ctx, q, txID)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var acct string
				var amount int64
				if err := rows.Scan(&o.currency, &o.amount, &o.reverses, &acct, &amount); err != nil {
					return err
				}
				o.postings++
				if amount < 0 {
					o.payer = acct
				} else {
					o.payee = acct
				}
			}
			return rows.Err()
		})
		if err != nil || o.postings == 2 {
			return o, err
		}
	}
	return o, nil
}

// reverse implements Reverse for both stores.
func (c *core) reverse(ctx context.Context, rd *reader, txID string, ts int64) (Reversal, error) {
	res := Reversal{TxID: ReversalPrefix + txID}
	if txID == "" {
		return res, fmt.Errorf("ledger: reverse: empty transaction id: %w", ErrEntryNotFound)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return res, ErrClosed
	}
	o, err := rd.findEntry(ctx, txID)
	switch {
	case err != nil:
		return res, fmt.Errorf("ledger: reverse %q: %w", txID, err)
	case o.postings == 0:
		return res, fmt.Errorf("ledger: reverse %q: %w", txID, ErrEntryNotFound)
	case o.reverses != "":
		return res, fmt.Errorf("ledger: reverse %q: it reverses %q: %w", txID, o.reverses, ErrNotReversible)
	case o.postings != 2 || o.payer == "" || o.payee == "":
		return res, fmt.Errorf("ledger: reverse %q: %d postings: %w", txID, o.postings, ErrNotReversible)
	}
	cur, ok := pipeline.LookupCurrency(o.currency)
	if !ok {
		cur = pipeline.Currency{Code: o.currency}
	}
	reqs := []pipeline.PostRequest{{TxID: res.TxID, TS: ts, Payer: o.payee, Payee: o.payer, Amount: o.amount, Currency: cur}}
	if err := c.postLocked(ctx, reqs, []string{txID}, nil); err != nil {
		return res, err
	}
	res.Status, res.Reason = reqs[0].Status, reqs[0].Reason
	return res, nil
}
