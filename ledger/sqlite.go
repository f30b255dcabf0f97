package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Reason codes a rejected PostRequest carries in its Reason field.
const (
	// ReasonInsufficientFunds means the payment would take the payer below minus its limit.
	ReasonInsufficientFunds = "ledger:insufficient_funds"
	// ReasonCurrencyMismatch means the payer's or the payee's account holds another currency.
	ReasonCurrencyMismatch = "ledger:currency_mismatch"
	// ReasonInvalidRequest means an empty id, account or currency, or an amount <= 0.
	ReasonInvalidRequest = "ledger:invalid_request"
	// ReasonSameAccount means the payer and the payee are the same account.
	ReasonSameAccount = "ledger:same_account"
	// ReasonBalanceOverflow means a balance would leave the int64 range.
	ReasonBalanceOverflow = "ledger:balance_overflow"
)

var _ pipeline.Ledger = (*SQLiteStore)(nil)

// ErrClosed is returned by a store's methods after Close.
var ErrClosed = errors.New("ledger: store is closed")

// ErrAccountNotFound is returned (wrapped) by Balance for an account the ledger has never
// posted to.
var ErrAccountNotFound = errors.New("account not found")

// Settings of Options.Synchronous.
const (
	// SyncNormal commits without fsync: durable across a process crash, not power loss.
	SyncNormal = "normal"
	// SyncFull fsyncs the write-ahead log at every commit: durable across power loss.
	SyncFull = "full"
)

// Options configures OpenSQLite and OpenPostgres. Synchronous, BusyTimeout, CacheSizeKiB,
// MmapSize, PageSize and CheckpointInterval are SQLite's; SynchronousCommit and ReadOnly
// are PostgreSQL's. The zero value is usable: no credit for new customer accounts,
// synchronous "normal", a 5 s busy timeout and the default cache sizes.
type Options struct {
	// DefaultLimit returns the credit limit, in minor units of the currency, that a customer
	// account gets when it is created by its first posting: its balance may go down to
	// minus this and no further. Nil, or a negative result, means no credit (limit 0).
	// MajorUnitsLimit builds one from a decimal in major units such as "10000.00".
	DefaultLimit func(currency pipeline.Currency) int64

	// Synchronous is "normal" (default) or "full"; see the package documentation on
	// durability.
	Synchronous string

	// BusyTimeout is how long a statement waits for a lock another connection holds
	// (default 5 s).
	BusyTimeout time.Duration

	// CacheSizeKiB is the page cache of each connection in KiB (default 65536, 64 MiB).
	CacheSizeKiB int

	// MmapSize is how many bytes of the file are memory-mapped for reading (default
	// 256 MiB; negative disables mmap).
	MmapSize int64

	// PageSize is the page size in bytes of a new database file, a power of two from 512 to
	// 65536 (default 8192); an existing file keeps its own. With transaction ids that grow
	// in time (tx-000001, ULIDs, UUIDv7) 8 KiB pages cost the least per posting in
	// BenchmarkPost. With random ids (UUIDv4) every posting rewrites a page of the tx_id
	// index once the index outgrows a batch, so smaller pages cost less there.
	PageSize int

	// CheckpointInterval is how often a background goroutine copies the write-ahead log
	// into the database file while Post commits (default 200ms). Negative leaves
	// checkpoints to SQLite, which runs them inside a committing Post.
	CheckpointInterval time.Duration

	// Now returns the wall-clock time recorded as posted_at and created_ts (default
	// time.Now).
	Now func() time.Time

	// Accounts are created, or get their limit updated, when the store opens, and their
	// opening balances posted once against the funding account of their currency (see
	// AccountSpec and ReadAccountsFile).
	Accounts []AccountSpec

	// SynchronousCommit is PostgreSQL's synchronous_commit for the writer's session ("on",
	// "off", "local", "remote_write", "remote_apply"); empty keeps the server's setting.
	// PostgresStore only.
	SynchronousCommit string

	// BalanceSnapshotEvery is how many entries a PostgresStore posts between two
	// snapshots of the account balances (default 100,000). The balances are kept in memory
	// and derived from the journal; a snapshot bounds what a store reads of the journal when
	// it opens (the entries after the snapshot) at the cost of one row update per account
	// changed since the previous snapshot. PostgresStore only.
	BalanceSnapshotEvery int

	// ReadOnly opens a PostgresStore for reading only: no migrations, no writer lock, and
	// Post and Reverse fail. For the fraudpipe ledger commands beside a running pipeline.
	ReadOnly bool
}

// Kind is the kind of an account.
type Kind string

// Account kinds.
const (
	// KindCustomer is a payer's account, limited by its credit limit.
	KindCustomer Kind = "customer"
	// KindMerchant is a merchant's settlement account, without a limit.
	KindMerchant Kind = "merchant"
	// KindSystem is an account of the ledger itself (fees, suspense), without a limit. Post
	// never creates one.
	KindSystem Kind = "system"
)

// SQLiteStore is the ledger in an embedded SQLite file. It implements pipeline.Ledger.
// Post is meant for one goroutine (the engine's ledger stage) but every method is safe
// for concurrent use: a Post excludes Balance, and Verify and Stats read a snapshot on
// their own connections.
type SQLiteStore struct {
	path string
	opts Options

	w    *rawConn      // the single writer connection
	rd   reader        // read-only connections for Verify, Stats and Export
	ckpt *checkpointer // nil when SQLite checkpoints in the writer

	core // guarded by core.mu: the book of accounts and the batch protocol

	// scratch reused by Post, guarded by mu
	batch postBatch
	stmts map[stmtKey]*rawStmt
}

// OpenSQLite opens the ledger in the SQLite file at path, creating it if absent, brings
// its schema up to date and loads the accounts into memory. The store must be the only
// writer of the file.
func OpenSQLite(path string, opts Options) (*SQLiteStore, error) {
	if path == "" {
		return nil, errors.New("ledger: open sqlite: empty path")
	}
	if err := opts.normalize(); err != nil {
		return nil, fmt.Errorf("ledger: open sqlite %s: %w", path, err)
	}
	s := &SQLiteStore{
		path:  path,
		opts:  opts,
		core:  core{book: newBook(opts.DefaultLimit), now: opts.Now},
		stmts: make(map[stmtKey]*rawStmt),
	}
	s.wr = s
	s.rd = reader{dialect: dialectSQLite, closed: s.isClosed}
	if err := s.open(); err != nil {
		s.closeDB()
		return nil, fmt.Errorf("ledger: open sqlite %s: %w", path, err)
	}
	if err := s.openAccounts(context.Background(), opts.Accounts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (o *Options) normalize() error {
	switch strings.ToLower(o.Synchronous) {
	case "", SyncNormal:
		o.Synchronous = SyncNormal
	case SyncFull:
		o.Synchronous = SyncFull
	default:
		return fmt.Errorf("synchronous %q: want %q or %q", o.Synchronous, SyncNormal, SyncFull)
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.CacheSizeKiB <= 0 {
		o.CacheSizeKiB = 64 << 10
	}
	if o.MmapSize == 0 {
		o.MmapSize = 256 << 20
	} else if o.MmapSize < 0 {
		o.MmapSize = 0
	}
	switch {
	case o.PageSize == 0:
		o.PageSize = 8192
	case o.PageSize < 512 || o.PageSize > 65536 || o.PageSize&(o.PageSize-1) != 0:
		return fmt.Errorf("page size %d: want a power of two from 512 to 65536", o.PageSize)
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 200 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// uriPath escapes the characters that end or escape the path of a file: URI.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// pragmas returns the connection settings of the writer (readOnly false) or of a reader.
func (s *SQLiteStore) pragmas(readOnly bool) []string {
	p := []string{
		fmt.Sprintf("page_size = %d", s.opts.PageSize), // before journal_mode, for a new file
		fmt.Sprintf("busy_timeout = %d", s.opts.BusyTimeout.Milliseconds()),
		"journal_mode = WAL",
		"synchronous = " + s.opts.Synchronous,
		fmt.Sprintf("cache_size = %d", -s.opts.CacheSizeKiB),
		fmt.Sprintf("mmap_size = %d", s.opts.MmapSize),
		"temp_store = MEMORY",
		"foreign_keys = OFF",
		"journal_size_limit = 67108864", // truncate a log that grew past 64 MiB when it restarts
	}
	if readOnly {
		p = append(p[1:], "query_only = ON")
	}
	return p
}

func (s *SQLiteStore) open() error {
	var err error
	if s.w, err = openRaw(s.path); err != nil {
		return err
	}
	for _, p := range s.pragmas(false) {
		if err := s.w.query("PRAGMA "+p, func(*rawStmt) error { return nil }); err != nil {
			return fmt.Errorf("pragma %s: %w", p, err)
		}
	}
	var mode string
	if err := s.w.query("PRAGMA journal_mode", func(r *rawStmt) error { mode = r.columnText(0); return nil }); err != nil {
		return fmt.Errorf("journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	if err := migrate(s.w); err != nil {
		return err
	}
	if err := s.load(); err != nil {
		return err
	}
	if s.opts.CheckpointInterval > 0 {
		if err := s.w.exec("PRAGMA wal_autocheckpoint = 0"); err != nil {
			return err
		}
		if s.ckpt, err = startCheckpointer(s.path, s.pragmas(false), s.opts.CheckpointInterval); err != nil {
			return fmt.Errorf("start checkpointer: %w", err)
		}
	}
	q := url.Values{}
	for _, p := range s.pragmas(true) {
		q.Add("_pragma", strings.Replace(p, " = ", "(", 1)+")")
	}
	if s.rd.db, err = sql.Open("sqlite", "file:"+uriPath.Replace(s.path)+"?"+q.Encode()); err != nil {
		return err
	}
	s.rd.db.SetMaxOpenConns(4)
	s.rd.db.SetMaxIdleConns(1)
	return nil
}

// load reads every account, the versions and the last entry sequence number.
func (s *SQLiteStore) load() error {
	err := s.w.query(`SELECT rowid, id, currency, kind, credit_limit, balance, coalesce(created_ts, 0) FROM accounts`,
		func(r *rawStmt) error {
			a := &account{
				rowid: r.columnInt64(0), id: r.columnText(1), currency: r.columnText(2), kind: Kind(r.columnText(3)),
				limit: r.columnInt64(4), balance: r.columnInt64(5), created: r.columnInt64(6),
			}
			s.book.accounts[a.id] = a
			s.book.nextRowid = max(s.book.nextRowid, a.rowid+1)
			return nil
		})
	if err != nil {
		return fmt.Errorf("load accounts: %w", err)
	}
	err = s.w.query(`SELECT id, model, rules FROM versions`, func(r *rawStmt) error {
		s.book.addVersion(r.columnInt64(0), r.columnText(1), r.columnText(2))
		return nil
	})
	if err != nil {
		return fmt.Errorf("load versions: %w", err)
	}
	err = s.w.query(`SELECT coalesce(max(seq), 0) FROM entries`, func(r *rawStmt) error {
		s.book.nextSeq = r.columnInt64(0) + 1
		return nil
	})
	if err != nil {
		return fmt.Errorf("load last entry: %w", err)
	}
	return nil
}

// Sync makes every batch that Post has returned durable against power loss: it
// checkpoints the write-ahead log into the database file with fsync. With synchronous
// "full" every commit is durable already and Sync only shortens the log. Call it before a
// pipeline checkpoint is recorded.
func (s *SQLiteStore) Sync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ledger: sync: %w", err)
	}
	if s.ckpt != nil {
		s.ckpt.running.Lock()
		defer s.ckpt.running.Unlock()
	}
	var busy, logFrames, done int64
	err := s.w.query("PRAGMA wal_checkpoint(FULL)", func(r *rawStmt) error {
		busy, logFrames, done = r.columnInt64(0), r.columnInt64(1), r.columnInt64(2)
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: sync: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("ledger: sync: checkpoint blocked by a reader (%d of %d log frames copied)", done, logFrames)
	}
	return nil
}

// isClosed reports whether Close was called.
func (c *core) isClosed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.closed
}

// Close closes the store; Post returns ErrClosed afterwards. It is safe to call twice.
func (s *SQLiteStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.closeDB(); err != nil {
		return fmt.Errorf("ledger: close %s: %w", s.path, err)
	}
	return nil
}

func (s *SQLiteStore) closeDB() error {
	var errs []error
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.close())
	}
	if s.rd.db != nil {
		errs = append(errs, s.rd.db.Close())
	}
	for k, st := range s.stmts {
		st.close()
		delete(s.stmts, k)
	}
	// The writer closes last: the last connection to close checkpoints the whole log and
	// removes it.
	if s.w != nil {
		errs = append(errs, s.w.close())
	}
	return errors.Join(errs...)
}
