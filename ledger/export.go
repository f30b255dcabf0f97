package ledger

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// ExportedEntry is one line of Export: an entry with its postings.
type ExportedEntry struct {
	Seq      int64  `json:"seq"`
	TxID     string `json:"tx_id"`
	TS       string `json:"ts"`        // event time, RFC 3339 UTC
	PostedAt string `json:"posted_at"` // wall clock of the commit, RFC 3339 UTC
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"` // minor units
	Reverses string `json:"reverses,omitempty"`
	// DecisionSeq is the engine's sequence number of the decision that posted the entry,
	// 0 for an entry that no decision posted (a reversal, an opening balance, an entry
	// posted before the ledger stored it, or a request without a Seq).
	DecisionSeq uint64 `json:"decision_seq"`
	// Model and Rules are the versions that decided, "" for none.
	Model    string            `json:"model"`
	Rules    string            `json:"rules"`
	Postings []ExportedPosting `json:"postings"`
}

// ExportedPosting is one posting of an ExportedEntry.
type ExportedPosting struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"` // signed minor units
}

func msTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// export writes, as NDJSON in entry order, every entry posted at or after since (wall
// clock, Unix ms) with its postings, from one snapshot. The bound on p.entry_seq is
// implied by the join; it lets PostgreSQL read only the tail of postings through its BRIN
// index rather than all of it.
func (rd *reader) export(ctx context.Context, since int64, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	err := rd.view(ctx, false, func(tx, _ querier) error {
		rows, err := tx.Query(ctx, `SELECT e.seq, e.tx_id, e.ts, e.posted_at, e.currency, e.amount, coalesce(e.reverses, ''),
			coalesce(e.decision_seq, 0), coalesce(v.model, ''), coalesce(v.rules, ''),
			p.account_id, p.amount FROM entries e JOIN postings p ON p.entry_seq = e.seq
			LEFT JOIN versions v ON v.id = e.version_id
			WHERE e.posted_at >= `+rd.dialect.ph(1)+`
			AND p.entry_seq >= (SELECT coalesce(min(seq), 0) FROM entries WHERE posted_at >= `+rd.dialect.ph(2)+`)
			ORDER BY e.seq, p.amount`, since, since)
		if err != nil {
			return err
		}
		defer rows.Close()
		enc := json.NewEncoder(bw)
		var cur *ExportedEntry
		for rows.Next() {
			var e ExportedEntry
			var ts, posted, decision int64
			var p ExportedPosting
			if err := rows.Scan(&e.Seq, &e.TxID, &ts, &posted, &e.Currency, &e.Amount, &e.Reverses,
				&decision, &e.Model, &e.Rules, &p.Account, &p.Amount); err != nil {
				return err
			}
			e.DecisionSeq = uint64(decision)
			if cur == nil || cur.Seq != e.Seq {
				if cur != nil {
					if err := enc.Encode(cur); err != nil {
						return err
					}
				}
				e.TS, e.PostedAt = msTime(ts), msTime(posted)
				cur = &e
			}
			cur.Postings = append(cur.Postings, p)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if cur != nil {
			return enc.Encode(cur)
		}
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("ledger: export: %w", err)
	}
	return nil
}
