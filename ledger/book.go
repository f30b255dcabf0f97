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

	// PostgreSQL only: the balance its row holds, valid at the balance snapshot's
	// position (pgsnapshot.go), and whether balance differs from it since a commit.
	snap  int64
	dirty bool
}

// undo restores one account touched by the current batch.
type undo struct {
	a              *account
	balance, limit int64
	created        bool
}

// versionKey is the model and rules versions of a decision, a row of the versions table.
type versionKey struct{ model, rules string }

// newVersion is a row of the versions table that the current batch adds.
type newVersion struct {
	id  int64
	key versionKey
}

// book is the decision logic that both stores share: it holds every account's balance and
// limit in memory, decides each request of a batch there, and remembers what the batch
// changed so that a failed write can be undone. A store only reads duplicates from its
// database before decide and writes what decide chose after it.
type book struct {
	accounts     map[string]*account
	versions     map[versionKey]int64 // the versions table: (model, rules) -> id
	nextSeq      int64                // of the next entry
	nextRowid    int64                // of the next account
	nextVersion  int64                // id of the next row of versions
	gen          uint64
	defaultLimit func(pipeline.Currency) int64
	lastVersion  newVersion // the versions row version returned last ({0, ...}: none)

	// scratch of the current batch
	dups     map[string]uint64 // ids in the ledger already and ids this batch posted -> their entry's decision_seq (0: none)
	valid    []int             // indices of the well-formed requests, whose ids are looked up
	posted   []int             // indices of the requests this batch posts
	seqs     []int64           // their entry sequence numbers
	vers     []int64           // their versions ids (0: no model and no rules)
	newVers  []newVersion      // the versions rows this batch adds
	undo     []undo            // accounts this batch touched, each once, in first-touch order
	seq0     int64
	rowid0   int64
	version0 int64
}

func newBook(defaultLimit func(pipeline.Currency) int64) book {
	return book{accounts: make(map[string]*account), versions: make(map[versionKey]int64),
		nextSeq: 1, nextRowid: 1, nextVersion: 1, defaultLimit: defaultLimit}
}

// addVersion records a row of the versions table read at open.
func (b *book) addVersion(id int64, model, rules string) {
	b.versions[versionKey{model, rules}] = id
	b.nextVersion = max(b.nextVersion, id+1)
}

// version returns the versions id of a request's model and rules, adding a row to the
// batch when the pair is new; 0 when the request names neither.
func (b *book) version(r *pipeline.PostRequest) int64 {
	if r.Model == "" && r.Rules == "" {
		return 0
	}
	k := versionKey{r.Model, r.Rules}
	if b.lastVersion.id != 0 && b.lastVersion.key == k {
		return b.lastVersion.id // most requests of a batch name the versions of the one before
	}
	if id, ok := b.versions[k]; ok {
		b.lastVersion = newVersion{id, k}
		return id
	}
	// The key outlives the request: copy the strings (see create).
	k = versionKey{strings.Clone(r.Model), strings.Clone(r.Rules)}
	id := b.nextVersion
	b.nextVersion++
	b.versions[k] = id
	b.newVers = append(b.newVers, newVersion{id, k})
	b.lastVersion = newVersion{id, k}
	return id
}

// begin starts a batch: every request is marked skipped, the malformed ones rejected, and
// the indices of the others collected in b.valid.
func (b *book) begin(reqs []pipeline.PostRequest) {
	b.gen++
	if b.dups == nil {
		b.dups = make(map[string]uint64, len(reqs))
	}
	clear(b.dups)
	b.valid, b.posted, b.seqs, b.undo = b.valid[:0], b.posted[:0], b.seqs[:0], b.undo[:0]
	b.vers, b.newVers = b.vers[:0], b.newVers[:0]
	b.seq0, b.rowid0, b.version0 = b.nextSeq, b.nextRowid, b.nextVersion
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
// ledger with the decision_seq of their entries, and assigns entry sequence numbers and
// versions to the posted ones.
//
// A request whose id has an entry is a repeat. When the entry's decision_seq is the
// request's Seq, the repeat is the decision that posted the entry, replayed after a crash,
// and it answers LedgerPosted as it did the first time; any other repeat is
// LedgerDuplicate. Seq 0 identifies no decision (the zero value of PostRequest) and never
// matches. Either way nothing is posted again.
func (b *book) decide(reqs []pipeline.PostRequest, now int64) {
	for _, i := range b.valid {
		r := &reqs[i]
		if seq, dup := b.dups[r.TxID]; dup {
			if r.Seq != 0 && seq == r.Seq {
				r.Status = pipeline.LedgerPosted
			} else {
				r.Status = pipeline.LedgerDuplicate
			}
			continue
		}
		if reason := b.apply(r, now); reason != "" {
			r.Status, r.Reason = pipeline.LedgerRejected, reason
			continue
		}
		r.Status = pipeline.LedgerPosted
		b.dups[r.TxID] = r.Seq
		b.posted = append(b.posted, i)
		b.seqs = append(b.seqs, b.nextSeq)
		b.vers = append(b.vers, b.version(r))
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
	for _, v := range b.newVers {
		delete(b.versions, v.key)
	}
	b.lastVersion = newVersion{}
	b.newVers = b.newVers[:0]
	b.nextSeq, b.nextRowid, b.nextVersion = b.seq0, b.rowid0, b.version0
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
	// lookupIDs adds to dups the ids of reqs[valid] that the ledger holds already, each with
	// the decision_seq of its entry (0 when it has none), in the same query.
	lookupIDs(ctx context.Context, reqs []pipeline.PostRequest, valid []int, dups map[string]uint64) error
	// write writes the batch: the entries b.posted (reverses, when not nil, gives the
	// transaction id each reverses) with their decision_seq and b.vers, their postings,
	// the versions rows b.newVers, the accounts b.undo created, and the new balance and
	// limit of the other accounts b.undo touched.
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
		c.book.undo, c.book.newVers = c.book.undo[:0], c.book.newVers[:0]
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
