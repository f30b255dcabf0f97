package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

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
	return s.balance(ctx, id)
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
func (s *SQLiteStore) Stats(ctx context.Context) (Stats, error) { return s.rd.stats(ctx) }

func (rd *reader) stats(ctx context.Context) (Stats, error) {
	st := Stats{Accounts: make(map[Kind]int64)}
	err := rd.view(ctx, false, func(tx, _ querier) error {
		rows, err := tx.Query(ctx, `SELECT kind, count(*) FROM accounts GROUP BY kind`)
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
		rows, err = tx.Query(ctx, `SELECT currency, count(*), CAST(sum(amount) AS BIGINT) FROM entries GROUP BY currency ORDER BY currency`)
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

// dialect is the SQL flavour of a store's database.
type dialect uint8

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// ph returns the n-th (from 1) query parameter placeholder.
func (d dialect) ph(n int) string {
	if d == dialectPostgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// rows is a result set of a querier: *sql.Rows (wrapped) or pgx.Rows.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// querier runs queries in one read-only transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (rows, error)
}

// queryRow runs a query and scans its first row; it returns errNoRows when there is none.
func queryRow(ctx context.Context, q querier, query string, args []any, dest ...any) error {
	r, err := q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer r.Close()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return err
		}
		return errNoRows
	}
	if err := r.Scan(dest...); err != nil {
		return err
	}
	r.Close()
	return r.Err()
}

var errNoRows = errors.New("no rows")

type sqlQuerier struct{ tx *sql.Tx }

func (q sqlQuerier) Query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := q.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

type pgQuerier struct{ tx pgx.Tx }

func (q pgQuerier) Query(ctx context.Context, query string, args ...any) (rows, error) {
	return q.tx.Query(ctx, query, args...)
}

// reader runs the read side of a store (Verify, Stats, Export, the lookup of Reverse) on
// connections of its own, in snapshots that Post does not block: a database/sql pool for
// SQLite, pgx connections made per read for PostgreSQL.
type reader struct {
	dialect dialect
	closed  func() bool
	db      *sql.DB         // SQLite
	pg      *pgx.ConnConfig // PostgreSQL
}

// view runs f in a read-only snapshot of the database. f gets two queriers that see the
// same snapshot, so that it can read two result sets side by side: in SQLite they are
// one transaction, in PostgreSQL (whose connections run one query at a time) the second
// connection imports the snapshot of the first. two false gives f the first only.
func (rd *reader) view(ctx context.Context, two bool, f func(a, b querier) error) error {
	if rd.closed() {
		return ErrClosed
	}
	return rd.viewOpen(ctx, two, f)
}

// viewOpen is view for a caller that holds the store's mutex and checked it is open.
func (rd *reader) viewOpen(ctx context.Context, two bool, f func(a, b querier) error) error {
	if rd.dialect == dialectSQLite {
		tx, err := rd.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // read-only: nothing to lose
		q := sqlQuerier{tx}
		return f(q, q)
	}
	begin := func() (*pgx.Conn, pgx.Tx, error) {
		c, err := pgx.ConnectConfig(ctx, rd.pg)
		if err != nil {
			return nil, nil, err
		}
		tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			c.Close(context.Background())
			return nil, nil, err
		}
		return c, tx, nil
	}
	ca, a, err := begin()
	if err != nil {
		return err
	}
	defer ca.Close(context.Background())
	if !two {
		return f(pgQuerier{a}, pgQuerier{a})
	}
	var snap string
	if err := a.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snap); err != nil {
		return fmt.Errorf("export snapshot: %w", err)
	}
	cb, b, err := begin()
	if err != nil {
		return err
	}
	defer cb.Close(context.Background())
	if _, err := b.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(snap, "'", "''")+"'"); err != nil {
		return fmt.Errorf("import snapshot: %w", err)
	}
	return f(pgQuerier{a}, pgQuerier{b})
}

// Violation names an invariant of the ledger that Verify checks.
type Violation string

// The invariants Verify checks, in the order it checks them.
const (
	// DuplicateTxID means a transaction id has two entries.
	DuplicateTxID Violation = "duplicate_tx_id"
	// DuplicateSeq means two entries have the same sequence number (PostgreSQL, whose
	// entries have no unique index on seq: the writer numbers them).
	DuplicateSeq Violation = "duplicate_seq"
	// UnknownVersion means an entry's version_id names no row of versions.
	UnknownVersion Violation = "unknown_version"
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
	// DuplicateReversal means a transaction has two reversing entries.
	DuplicateReversal Violation = "duplicate_reversal"
	// ReversalUnknown means a reversing entry names a transaction with no earlier entry, or
	// one that is itself a reversal.
	ReversalUnknown Violation = "reversal_unknown"
	// ReversalMismatch means a reversing entry's postings are not the negation of its
	// original's.
	ReversalMismatch Violation = "reversal_mismatch"
)

// VerifyError is the first violation Verify found.
type VerifyError struct {
	Violation Violation
	Seq       int64  // the entry, when the violation is about one
	TxID      string // the entry's transaction id
	Reverses  string // the reversed transaction id, for the reversal violations
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
	if e.Reverses != "" {
		fmt.Fprintf(&b, ": reverses %q", e.Reverses)
	}
	if e.Account != "" {
		fmt.Fprintf(&b, ": account %q", e.Account)
	}
	if e.Currency != "" {
		fmt.Fprintf(&b, ": currency %s", e.Currency)
	}
	switch e.Violation {
	case DuplicateTxID, DuplicateReversal, DuplicateSeq:
		fmt.Fprintf(&b, ": %d entries", e.Got)
	case UnknownVersion:
		fmt.Fprintf(&b, ": version_id %d is not in versions", e.Got)
	case ReversalMismatch:
		fmt.Fprintf(&b, ": original and reversal sum to %d, want 0", e.Got)
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
	balance  int64 // stored: as of the entry upTo of verifyEntries
	sum      int64 // of all its postings
	stored   int64 // of its postings up to the entry upTo
}

// Verify recomputes the ledger from its entries and postings in one snapshot and checks
// that each transaction id has one entry, every posting belongs to an entry and an account
// of the entry's currency, every entry's postings sum to zero and credit its amount, every
// reversing entry negates an earlier entry that no other reverses, every currency sums to
// zero, every account's balance is the sum of its postings and no customer account is
// below minus its limit. It returns a *VerifyError naming the first violation, nil when
// there is none, or another error when it could not read the ledger.
func (s *SQLiteStore) Verify(ctx context.Context) error { return s.rd.verify(ctx) }

func (rd *reader) verify(ctx context.Context) error {
	err := rd.view(ctx, true, func(tx, ptx querier) error {
		if err := verifyUniqueIDs(ctx, tx); err != nil {
			return err
		}
		if err := verifyVersions(ctx, tx); err != nil {
			return err
		}
		revs, err := verifyLoadReversals(ctx, tx)
		if err != nil {
			return err
		}
		accts, err := verifyLoadAccounts(ctx, tx)
		if err != nil {
			return err
		}
		// SQLite's stored balances are those of the last entry; PostgreSQL's those of
		// the balance snapshot's position (pgsnapshot.go), none without a snapshot.
		upTo := int64(math.MaxInt64)
		if rd.dialect == dialectPostgres {
			if err := queryRow(ctx, tx, `SELECT position FROM balance_snapshot`, nil, &upTo); errors.Is(err, errNoRows) {
				upTo = -1
			} else if err != nil {
				return fmt.Errorf("read balance snapshot: %w", err)
			}
		}
		if rd.dialect == dialectPostgres {
			err = verifyEntries(ctx, tx, ptx, accts, revs, "entry_seq", upTo)
		} else {
			// Postings are written in entry order, so a scan in insertion order needs no
			// sort. If it stops, at a violation or at postings out of entry order, scan
			// again sorted: postings that something else wrote out of order are no
			// violation.
			err = verifyEntries(ctx, tx, ptx, accts, revs, "rowid", upTo)
			var ve *VerifyError
			if errors.Is(err, errUnsorted) || errors.As(err, &ve) {
				for _, a := range accts {
					a.sum, a.stored = 0, 0
				}
				revs.reset()
				err = verifyEntries(ctx, tx, ptx, accts, revs, "entry_seq, rowid", upTo)
			}
		}
		if err != nil {
			return err
		}
		return verifyAccounts(accts, upTo >= 0)
	})
	var ve *VerifyError
	if err != nil && !errors.As(err, &ve) {
		return fmt.Errorf("ledger: verify: %w", err)
	}
	return err
}

// verifyReversals tracks reversed transactions while the entries stream by.
type verifyReversals struct {
	reversed map[string]int64            // reversed tx id -> the reversing entry's seq
	net      map[string]map[string]int64 // reversed tx id -> account -> net of both entries
	seen     map[string]bool             // reversed tx ids whose original was seen
}

func (v *verifyReversals) reset() {
	clear(v.net)
	clear(v.seen)
}

func verifyLoadReversals(ctx context.Context, tx querier) (*verifyReversals, error) {
	v := &verifyReversals{reversed: map[string]int64{}, net: map[string]map[string]int64{}, seen: map[string]bool{}}
	rows, err := tx.Query(ctx, `SELECT seq, tx_id, reverses FROM entries WHERE reverses IS NOT NULL ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("read reversals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var id, orig string
		if err := rows.Scan(&seq, &id, &orig); err != nil {
			return nil, fmt.Errorf("read reversals: %w", err)
		}
		if _, dup := v.reversed[orig]; dup {
			return nil, &VerifyError{Violation: DuplicateReversal, Seq: seq, TxID: id, Reverses: orig, Got: 2}
		}
		v.reversed[orig] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read reversals: %w", err)
	}
	return v, nil
}

func verifyUniqueIDs(ctx context.Context, tx querier) error {
	var id string
	var seq, n int64
	err := queryRow(ctx, tx,
		`SELECT tx_id, min(seq), count(*) FROM entries GROUP BY tx_id HAVING count(*) > 1 ORDER BY min(seq) LIMIT 1`, nil,
		&id, &seq, &n)
	switch {
	case errors.Is(err, errNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("find duplicate ids: %w", err)
	}
	return &VerifyError{Violation: DuplicateTxID, Seq: seq, TxID: id, Got: n}
}

// verifyVersions finds the first entry whose version_id names no row of versions.
func verifyVersions(ctx context.Context, tx querier) error {
	var id string
	var seq, version int64
	err := queryRow(ctx, tx, `SELECT e.seq, e.tx_id, e.version_id FROM entries e WHERE e.version_id IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.id = e.version_id) ORDER BY e.seq LIMIT 1`, nil,
		&seq, &id, &version)
	switch {
	case errors.Is(err, errNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("find unknown versions: %w", err)
	}
	return &VerifyError{Violation: UnknownVersion, Seq: seq, TxID: id, Got: version}
}

func verifyLoadAccounts(ctx context.Context, tx querier) (map[string]*verifyAccount, error) {
	rows, err := tx.Query(ctx, `SELECT id, currency, kind, credit_limit, balance FROM accounts`)
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
// which must turn out to be entry order, adds each posting to its account's sum (and to
// its stored sum up to the entry upTo), and checks each entry.
func verifyEntries(ctx context.Context, tx, ptx querier, accts map[string]*verifyAccount, revs *verifyReversals, order string, upTo int64) error {
	erows, err := tx.Query(ctx, `SELECT seq, tx_id, currency, amount, coalesce(reverses, '') FROM entries ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("read entries: %w", err)
	}
	defer erows.Close()
	prows, err := ptx.Query(ctx, `SELECT entry_seq, account_id, amount FROM postings ORDER BY `+order)
	if err != nil {
		return fmt.Errorf("read postings: %w", err)
	}
	defer prows.Close()

	var p verifyPosting
	havePosting, lastSeq, lastEntry := false, int64(-1<<63), int64(-1<<63)
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
		var id, cur, reverses string
		if err := erows.Scan(&seq, &id, &cur, &amount, &reverses); err != nil {
			return fmt.Errorf("read entries: %w", err)
		}
		if seq == lastEntry {
			return &VerifyError{Violation: DuplicateSeq, Seq: seq, TxID: id, Got: 2}
		}
		lastEntry = seq
		// The postings of a reversed entry and of its reversal add up in net[original].
		var net map[string]int64
		if reverses != "" {
			if !revs.seen[reverses] {
				return &VerifyError{Violation: ReversalUnknown, Seq: seq, TxID: id, Reverses: reverses}
			}
			net = revs.net[reverses]
		} else if _, ok := revs.reversed[id]; ok {
			revs.seen[id] = true
			net = make(map[string]int64, 2)
			revs.net[id] = net
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
			if p.seq <= upTo {
				a.stored += p.amount
			}
			sum += p.amount
			if net != nil {
				net[p.account] += p.amount
			}
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
		if reverses != "" {
			accts := make([]string, 0, len(net))
			for acct := range net {
				accts = append(accts, acct)
			}
			slices.Sort(accts)
			for _, acct := range accts {
				if net[acct] != 0 {
					return &VerifyError{Violation: ReversalMismatch, Seq: seq, TxID: id, Reverses: reverses, Account: acct, Got: net[acct]}
				}
			}
			delete(revs.net, reverses)
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

// verifyAccounts checks the currency sums, then each account in id order: its stored
// balance (when stored) and its limit.
func verifyAccounts(accts map[string]*verifyAccount, stored bool) error {
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
		if stored && a.balance != a.stored {
			return &VerifyError{Violation: BalanceMismatch, Account: id, Want: a.stored, Got: a.balance}
		}
		if a.kind == KindCustomer && a.sum < -a.limit {
			return &VerifyError{Violation: LimitExceeded, Account: id, Want: a.limit, Got: a.sum}
		}
	}
	return nil
}
