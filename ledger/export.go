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
	Seq      int64             `json:"seq"`
	TxID     string            `json:"tx_id"`
	TS       string            `json:"ts"`        // event time, RFC 3339 UTC
	PostedAt string            `json:"posted_at"` // wall clock of the commit, RFC 3339 UTC
	Currency string            `json:"currency"`
	Amount   int64             `json:"amount"` // minor units
	Reverses string            `json:"reverses,omitempty"`
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
// clock, Unix ms) with its postings, from one snapshot.
func (rd *reader) export(ctx context.Context, since int64, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	err := rd.view(ctx, false, func(tx, _ querier) error {
		rows, err := tx.Query(ctx, `SELECT e.seq, e.tx_id, e.ts, e.posted_at, e.currency, e.amount, coalesce(e.reverses, ''),
			p.account_id, p.amount FROM entries e JOIN postings p ON p.entry_seq = e.seq
			WHERE e.posted_at >= `+rd.dialect.ph(1)+` ORDER BY e.seq, p.amount`, since)
		if err != nil {
			return err
		}
		defer rows.Close()
		enc := json.NewEncoder(bw)
		var cur *ExportedEntry
		for rows.Next() {
			var e ExportedEntry
			var ts, posted int64
			var p ExportedPosting
			if err := rows.Scan(&e.Seq, &e.TxID, &ts, &posted, &e.Currency, &e.Amount, &e.Reverses, &p.Account, &p.Amount); err != nil {
				return err
			}
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
