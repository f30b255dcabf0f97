package ledger

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// account is the in-memory, authoritative state of one account.
type account struct {
	rowid    int64 // of its row in the accounts table (SQLite only)
	id       string
	currency string
	kind     Kind
	limit    int64
	balance  int64
	created  int64
	gen      uint64 // the batch that last touched it
}

// undo restores one account touched by the current batch.
type undo struct {
	a              *account
	balance, limit int64
	created        bool
}

// book is the decision logic that both stores share: it holds every account's balance and
// limit in memory, decides each request of a batch there, and remembers what the batch
// changed so that a failed write can be undone. A store only reads duplicates from its
// database before decide and writes what decide chose after it.
type book struct {
	accounts     map[string]*account
	nextSeq      int64 // of the next entry
	nextRowid    int64 // of the next account
	gen          uint64
	defaultLimit func(pipeline.Currency) int64

	// scratch of the current batch
	dups   map[string]struct{} // ids in the ledger already, and ids this batch posted
	valid  []int               // indices of the well-formed requests, whose ids are looked up
	posted []int               // indices of the requests this batch posts
	seqs   []int64             // their entry sequence numbers
	undo   []undo              // accounts this batch touched, each once, in first-touch order
	seq0   int64
	rowid0 int64
}

func newBook(defaultLimit func(pipeline.Currency) int64) book {
	return book{accounts: make(map[string]*account), nextSeq: 1, nextRowid: 1, defaultLimit: defaultLimit}
}

// begin starts a batch: every request is marked skipped, the malformed ones rejected, and
// the indices of the others collected in b.valid.
func (b *book) begin(reqs []pipeline.PostRequest) {
	b.gen++
	if b.dups == nil {
		b.dups = make(map[string]struct{}, len(reqs))
	}
	clear(b.dups)
	b.valid, b.posted, b.seqs, b.undo = b.valid[:0], b.posted[:0], b.seqs[:0], b.undo[:0]
	b.seq0, b.rowid0 = b.nextSeq, b.nextRowid
	for i := range reqs {
		r := &reqs[i]
		r.Status, r.Reason = pipeline.LedgerSkipped, ""
		if reason := checkRequest(r); reason != "" {
			r.Status, r.Reason = pipeline.LedgerRejected, reason
			continue
		}
		b.valid = append(b.valid, i)
	}
}

// decide decides every valid request in order, once b.dups holds the ids already in the
// ledger, and assigns entry sequence numbers to the posted ones.
func (b *book) decide(reqs []pipeline.PostRequest, now int64) {
	for _, i := range b.valid {
		r := &reqs[i]
		if _, dup := b.dups[r.TxID]; dup {
			r.Status = pipeline.LedgerDuplicate
			continue
		}
		if reason := b.apply(r, now); reason != "" {
			r.Status, r.Reason = pipeline.LedgerRejected, reason
			continue
		}
		r.Status = pipeline.LedgerPosted
		b.dups[r.TxID] = struct{}{}
		b.posted = append(b.posted, i)
		b.seqs = append(b.seqs, b.nextSeq)
		b.nextSeq++
	}
}

// abort undoes the batch in memory and marks every request skipped.
func (b *book) abort(reqs []pipeline.PostRequest) {
	for i := len(b.undo) - 1; i >= 0; i-- {
		u := b.undo[i]
		if u.created {
			delete(b.accounts, u.a.id)
		} else {
			u.a.balance, u.a.limit = u.balance, u.limit
		}
	}
	b.undo = b.undo[:0]
	b.nextSeq, b.nextRowid = b.seq0, b.rowid0
	for i := range reqs {
		reqs[i].Status, reqs[i].Reason = pipeline.LedgerSkipped, ""
	}
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
func (b *book) apply(r *pipeline.PostRequest, now int64) string {
	cur := r.Currency.Code
	payer, payee := b.accounts[r.Payer], b.accounts[r.Payee]
	if (payer != nil && payer.currency != cur) || (payee != nil && payee.currency != cur) {
		return ReasonCurrencyMismatch
	}
	var payerBal, payeeBal int64
	kind, limit := KindCustomer, int64(0)
	if payer != nil {
		payerBal, kind, limit = payer.balance, payer.kind, payer.limit
	} else {
		limit = b.limitFor(r.Currency)
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
		payer = b.create(r.Payer, cur, KindCustomer, limit, now)
	} else {
		b.touch(payer)
	}
	if payee == nil {
		payee = b.create(r.Payee, cur, KindMerchant, 0, now)
	} else {
		b.touch(payee)
	}
	payer.balance -= r.Amount
	payee.balance += r.Amount
	return ""
}

func (b *book) limitFor(c pipeline.Currency) int64 {
	if b.defaultLimit == nil {
		return 0
	}
	return max(b.defaultLimit(c), 0)
}

func (b *book) create(id, currency string, kind Kind, limit, now int64) *account {
	// The account outlives the request: copy the strings, which may share the memory of a
	// decoder's buffer.
	a := &account{rowid: b.nextRowid, id: strings.Clone(id), currency: strings.Clone(currency),
		kind: kind, limit: limit, created: now, gen: b.gen}
	b.nextRowid++
	b.accounts[a.id] = a
	b.undo = append(b.undo, undo{a: a, created: true})
	return a
}

func (b *book) touch(a *account) {
	if a.gen != b.gen {
		a.gen = b.gen
		b.undo = append(b.undo, undo{a: a, balance: a.balance, limit: a.limit})
	}
}

// ensure makes sure an account exists with the given currency, kind and limit, creating it
// or changing its limit within the current batch. An existing account of another currency
// or kind is an error.
func (b *book) ensure(id, currency string, kind Kind, limit, now int64) error {
	a := b.accounts[id]
	if a == nil {
		b.create(id, currency, kind, limit, now)
		return nil
	}
	if a.currency != currency {
		return fmt.Errorf("account %q holds %s, not %s", id, a.currency, currency)
	}
	if a.kind != kind {
		return fmt.Errorf("account %q is a %s account, not %s", id, a.kind, kind)
	}
	if a.limit != limit {
		b.touch(a)
		a.limit = limit
	}
	return nil
}

// writer is what a store does with a batch that the book decided: it runs one database
// transaction per batch.
type writer interface {
	// begin opens the database transaction of a batch.
	begin(ctx context.Context) error
	// lookupIDs adds to dups the ids of reqs[valid] that the ledger holds already.
	lookupIDs(ctx context.Context, reqs []pipeline.PostRequest, valid []int, dups map[string]struct{}) error
	// write writes the batch: the entries b.posted (reverses, when not nil, gives the
	// transaction id each reverses), their postings, the accounts b.undo created, and the
	// new balance and limit of the other accounts b.undo touched.
	write(ctx context.Context, reqs []pipeline.PostRequest, reverses []string, b *book, now int64) error
	// commit commits the batch.
	commit(ctx context.Context) error
	// rollback ends the open transaction, if any.
	rollback() error
}

// core is the state and the batch protocol that both stores share: a mutex, the book, and
// Post's begin, look up, decide, write, commit, undo-on-failure.
type core struct {
	mu     sync.RWMutex
	closed bool
	broken error // set when a failed batch could not be rolled back
	book   book
	now    func() time.Time
	wr     writer

	hookTest func(stage string) error // tests inject failures here
}

func (c *core) hook(stage string) error {
	if c.hookTest == nil {
		return nil
	}
	return c.hookTest(stage)
}

// postLocked runs one batch; c.mu is held. pre, when not nil, runs in the batch before the
// requests are decided (to create accounts). reverses is nil or parallel to reqs.
func (c *core) postLocked(ctx context.Context, reqs []pipeline.PostRequest, reverses []string, pre func(now int64) error) error {
	if c.closed {
		return ErrClosed
	}
	if c.broken != nil {
		return fmt.Errorf("ledger: post: store unusable until reopened: %w", c.broken)
	}
	c.book.begin(reqs)
	err := c.batch(ctx, reqs, reverses, pre)
	if err == nil {
		c.book.undo = c.book.undo[:0]
		return nil
	}
	// Undo the batch: the database transaction first, then memory.
	if rbErr := c.wr.rollback(); rbErr != nil {
		c.broken = rbErr
		err = fmt.Errorf("%w (and rollback failed: %v)", err, rbErr)
	}
	c.book.abort(reqs)
	return fmt.Errorf("ledger: post batch of %d: %w", len(reqs), err)
}

func (c *core) batch(ctx context.Context, reqs []pipeline.PostRequest, reverses []string, pre func(now int64) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.hook("begin"); err != nil {
		return err
	}
	if err := c.wr.begin(ctx); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := c.wr.lookupIDs(ctx, reqs, c.book.valid, c.book.dups); err != nil {
		return fmt.Errorf("look up ids: %w", err)
	}
	now := c.now().UnixMilli()
	if pre != nil {
		if err := pre(now); err != nil {
			return err
		}
	}
	c.book.decide(reqs, now)
	if err := c.wr.write(ctx, reqs, reverses, &c.book, now); err != nil {
		return err
	}
	if err := c.hook("commit"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := c.wr.commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// balance returns an account from memory.
func (c *core) balance(ctx context.Context, id string) (Account, error) {
	if err := ctx.Err(); err != nil {
		return Account{}, fmt.Errorf("ledger: balance of %q: %w", id, err)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return Account{}, ErrClosed
	}
	a := c.book.accounts[id]
	if a == nil {
		return Account{}, fmt.Errorf("ledger: balance of %q: %w", id, ErrAccountNotFound)
	}
	cur, ok := pipeline.LookupCurrency(a.currency)
	if !ok {
		cur = pipeline.Currency{Code: a.currency}
	}
	return Account{ID: a.id, Currency: cur, Kind: a.kind, Limit: a.limit, Balance: a.balance, Created: a.created}, nil
}
