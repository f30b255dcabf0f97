package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Account is the state of one ledger account.
type Account struct {
	ID       string
	Currency pipeline.Currency // fixed by the account's first posting
	Kind     Kind
	Limit    int64 // credit limit in minor units: a customer's balance stays >= -Limit
	Balance  int64 // minor units: credits minus debits
	Created  int64 // wall clock of the first posting, Unix ms
}

// Balance returns an account as of the last committed Post, or an error wrapping
// ErrAccountNotFound when nothing was ever posted to it.
func (s *SQLiteStore) Balance(ctx context.Context, id string) (Account, error) {
	if err := ctx.Err(); err != nil {
		return Account{}, fmt.Errorf("ledger: balance of %q: %w", id, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Account{}, ErrClosed
	}
	a := s.accounts[id]
	if a == nil {
		return Account{}, fmt.Errorf("ledger: balance of %q: %w", id, ErrAccountNotFound)
	}
	cur, ok := pipeline.LookupCurrency(a.currency)
	if !ok {
		cur = pipeline.Currency{Code: a.currency}
	}
	return Account{ID: a.id, Currency: cur, Kind: a.kind, Limit: a.limit, Balance: a.balance, Created: a.created}, nil
}

// Stats summarizes a ledger.
type Stats struct {
	Entries    int64           // posted transactions
	Accounts   map[Kind]int64  // accounts by kind
	Currencies []CurrencyStats // by currency code
}

// CurrencyStats is the volume posted in one currency.
type CurrencyStats struct {
	Currency string
	Entries  int64 // posted transactions
	Amount   int64 // their total amount, minor units
}

// Stats counts the entries and accounts in the ledger and the volume posted per currency.
// It reads a snapshot of the database and scans the entries.
func (s *SQLiteStore) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Accounts: make(map[Kind]int64)}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT kind, count(*) FROM accounts GROUP BY kind`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				return err
			}
			st.Accounts[Kind(k)] = n
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.QueryContext(ctx, `SELECT currency, count(*), sum(amount) FROM entries GROUP BY currency ORDER BY currency`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c CurrencyStats
			if err := rows.Scan(&c.Currency, &c.Entries, &c.Amount); err != nil {
				return err
			}
			st.Entries += c.Entries
			st.Currencies = append(st.Currencies, c)
		}
		return rows.Err()
	})
	if err != nil {
		return Stats{}, fmt.Errorf("ledger: stats: %w", err)
	}
	return st, nil
}

// readTx runs f in a read transaction on a reader connection: every query of f sees one
// snapshot of the database, whatever Post commits meanwhile.
func (s *SQLiteStore) readTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to lose
	return f(tx)
}

// Violation names an invariant of the ledger that Verify checks.
type Violation string

// The invariants Verify checks, in the order it checks them.
const (
	// DuplicateTxID means a transaction id has two entries.
	DuplicateTxID Violation = "duplicate_tx_id"
	// OrphanPosting means a posting's entry does not exist.
	OrphanPosting Violation = "orphan_posting"
	// UnknownAccount means a posting's account does not exist.
	UnknownAccount Violation = "unknown_account"
	// CurrencyMismatch means a posting's account has another currency than its entry.
	CurrencyMismatch Violation = "currency_mismatch"
	// UnbalancedEntry means an entry's postings do not sum to zero.
	UnbalancedEntry Violation = "unbalanced_entry"
	// EntryAmount means an entry's credits differ from its amount (or it has no postings).
	EntryAmount Violation = "entry_amount"
	// CurrencyImbalance means the postings of a currency do not sum to zero.
	CurrencyImbalance Violation = "currency_imbalance"
	// BalanceMismatch means an account's balance is not the sum of its postings.
	BalanceMismatch Violation = "balance_mismatch"
	// LimitExceeded means a customer account is below minus its limit.
	LimitExceeded Violation = "limit_exceeded"
)

// VerifyError is the first violation Verify found.
type VerifyError struct {
	Violation Violation
	Seq       int64  // the entry, when the violation is about one
	TxID      string // the entry's transaction id
	Account   string // the account, when the violation is about one
	Currency  string // the currency, for CurrencyImbalance
	Want, Got int64  // the amounts that should have been equal
}

// Error describes the violation.
func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ledger: verify: %s", e.Violation)
	if e.TxID != "" {
		fmt.Fprintf(&b, ": entry %d (tx %q)", e.Seq, e.TxID)
	} else if e.Seq != 0 {
		fmt.Fprintf(&b, ": entry %d", e.Seq)
	}
	if e.Account != "" {
		fmt.Fprintf(&b, ": account %q", e.Account)
	}
	if e.Currency != "" {
		fmt.Fprintf(&b, ": currency %s", e.Currency)
	}
	switch e.Violation {
	case DuplicateTxID:
		fmt.Fprintf(&b, ": %d entries", e.Got)
	case UnbalancedEntry, CurrencyImbalance:
		fmt.Fprintf(&b, ": postings sum to %d, want 0", e.Got)
	case EntryAmount:
		fmt.Fprintf(&b, ": credits %d, entry amount %d", e.Got, e.Want)
	case BalanceMismatch:
		fmt.Fprintf(&b, ": balance %d, postings sum to %d", e.Got, e.Want)
	case LimitExceeded:
		fmt.Fprintf(&b, ": balance %d below minus limit %d", e.Got, e.Want)
	}
	return b.String()
}

// errUnsorted stops the fast scan of postings in insertion order when they are not in
// entry order.
var errUnsorted = errors.New("postings not in entry order")

type verifyAccount struct {
	currency string
	kind     Kind
	limit    int64
	balance  int64
	sum      int64
}

// Verify recomputes the ledger from its entries and postings in one snapshot and checks
// that each transaction id has one entry, every posting belongs to an entry and an account
// of the entry's currency, every entry's postings sum to zero and credit its amount, every
// currency sums to zero, every account's balance is the sum of its postings and no
// customer account is below minus its limit. It returns a *VerifyError naming the first
// violation, nil when there is none, or another error when it could not read the ledger.
func (s *SQLiteStore) Verify(ctx context.Context) error {
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		if err := verifyUniqueIDs(ctx, tx); err != nil {
			return err
		}
		accts, err := verifyLoadAccounts(ctx, tx)
		if err != nil {
			return err
		}
		// Postings are written in entry order, so a scan in insertion order needs no sort.
		// If it stops, at a violation or at postings out of entry order, scan again
		// sorted: postings that something else wrote out of order are no violation.
		err = verifyEntries(ctx, tx, accts, "rowid")
		var ve *VerifyError
		if errors.Is(err, errUnsorted) || errors.As(err, &ve) {
			for _, a := range accts {
				a.sum = 0
			}
			err = verifyEntries(ctx, tx, accts, "entry_seq, rowid")
		}
		if err != nil {
			return err
		}
		return verifyAccounts(accts)
	})
	var ve *VerifyError
	if err != nil && !errors.As(err, &ve) {
		return fmt.Errorf("ledger: verify: %w", err)
	}
	return err
}

func verifyUniqueIDs(ctx context.Context, tx *sql.Tx) error {
	var id string
	var seq, n int64
	err := tx.QueryRowContext(ctx,
		`SELECT tx_id, min(seq), count(*) FROM entries GROUP BY tx_id HAVING count(*) > 1 ORDER BY min(seq) LIMIT 1`).
		Scan(&id, &seq, &n)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("find duplicate ids: %w", err)
	}
	return &VerifyError{Violation: DuplicateTxID, Seq: seq, TxID: id, Got: n}
}

func verifyLoadAccounts(ctx context.Context, tx *sql.Tx) (map[string]*verifyAccount, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, currency, kind, credit_limit, balance FROM accounts`)
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	defer rows.Close()
	accts := make(map[string]*verifyAccount)
	for rows.Next() {
		var id, kind string
		a := &verifyAccount{}
		if err := rows.Scan(&id, &a.currency, &kind, &a.limit, &a.balance); err != nil {
			return nil, fmt.Errorf("read accounts: %w", err)
		}
		a.kind = Kind(kind)
		accts[id] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	return accts, nil
}

type verifyPosting struct {
	seq     int64
	account string
	amount  int64
}

// verifyEntries merges the entries, in seq order, with the postings in the given order,
// which must turn out to be entry order, adds each posting to its account's sum, and checks
// each entry.
func verifyEntries(ctx context.Context, tx *sql.Tx, accts map[string]*verifyAccount, order string) error {
	erows, err := tx.QueryContext(ctx, `SELECT seq, tx_id, currency, amount FROM entries ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("read entries: %w", err)
	}
	defer erows.Close()
	prows, err := tx.QueryContext(ctx, `SELECT entry_seq, account_id, amount FROM postings ORDER BY `+order)
	if err != nil {
		return fmt.Errorf("read postings: %w", err)
	}
	defer prows.Close()

	var p verifyPosting
	havePosting, lastSeq := false, int64(-1<<63)
	nextPosting := func() error {
		if !prows.Next() {
			havePosting = false
			if err := prows.Err(); err != nil {
				return fmt.Errorf("read postings: %w", err)
			}
			return nil
		}
		if err := prows.Scan(&p.seq, &p.account, &p.amount); err != nil {
			return fmt.Errorf("read postings: %w", err)
		}
		if p.seq < lastSeq {
			return errUnsorted
		}
		lastSeq, havePosting = p.seq, true
		return nil
	}
	if err := nextPosting(); err != nil {
		return err
	}
	for erows.Next() {
		var seq, amount int64
		var id, cur string
		if err := erows.Scan(&seq, &id, &cur, &amount); err != nil {
			return fmt.Errorf("read entries: %w", err)
		}
		if havePosting && p.seq < seq {
			return &VerifyError{Violation: OrphanPosting, Seq: p.seq, Account: p.account}
		}
		var sum, credits int64
		for havePosting && p.seq == seq {
			a := accts[p.account]
			switch {
			case a == nil:
				return &VerifyError{Violation: UnknownAccount, Seq: seq, TxID: id, Account: p.account}
			case a.currency != cur:
				return &VerifyError{Violation: CurrencyMismatch, Seq: seq, TxID: id, Account: p.account}
			}
			a.sum += p.amount
			sum += p.amount
			if p.amount > 0 {
				credits += p.amount
			}
			if err := nextPosting(); err != nil {
				return err
			}
		}
		if sum != 0 {
			return &VerifyError{Violation: UnbalancedEntry, Seq: seq, TxID: id, Got: sum}
		}
		if credits != amount {
			return &VerifyError{Violation: EntryAmount, Seq: seq, TxID: id, Want: amount, Got: credits}
		}
	}
	if err := erows.Err(); err != nil {
		return fmt.Errorf("read entries: %w", err)
	}
	if havePosting {
		return &VerifyError{Violation: OrphanPosting, Seq: p.seq, Account: p.account}
	}
	return nil
}

// verifyAccounts checks the currency sums, then each account in id order.
func verifyAccounts(accts map[string]*verifyAccount) error {
	byCurrency := make(map[string]int64)
	for _, a := range accts {
		byCurrency[a.currency] += a.sum
	}
	curs := make([]string, 0, len(byCurrency))
	for c := range byCurrency {
		curs = append(curs, c)
	}
	slices.Sort(curs)
	for _, c := range curs {
		if byCurrency[c] != 0 {
			return &VerifyError{Violation: CurrencyImbalance, Currency: c, Got: byCurrency[c]}
		}
	}
	ids := make([]string, 0, len(accts))
	for id := range accts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		a := accts[id]
		if a.balance != a.sum {
			return &VerifyError{Violation: BalanceMismatch, Account: id, Want: a.sum, Got: a.balance}
		}
		if a.kind == KindCustomer && a.balance < -a.limit {
			return &VerifyError{Violation: LimitExceeded, Account: id, Want: a.limit, Got: a.balance}
		}
	}
	return nil
}
