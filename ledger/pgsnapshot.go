package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL store keeps the account balances out of a batch's transaction: the
// journal (entries and postings) is the authority, and accounts.balance is a snapshot of
// the balances at one position of it, balance_snapshot.position, written every
// Options.BalanceSnapshotEvery entries (in that batch's transaction), on Sync and on
// Close. Updating a balance row costs the server a new row version (about 4 µs), and a
// batch of 8,000 postings touches as many accounts; a snapshot every few batches writes
// each account once however often it was touched in between.
//
// A balance is exact wherever it is read: the writer holds every balance in memory; a
// store that opens (the writer after a crash, or the read-only store of the ledger
// commands) reads the snapshot and adds the postings after its position, in one
// database snapshot. An account created after the position was inserted with the
// balance 0, which it had there.
//
// The snapshot row holds a checksum of the balances and the position (checksumOf). A
// snapshot is written in one transaction, so it cannot be torn by a crash; the checksum
// catches one torn some other way (a hand edit, a restore of the accounts table alone):
// when it does not match, or is NULL (a ledger migrated from schema version 3), the store
// recomputes every balance from the whole journal, and the writer writes a fresh
// snapshot.

// defaultBalanceSnapshotEvery is Options.BalanceSnapshotEvery's default: the journal read
// at open is at most this many entries (about 0.1 s of the server's time).
const defaultBalanceSnapshotEvery = 100_000

// idHash is FNV-1a of an account id, odd, so that a change of one balance by d != 0
// always changes the checksum (an odd number times d is never 0 modulo 2^64).
func idHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h | 1
}

// posHash mixes a journal position (splitmix64's finalizer).
func posHash(pos int64) uint64 {
	z := uint64(pos) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// checksumOf is the checksum of a snapshot at pos whose balances have sum, the sum over
// the accounts of idHash(id) * balance (modulo 2^64; the order does not matter and an
// account with balance 0 adds nothing).
func checksumOf(pos int64, sum uint64) int64 { return int64(sum + posHash(pos)) }

// balanceSnapshot is the writer's view of the stored snapshot.
type balanceSnapshot struct {
	every int64      // entries between snapshots
	pos   int64      // the stored snapshot's position
	sum   uint64     // of the stored balances (account.snap)
	stale bool       // the stored snapshot row is missing, unknown or wrong: rewrite it
	dirty []*account // committed accounts whose balance is not their stored one

	// The snapshot the open transaction writes, applied to the accounts once it commits.
	pending    bool
	pendingPos int64
	pendingSum uint64
	set        []*account // whose snap becomes their balance
	ids        []string   // the rows to update
	bals       []int64
}

// due reports whether a batch that ends at entry last writes a snapshot.
func (bs *balanceSnapshot) due(last int64) bool {
	return bs.stale || last-bs.pos >= bs.every
}

// prepare makes the snapshot at pos of the dirty accounts and of touched, the accounts
// the open batch touched (nil outside a batch). The accounts it created are inserted with
// their balance, so they are in set but not in ids.
func (bs *balanceSnapshot) prepare(pos int64, touched []undo) {
	bs.pending, bs.pendingPos, bs.pendingSum = true, pos, bs.sum
	bs.set, bs.ids, bs.bals = bs.set[:0], bs.ids[:0], bs.bals[:0]
	add := func(a *account, created bool) {
		bs.set = append(bs.set, a)
		if a.balance == a.snap {
			return
		}
		bs.pendingSum += idHash(a.id) * uint64(a.balance-a.snap)
		if !created {
			bs.ids = append(bs.ids, a.id)
			bs.bals = append(bs.bals, a.balance)
		}
	}
	for _, a := range bs.dirty {
		add(a, false)
	}
	for _, u := range touched {
		if !u.a.dirty {
			add(u.a, u.created)
		}
	}
}

// committed records the commit of a batch that touched the accounts of touched: applies
// the pending snapshot, or marks the accounts whose balance moved dirty.
func (bs *balanceSnapshot) committed(touched []undo) {
	if bs.pending {
		for _, a := range bs.set {
			a.snap, a.dirty = a.balance, false
		}
		bs.pos, bs.sum, bs.stale = bs.pendingPos, bs.pendingSum, false
		bs.dirty = bs.dirty[:0]
		bs.discard()
		return
	}
	for _, u := range touched {
		if a := u.a; !a.dirty && a.balance != a.snap {
			a.dirty = true
			bs.dirty = append(bs.dirty, a)
		}
	}
}

// discard forgets the pending snapshot (its transaction failed or committed).
func (bs *balanceSnapshot) discard() {
	bs.pending = false
	clear(bs.set) // no pointers kept to accounts a failed batch created
	bs.set = bs.set[:0]
}

// queue adds the pending snapshot's statements to b.
func (bs *balanceSnapshot) queue(b *pgx.Batch, checks *[]rowCheck) {
	if n := len(bs.ids); n > 0 {
		b.Queue(`UPDATE accounts SET balance = v.balance
			FROM unnest($1::text[], $2::bigint[]) AS v(id, balance) WHERE accounts.id = v.id`, bs.ids, bs.bals)
		*checks = append(*checks, rowCheck{"write balance snapshot", n})
	}
	b.Queue(`INSERT INTO balance_snapshot(position, checksum) VALUES ($1, $2)
		ON CONFLICT (one) DO UPDATE SET position = excluded.position, checksum = excluded.checksum`,
		bs.pendingPos, checksumOf(bs.pendingPos, bs.pendingSum))
	*checks = append(*checks, rowCheck{"write balance snapshot position", 1})
}

// rowCheck is a statement of a pipelined batch and the rows it must change.
type rowCheck struct {
	what string
	want int
}

// execChecked sends b and checks every statement's row count.
func execChecked(ctx context.Context, tx pgx.Tx, b *pgx.Batch, checks []rowCheck) error {
	if len(checks) == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, b)
	for _, c := range checks {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return fmt.Errorf("%s: %w", c.what, err)
		}
		if got := tag.RowsAffected(); got != int64(c.want) {
			br.Close()
			// The tables no longer match memory: another writer?
			return fmt.Errorf("%s: %d rows changed, want %d", c.what, got, c.want)
		}
	}
	return br.Close()
}

// loadBalances reads the last entry's sequence number and turns the balances that load
// read from accounts (the snapshot's) into the current ones: it adds the postings after
// the snapshot's position, or, when the snapshot is missing or its checksum does not
// match, recomputes every balance from the whole journal. q reads the same database
// snapshot as load.
func (s *PostgresStore) loadBalances(ctx context.Context, q querier) error {
	bs := &s.bs
	var pos int64
	var stored *int64
	err := queryRow(ctx, q, `SELECT position, checksum FROM balance_snapshot`, nil, &pos, &stored)
	if err != nil && !errors.Is(err, errNoRows) {
		return fmt.Errorf("load balance snapshot: %w", err)
	}
	var sum uint64
	for _, a := range s.book.accounts {
		sum += idHash(a.id) * uint64(a.snap)
	}
	bs.pos, bs.sum = pos, sum
	from := pos
	if err != nil || stored == nil || *stored != checksumOf(pos, sum) {
		if err == nil && stored != nil {
			slog.Warn("ledger: the balance snapshot does not match its checksum; recomputing every balance from the journal",
				"position", pos)
		}
		bs.stale, from = true, 0
		for _, a := range s.book.accounts {
			a.balance = 0
		}
	}
	// The entries after the snapshot are at the end of the table: the BRIN index on seq
	// finds them without reading the rest.
	var last int64
	if err := queryRow(ctx, q, `SELECT coalesce(max(seq), $1) FROM entries WHERE seq > $1`, []any{from}, &last); err != nil {
		return fmt.Errorf("load last entry: %w", err)
	}
	s.book.nextSeq = last + 1
	rows, err := q.Query(ctx, `SELECT account_id, CAST(sum(amount) AS bigint) FROM postings WHERE entry_seq > $1 GROUP BY account_id`, from)
	if err != nil {
		return fmt.Errorf("load postings after the balance snapshot: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var delta int64
		if err := rows.Scan(&id, &delta); err != nil {
			return fmt.Errorf("load postings after the balance snapshot: %w", err)
		}
		// A posting of an unknown account is Verify's to report (unknown_account).
		if a := s.book.accounts[id]; a != nil {
			a.balance += delta
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load postings after the balance snapshot: %w", err)
	}
	for _, a := range s.book.accounts {
		if a.balance != a.snap {
			a.dirty = true
			bs.dirty = append(bs.dirty, a)
		}
	}
	return nil
}

// writeSnapshot writes the balances that differ from the stored snapshot, and the
// snapshot's position, in a transaction of its own; s.mu is held and no batch is open.
// It does nothing when the stored snapshot is current.
func (s *PostgresStore) writeSnapshot(ctx context.Context) error {
	bs := &s.bs
	last := s.book.nextSeq - 1
	if !bs.stale && len(bs.dirty) == 0 && bs.pos == last {
		return nil
	}
	bs.prepare(last, nil)
	err := func() error {
		tx, err := s.conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
		var b pgx.Batch
		var checks []rowCheck
		bs.queue(&b, &checks)
		if err := execChecked(ctx, tx, &b, checks); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}()
	if err != nil {
		bs.discard()
		return fmt.Errorf("ledger: write balance snapshot: %w", err)
	}
	bs.committed(nil)
	return nil
}
