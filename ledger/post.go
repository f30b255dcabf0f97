package ledger

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// postBatch is the scratch state of one Post call, reused across calls.
type postBatch struct {
	dups   map[string]struct{} // ids in the ledger already, and ids this batch posted
	refs   []reqRefs           // per request: its text values in the writer's text buffer
	valid  []int               // indices of the well-formed requests, whose ids are looked up
	posted []int               // indices of the requests this batch posts
	seqs   []int64             // their entry sequence numbers
	undo   []undo              // accounts this batch touched, each once, in first-touch order

	newAccts []undo         // the accounts of undo that the batch created
	balances []rowidBalance // the new balances of the others
	kindRefs [2]textRef
}

// rowidBalance is an account's new balance, by rowid.
type rowidBalance struct{ rowid, balance int64 }

// reqRefs locates a request's text values in the text buffer.
type reqRefs struct{ id, payer, payee, currency textRef }

// undo restores one account touched by the current batch.
type undo struct {
	a       *account
	balance int64
	created bool
	// for a created account: its text values in the text buffer
	id, currency, kind textRef
}

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
	if s.closed {
		return ErrClosed
	}
	if s.broken != nil {
		return fmt.Errorf("ledger: post: store unusable until reopened: %w", s.broken)
	}
	for i := range reqs {
		reqs[i].Status, reqs[i].Reason = pipeline.LedgerSkipped, ""
	}
	s.gen++
	seq0, rowid0 := s.nextSeq, s.nextRowid
	err := s.postTx(ctx, reqs)
	if err == nil {
		return nil
	}
	// Undo the batch: the database transaction first, then memory.
	if rbErr := s.rollback(); rbErr != nil {
		s.broken = rbErr
		err = fmt.Errorf("%w (and rollback failed: %v)", err, rbErr)
	}
	b := &s.batch
	for i := len(b.undo) - 1; i >= 0; i-- {
		u := b.undo[i]
		if u.created {
			delete(s.accounts, u.a.id)
		} else {
			u.a.balance = u.balance
		}
	}
	b.undo = b.undo[:0]
	s.nextSeq, s.nextRowid = seq0, rowid0
	for i := range reqs {
		reqs[i].Status, reqs[i].Reason = pipeline.LedgerSkipped, ""
	}
	return fmt.Errorf("ledger: post batch of %d: %w", len(reqs), err)
}

// postTx runs one batch in a database transaction: begin, look up ids, decide every
// request in memory, write, commit. On error the caller rolls back.
func (s *SQLiteStore) postTx(ctx context.Context, reqs []pipeline.PostRequest) error {
	b := &s.batch
	if b.dups == nil {
		b.dups = make(map[string]struct{}, len(reqs))
	}
	clear(b.dups)
	b.valid, b.posted, b.seqs, b.undo = b.valid[:0], b.posted[:0], b.seqs[:0], b.undo[:0]
	if cap(b.refs) < len(reqs) {
		b.refs = make([]reqRefs, len(reqs))
	}
	b.refs = b.refs[:len(reqs)]

	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.hook("begin"); err != nil {
		return err
	}
	// BEGIN IMMEDIATE takes the write lock now, so the lookup and the writes see one state.
	if err := s.w.exec("BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}

	// Copy the text values once into C memory; statements bind them from there.
	text := &s.w.text
	size := len(KindCustomer) + len(KindMerchant)
	for i := range reqs {
		r := &reqs[i]
		if reason := checkRequest(r); reason != "" {
			r.Status, r.Reason = pipeline.LedgerRejected, reason
			continue
		}
		b.valid = append(b.valid, i)
		size += len(r.TxID) + len(r.Payer) + len(r.Payee) + len(r.Currency.Code)
	}
	if err := text.reset(s.w.tls, size); err != nil {
		return err
	}
	b.kindRefs = [2]textRef{text.add(string(KindCustomer)), text.add(string(KindMerchant))}
	for _, i := range b.valid {
		r := &reqs[i]
		b.refs[i] = reqRefs{text.add(r.TxID), text.add(r.Payer), text.add(r.Payee), text.add(r.Currency.Code)}
	}

	if err := s.lookupIDs(ctx); err != nil {
		return fmt.Errorf("look up ids: %w", err)
	}

	now := s.opts.Now().UnixMilli()
	for _, i := range b.valid {
		r := &reqs[i]
		if _, dup := b.dups[r.TxID]; dup {
			r.Status = pipeline.LedgerDuplicate
			continue
		}
		if reason := s.apply(r, &b.refs[i], now); reason != "" {
			r.Status, r.Reason = pipeline.LedgerRejected, reason
			continue
		}
		r.Status = pipeline.LedgerPosted
		b.dups[r.TxID] = struct{}{}
		b.posted = append(b.posted, i)
		b.seqs = append(b.seqs, s.nextSeq)
		s.nextSeq++
	}

	if err := s.write(ctx, reqs, now); err != nil {
		return err
	}
	if err := s.hook("commit"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := s.w.exec("COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if s.ckpt != nil {
		s.ckpt.committed()
	}
	b.undo = b.undo[:0]
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

func (s *SQLiteStore) hook(stage string) error {
	if s.hookTest == nil {
		return nil
	}
	return s.hookTest(stage)
}

// checkRequest returns the reason a request is malformed, or "".
func checkRequest(r *pipeline.PostRequest) string {
	switch {
	case r.TxID == "" || r.Payer == "" || r.Payee == "" || r.Currency.Code == "" || r.Amount <= 0:
		return ReasonInvalidRequest
	case r.Payer == r.Payee:
		return ReasonSameAccount
	}
	return ""
}

// apply decides one request against the in-memory accounts and, when it can be posted,
// moves the amount, creating accounts as needed. It returns a rejection reason or "".
func (s *SQLiteStore) apply(r *pipeline.PostRequest, refs *reqRefs, now int64) string {
	cur := r.Currency.Code
	payer, payee := s.accounts[r.Payer], s.accounts[r.Payee]
	if (payer != nil && payer.currency != cur) || (payee != nil && payee.currency != cur) {
		return ReasonCurrencyMismatch
	}
	var payerBal, payeeBal int64
	kind, limit := KindCustomer, int64(0)
	if payer != nil {
		payerBal, kind, limit = payer.balance, payer.kind, payer.limit
	} else {
		limit = s.defaultLimit(r.Currency)
	}
	if payee != nil {
		payeeBal = payee.balance
	}
	if payerBal < math.MinInt64+r.Amount || payeeBal > math.MaxInt64-r.Amount {
		return ReasonBalanceOverflow
	}
	if kind == KindCustomer && payerBal-r.Amount < -limit {
		return ReasonInsufficientFunds
	}
	if payer == nil {
		payer = s.create(r.Payer, cur, KindCustomer, limit, now, undo{id: refs.payer, currency: refs.currency, kind: s.batch.kindRefs[0]})
	} else {
		s.touch(payer)
	}
	if payee == nil {
		payee = s.create(r.Payee, cur, KindMerchant, 0, now, undo{id: refs.payee, currency: refs.currency, kind: s.batch.kindRefs[1]})
	} else {
		s.touch(payee)
	}
	payer.balance -= r.Amount
	payee.balance += r.Amount
	return ""
}

func (s *SQLiteStore) defaultLimit(c pipeline.Currency) int64 {
	if s.opts.DefaultLimit == nil {
		return 0
	}
	return max(s.opts.DefaultLimit(c), 0)
}

func (s *SQLiteStore) create(id, currency string, kind Kind, limit, now int64, u undo) *account {
	// The account outlives the request: copy the strings, which may share the memory of a
	// decoder's buffer.
	a := &account{rowid: s.nextRowid, id: strings.Clone(id), currency: strings.Clone(currency),
		kind: kind, limit: limit, created: now, gen: s.gen}
	s.nextRowid++
	s.accounts[a.id] = a
	u.a, u.created = a, true
	s.batch.undo = append(s.batch.undo, u)
	return a
}

func (s *SQLiteStore) touch(a *account) {
	if a.gen != s.gen {
		a.gen = s.gen
		s.batch.undo = append(s.batch.undo, undo{a: a, balance: a.balance})
	}
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
	stmtLookup: {"SELECT tx_id FROM entries WHERE tx_id IN (", "?", ")"},
	stmtEntries: {"INSERT OR ROLLBACK INTO entries(seq, tx_id, ts, posted_at, currency, amount) VALUES ",
		"(?,?,?,?,?,?)", ""},
	stmtPostings: {"INSERT OR ROLLBACK INTO postings(entry_seq, account_id, amount) VALUES ", "(?,?,?)", ""},
	stmtNewAccounts: {"INSERT OR ROLLBACK INTO accounts(rowid, id, currency, kind, credit_limit, balance, created_ts) VALUES ",
		"(?,?,?,?,?,?,?)", ""},
	stmtBalances: {"UPDATE OR ROLLBACK accounts SET balance = v.column2 FROM (VALUES ", "(?,?)",
		") AS v WHERE accounts.rowid = v.column1"},
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

// lookupIDs adds to s.batch.dups the ids of the valid requests that are in the ledger.
func (s *SQLiteStore) lookupIDs(ctx context.Context) error {
	b := &s.batch
	return chunks(len(b.valid), func(off, size int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := s.stmt(stmtLookup, size)
		if err != nil {
			return err
		}
		bd := binder{st: st}
		for _, i := range b.valid[off : off+size] {
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
			b.dups[st.columnText(0)] = struct{}{}
		}
	})
}

// write inserts the batch's entries and postings and the accounts it created, and updates
// the balances of the others it touched.
func (s *SQLiteStore) write(ctx context.Context, reqs []pipeline.PostRequest, now int64) error {
	b := &s.batch
	if err := s.execRows(ctx, stmtEntries, len(b.posted), func(bd *binder, i int) {
		r, refs := &reqs[b.posted[i]], &b.refs[b.posted[i]]
		bd.int(b.seqs[i])
		bd.text(refs.id)
		bd.int(r.TS)
		bd.int(now)
		bd.text(refs.currency)
		bd.int(r.Amount)
	}); err != nil {
		return fmt.Errorf("insert entries: %w", err)
	}
	if err := s.hook("postings"); err != nil {
		return fmt.Errorf("insert postings: %w", err)
	}
	if err := s.execRows(ctx, stmtPostings, 2*len(b.posted), func(bd *binder, i int) {
		r, refs := &reqs[b.posted[i/2]], &b.refs[b.posted[i/2]]
		bd.int(b.seqs[i/2])
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
	b.newAccts, b.balances = b.newAccts[:0], b.balances[:0]
	for _, u := range b.undo {
		if u.created {
			b.newAccts = append(b.newAccts, u)
		} else {
			b.balances = append(b.balances, rowidBalance{u.a.rowid, u.a.balance})
		}
	}
	// In rowid order, the updates walk the accounts table from one page to the next.
	slices.SortFunc(b.balances, func(x, y rowidBalance) int { return cmp.Compare(x.rowid, y.rowid) })
	if err := s.execRows(ctx, stmtNewAccounts, len(b.newAccts), func(bd *binder, i int) {
		u := &b.newAccts[i]
		bd.int(u.a.rowid)
		bd.text(u.id)
		bd.text(u.currency)
		bd.text(u.kind)
		bd.int(u.a.limit)
		bd.int(u.a.balance)
		bd.int(u.a.created)
	}); err != nil {
		return fmt.Errorf("insert accounts: %w", err)
	}
	if err := s.execRows(ctx, stmtBalances, len(b.balances), func(bd *binder, i int) {
		bd.int(b.balances[i].rowid)
		bd.int(b.balances[i].balance)
	}); err != nil {
		return fmt.Errorf("update balances: %w", err)
	}
	return nil
}
