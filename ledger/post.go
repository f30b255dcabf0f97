package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// postBatch is the SQLite writer's scratch state of one Post call, reused across calls.
type postBatch struct {
	refs     []reqRefs      // per request: its text values in the writer's text buffer
	newAccts []*account     // the accounts the batch created
	balances []rowidBalance // the new balances and limits of the others
}

// rowidBalance is an account's new balance and limit, by rowid.
type rowidBalance struct{ rowid, balance, limit int64 }

// reqRefs locates a request's text values in the text buffer.
type reqRefs struct{ id, payer, payee, currency textRef }

// Post posts approved transactions in order, fills each request's Status and Reason, and
// returns after the whole batch is committed in one database transaction. A request is
// Duplicate when its TxID is in the ledger already or was posted earlier in reqs, Rejected
// (with a Reason* code) when posting it would break a limit or mix currencies, and Posted
// otherwise. On error nothing of reqs is posted: every Status is LedgerSkipped, the
// in-memory balances are as before the call, and the batch may be retried. Cancelling ctx
// stops the batch between statements.
func (s *SQLiteStore) Post(ctx context.Context, reqs []pipeline.PostRequest) error {
	if len(reqs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.postLocked(ctx, reqs, nil, nil)
}

// begin takes the write lock now (BEGIN IMMEDIATE), so the lookup and the writes see one
// state.
func (s *SQLiteStore) begin(context.Context) error {
	return s.w.exec("BEGIN IMMEDIATE")
}

// commit commits the batch and tells the checkpointer.
func (s *SQLiteStore) commit(context.Context) error {
	if err := s.w.exec("COMMIT"); err != nil {
		return err
	}
	if s.ckpt != nil {
		s.ckpt.committed()
	}
	return nil
}

// rollback ends the open database transaction, if any.
func (s *SQLiteStore) rollback() error {
	if s.w.db == 0 {
		return errConnClosed
	}
	if !s.w.inTx() {
		return nil // SQLite rolled back itself, or BEGIN never ran
	}
	return s.w.exec("ROLLBACK")
}

// lookupIDs copies the text values of the valid requests once into C memory, where the
// statements of the batch bind them from, and adds to dups the ids the ledger holds.
func (s *SQLiteStore) lookupIDs(ctx context.Context, reqs []pipeline.PostRequest, valid []int, dups map[string]uint64) error {
	b := &s.batch
	if cap(b.refs) < len(reqs) {
		b.refs = make([]reqRefs, len(reqs))
	}
	b.refs = b.refs[:len(reqs)]
	text := &s.w.text
	size := 0
	for _, i := range valid {
		r := &reqs[i]
		size += len(r.TxID) + len(r.Payer) + len(r.Payee) + len(r.Currency.Code)
	}
	if err := text.reset(s.w.tls, size); err != nil {
		return err
	}
	for _, i := range valid {
		r := &reqs[i]
		b.refs[i] = reqRefs{text.add(r.TxID), text.add(r.Payer), text.add(r.Payee), text.add(r.Currency.Code)}
	}
	return chunks(len(valid), func(off, size int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := s.stmt(stmtLookup, size)
		if err != nil {
			return err
		}
		bd := binder{st: st}
		for _, i := range valid[off : off+size] {
			bd.text(b.refs[i].id)
		}
		if bd.err != nil {
			return bd.err
		}
		defer st.reset()
		for {
			row, err := st.step()
			if err != nil || !row {
				return err
			}
			dups[st.columnText(0)] = uint64(st.columnInt64(1)) // NULL reads as 0
		}
	})
}

// Statement shapes. Multi-row statements are prepared once per (shape, rows) and reused;
// a batch is cut into chunks of the sizes in chunkSizes, so only a few are ever prepared.
type stmtKind uint8

const (
	stmtLookup stmtKind = iota
	stmtEntries
	stmtPostings
	stmtNewAccounts
	stmtBalances
	stmtVersions
)

type stmtKey struct {
	kind stmtKind
	rows int
}

// chunkSizes are the row counts of the prepared multi-row statements, largest first; the
// last must be 1. A batch of n rows runs n/chunkSizes[0] statements of the largest size and
// the rest in smaller ones.
var chunkSizes = []int{256, 64, 16, 4, 1}

// The statements of the posting path. The inserts say OR ROLLBACK: a constraint failure
// (which would be a bug, the batch was checked in memory) ends the whole transaction, so
// SQLite needs no statement journal to undo one statement. Balances are updated by rowid,
// which the store keeps in memory: integers only, and no lookup in the id index.
var shapes = [...]struct{ head, row, tail string }{
	stmtLookup: {"SELECT tx_id, decision_seq FROM entries WHERE tx_id IN (", "?", ")"},
	stmtEntries: {"INSERT OR ROLLBACK INTO entries(seq, tx_id, ts, posted_at, currency, amount, reverses, decision_seq, version_id) VALUES ",
		"(?,?,?,?,?,?,?,?,?)", ""},
	stmtPostings: {"INSERT OR ROLLBACK INTO postings(entry_seq, account_id, amount) VALUES ", "(?,?,?)", ""},
	stmtNewAccounts: {"INSERT OR ROLLBACK INTO accounts(rowid, id, currency, kind, credit_limit, balance, created_ts) VALUES ",
		"(?,?,?,?,?,?,?)", ""},
	stmtBalances: {"UPDATE OR ROLLBACK accounts SET balance = v.column2, credit_limit = v.column3 FROM (VALUES ", "(?,?,?)",
		") AS v WHERE accounts.rowid = v.column1"},
	stmtVersions: {"INSERT OR ROLLBACK INTO versions(id, model, rules) VALUES ", "(?,?,?)", ""},
}

func (s *SQLiteStore) stmt(kind stmtKind, rows int) (*rawStmt, error) {
	k := stmtKey{kind, rows}
	if st := s.stmts[k]; st != nil {
		return st, nil
	}
	sh := shapes[kind]
	var sb strings.Builder
	sb.Grow(len(sh.head) + rows*(len(sh.row)+1) + len(sh.tail))
	sb.WriteString(sh.head)
	for i := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(sh.row)
	}
	sb.WriteString(sh.tail)
	st, err := s.w.prepare(sb.String())
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	s.stmts[k] = st
	return st, nil
}

// chunks calls f for consecutive ranges [off, off+size) covering n rows, with sizes
// from chunkSizes.
func chunks(n int, f func(off, size int) error) error {
	off := 0
	for _, size := range chunkSizes {
		for n-off >= size {
			if err := f(off, size); err != nil {
				return err
			}
			off += size
		}
	}
	return nil
}

// binder binds consecutive parameters of a statement, keeping the first error.
type binder struct {
	st  *rawStmt
	i   int
	err error
}

func (b *binder) int(v int64) {
	b.i++
	if b.err == nil {
		b.err = b.st.bindInt64(b.i, v)
	}
}

// intOrNull binds v, or NULL when v is 0.
func (b *binder) intOrNull(v int64) {
	if v == 0 {
		b.null()
	} else {
		b.int(v)
	}
}

func (b *binder) null() {
	b.i++
	if b.err == nil {
		b.err = b.st.bindNull(b.i)
	}
}

func (b *binder) text(t textRef) {
	b.i++
	if b.err == nil {
		b.err = b.st.bindText(b.i, t)
	}
}

// execRows runs the multi-row statement of kind over n rows, in chunks; bind binds the
// values of row i. It checks that every row was written.
func (s *SQLiteStore) execRows(ctx context.Context, kind stmtKind, n int, bind func(b *binder, i int)) error {
	return chunks(n, func(off, size int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := s.stmt(kind, size)
		if err != nil {
			return err
		}
		b := binder{st: st}
		for i := off; i < off+size; i++ {
			bind(&b, i)
		}
		if b.err != nil {
			return b.err
		}
		changed, err := st.exec()
		if err != nil {
			return err
		}
		if changed != int64(size) {
			// The tables no longer match memory: another writer?
			return fmt.Errorf("%d rows changed, want %d", changed, size)
		}
		return nil
	})
}

// write inserts the batch's entries and postings and the accounts it created, and updates
// the balances and limits of the others it touched.
func (s *SQLiteStore) write(ctx context.Context, reqs []pipeline.PostRequest, reverses []string, bk *book, now int64) error {
	b := &s.batch
	// Text the lookup did not copy: the reversed ids and the new accounts' values. The
	// buffer may move; refs are offsets and every statement binds them again.
	text := &s.w.text
	b.newAccts, b.balances = b.newAccts[:0], b.balances[:0]
	size := 0
	for _, u := range bk.undo {
		if u.created {
			b.newAccts = append(b.newAccts, u.a)
			size += len(u.a.id) + len(u.a.currency) + len(u.a.kind)
		} else {
			b.balances = append(b.balances, rowidBalance{u.a.rowid, u.a.balance, u.a.limit})
		}
	}
	if reverses != nil {
		for _, i := range bk.posted {
			size += len(reverses[i])
		}
	}
	for _, v := range bk.newVers {
		size += len(v.key.model) + len(v.key.rules)
	}
	if err := text.reserve(s.w.tls, size); err != nil {
		return err
	}
	var revRefs []textRef
	if reverses != nil {
		revRefs = make([]textRef, len(bk.posted))
		for j, i := range bk.posted {
			revRefs[j] = text.add(reverses[i])
		}
	}
	if err := s.execRows(ctx, stmtEntries, len(bk.posted), func(bd *binder, i int) {
		r, refs := &reqs[bk.posted[i]], &b.refs[bk.posted[i]]
		bd.int(bk.seqs[i])
		bd.text(refs.id)
		bd.int(r.TS)
		bd.int(now)
		bd.text(refs.currency)
		bd.int(r.Amount)
		if revRefs != nil && revRefs[i].n > 0 {
			bd.text(revRefs[i])
		} else {
			bd.null()
		}
		bd.intOrNull(int64(r.Seq)) // the bits of a uint64; 0 identifies no decision
		bd.intOrNull(bk.vers[i])
	}); err != nil {
		return fmt.Errorf("insert entries: %w", err)
	}
	if err := s.hook("postings"); err != nil {
		return fmt.Errorf("insert postings: %w", err)
	}
	if err := s.execRows(ctx, stmtPostings, 2*len(bk.posted), func(bd *binder, i int) {
		r, refs := &reqs[bk.posted[i/2]], &b.refs[bk.posted[i/2]]
		bd.int(bk.seqs[i/2])
		if i%2 == 0 {
			bd.text(refs.payer)
			bd.int(-r.Amount)
		} else {
			bd.text(refs.payee)
			bd.int(r.Amount)
		}
	}); err != nil {
		return fmt.Errorf("insert postings: %w", err)
	}
	verRefs := make([][2]textRef, len(bk.newVers))
	for i, v := range bk.newVers {
		verRefs[i] = [2]textRef{text.add(v.key.model), text.add(v.key.rules)}
	}
	if err := s.execRows(ctx, stmtVersions, len(bk.newVers), func(bd *binder, i int) {
		bd.int(bk.newVers[i].id)
		bd.text(verRefs[i][0])
		bd.text(verRefs[i][1])
	}); err != nil {
		return fmt.Errorf("insert versions: %w", err)
	}
	acctRefs := make([][3]textRef, len(b.newAccts))
	for i, a := range b.newAccts {
		acctRefs[i] = [3]textRef{text.add(a.id), text.add(a.currency), text.add(string(a.kind))}
	}
	// In rowid order, the updates walk the accounts table from one page to the next.
	slices.SortFunc(b.balances, func(x, y rowidBalance) int { return cmp.Compare(x.rowid, y.rowid) })
	if err := s.execRows(ctx, stmtNewAccounts, len(b.newAccts), func(bd *binder, i int) {
		a := b.newAccts[i]
		bd.int(a.rowid)
		bd.text(acctRefs[i][0])
		bd.text(acctRefs[i][1])
		bd.text(acctRefs[i][2])
		bd.int(a.limit)
		bd.int(a.balance)
		bd.int(a.created)
	}); err != nil {
		return fmt.Errorf("insert accounts: %w", err)
	}
	if err := s.execRows(ctx, stmtBalances, len(b.balances), func(bd *binder, i int) {
		bd.int(b.balances[i].rowid)
		bd.int(b.balances[i].balance)
		bd.int(b.balances[i].limit)
	}); err != nil {
		return fmt.Errorf("update balances: %w", err)
	}
	return nil
}
