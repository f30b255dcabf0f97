package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// writerLockKey is the PostgreSQL advisory lock that the writer of a ledger holds for as
// long as it is open ("fpld" in ASCII), with the hash of the schema as its second key, so
// that a second writer of the same tables fails at once.
const writerLockKey int32 = 0x6670_6c64

var _ pipeline.Ledger = (*PostgresStore)(nil)

// PostgresStore is the ledger in a PostgreSQL database, through pgx. It implements
// pipeline.Ledger and Store with the same decisions as SQLiteStore (the logic is shared):
// the store is the single writer of its database, holds every account in memory, and
// writes each Post batch in one database transaction on its own connection; the stored
// balances are a snapshot that it writes every few batches (pgsnapshot.go). Verify,
// Stats, Export and the lookup of Reverse read on other connections, in snapshots.
type PostgresStore struct {
	core

	url  string
	opts Options
	conn *pgx.Conn // the writer; nil when read-only
	tx   pgx.Tx    // the open batch transaction
	rd   reader

	bs balanceSnapshot // guarded by mu

	// scratch reused by Post, guarded by mu
	ids  []string
	cbuf copyBuf
	ac   accountColumns
	lc   limitColumns
}

type accountColumns struct {
	id, currency, kind      []string
	limit, balance, created []int64
}

type limitColumns struct {
	id    []string
	limit []int64
}

// OpenPostgres connects to the PostgreSQL database at url (postgres://user:pass@host:port/db
// or a key=value connection string), brings its schema up to date, takes the writer lock
// and loads the accounts into memory. With opts.ReadOnly it only reads: no migrations, no
// lock, and Post fails. Options that only SQLite has (Synchronous, page and cache sizes,
// checkpoints) are ignored.
func OpenPostgres(ctx context.Context, url string, opts Options) (*PostgresStore, error) {
	if url == "" {
		return nil, errors.New("ledger: open postgres: empty url")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &PostgresStore{url: url, opts: opts, core: core{book: newBook(opts.DefaultLimit), now: opts.Now}}
	s.bs.every = int64(opts.BalanceSnapshotEvery)
	if s.bs.every <= 0 {
		s.bs.every = defaultBalanceSnapshotEvery
	}
	s.wr = s
	s.rd = reader{dialect: dialectPostgres, closed: s.isClosed}
	if err := s.open(ctx); err != nil {
		s.closeDB()
		return nil, fmt.Errorf("ledger: open postgres %s: %w", redactURL(url), err)
	}
	if !opts.ReadOnly {
		if err := s.openAccounts(ctx, opts.Accounts); err != nil {
			s.Close()
			return nil, err
		}
		// Store what open added to the snapshot (the journal after it), so that the next
		// open reads none of it again.
		s.mu.Lock()
		err := s.writeSnapshot(ctx)
		s.mu.Unlock()
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// redactURL hides the password of a connection URL in messages.
func redactURL(u string) string {
	cfg, err := pgx.ParseConfig(u)
	if err == nil {
		if cfg.Password == "" {
			return u
		}
		return strings.Replace(u, cfg.Password, "xxxxx", 1)
	}
	// A connection string the driver refuses may still carry a password: hide it.
	if p, err := url.Parse(u); err == nil && p.Scheme != "" {
		return p.Redacted()
	}
	if i := strings.Index(u, "password="); i >= 0 {
		j := strings.IndexAny(u[i:], " &")
		if j < 0 {
			j = len(u) - i
		}
		return u[:i] + "password=xxxxx" + u[i+j:]
	}
	return "(connection string hidden: it does not parse)"
}

func (s *PostgresStore) open(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		return err
	}
	s.rd.pg = cfg
	if s.opts.ReadOnly {
		return s.rd.view(ctx, false, func(q, _ querier) error {
			var v int
			if err := queryRow(ctx, q, "SELECT coalesce(max(version), 0) FROM schema_migrations", nil, &v); err != nil {
				return fmt.Errorf("read schema version (is this a fraudpipe ledger?): %w", err)
			}
			if v != len(pgMigrations) {
				return fmt.Errorf("schema version %d, this program's is %d (open the ledger for writing once to migrate it)", v, len(pgMigrations))
			}
			return s.load(ctx, q)
		})
	}
	if s.conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		return err
	}
	var locked bool
	if err := s.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))", writerLockKey).Scan(&locked); err != nil {
		return fmt.Errorf("writer lock: %w", err)
	}
	if !locked {
		return errors.New("another process is writing to this ledger (it holds the writer lock)")
	}
	if s.opts.SynchronousCommit != "" {
		if _, err := s.conn.Exec(ctx, "SELECT set_config('synchronous_commit', $1, false)", s.opts.SynchronousCommit); err != nil {
			return fmt.Errorf("synchronous_commit %q: %w", s.opts.SynchronousCommit, err)
		}
	}
	if err := pgMigrate(ctx, s.conn); err != nil {
		return err
	}
	tx, err := s.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	return s.load(ctx, pgQuerier{tx})
}

// load reads every account, the versions, the last entry sequence number and the
// balances (loadBalances).
func (s *PostgresStore) load(ctx context.Context, q querier) error {
	rows, err := q.Query(ctx, `SELECT id, currency, kind, credit_limit, balance, coalesce(created_ts, 0) FROM accounts`)
	if err != nil {
		return fmt.Errorf("load accounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		a := &account{}
		var kind string
		if err := rows.Scan(&a.id, &a.currency, &kind, &a.limit, &a.balance, &a.created); err != nil {
			return fmt.Errorf("load accounts: %w", err)
		}
		a.kind = Kind(kind)
		a.snap = a.balance
		s.book.accounts[a.id] = a
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load accounts: %w", err)
	}
	rows.Close()
	rows, err = q.Query(ctx, `SELECT id, model, rules FROM versions`)
	if err != nil {
		return fmt.Errorf("load versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var model, rules string
		if err := rows.Scan(&id, &model, &rules); err != nil {
			return fmt.Errorf("load versions: %w", err)
		}
		s.book.addVersion(id, model, rules)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load versions: %w", err)
	}
	rows.Close()
	return s.loadBalances(ctx, q)
}

// Post posts approved transactions in order, with the semantics of SQLiteStore.Post: each
// request is Posted, Duplicate or Rejected, the batch is one database transaction, and on
// error nothing of it is posted and it may be retried.
func (s *PostgresStore) Post(ctx context.Context, reqs []pipeline.PostRequest) error {
	if len(reqs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil && !s.closed {
		return errors.New("ledger: post: the store is open read-only")
	}
	return s.postLocked(ctx, reqs, nil, nil)
}

// Reverse posts the reversing entry of the posted transaction txID, with the semantics of
// SQLiteStore.Reverse.
func (s *PostgresStore) Reverse(ctx context.Context, txID string, ts int64) (Reversal, error) {
	if s.conn == nil {
		return Reversal{}, errors.New("ledger: reverse: the store is open read-only")
	}
	return s.reverse(ctx, &s.rd, txID, ts)
}

// Balance returns an account as of the last committed Post (or, read-only, as of open),
// or an error wrapping ErrAccountNotFound.
func (s *PostgresStore) Balance(ctx context.Context, id string) (Account, error) {
	return s.balance(ctx, id)
}

// Verify re-checks every invariant from the stored entries; see SQLiteStore.Verify. An
// account's stored balance is checked against the sum of its postings up to the balance
// snapshot's position, the limit against the sum of all of them, and no two entries may
// share a sequence number (DuplicateSeq).
func (s *PostgresStore) Verify(ctx context.Context) error { return s.rd.verify(ctx) }

// Stats summarizes the ledger; see SQLiteStore.Stats.
func (s *PostgresStore) Stats(ctx context.Context) (Stats, error) { return s.rd.stats(ctx) }

// Export writes the entries posted at or after since as NDJSON; see SQLiteStore.Export.
func (s *PostgresStore) Export(ctx context.Context, since int64, w io.Writer) error {
	return s.rd.export(ctx, since, w)
}

// Sync writes the balance snapshot (the balances that changed since the last one), so
// that the next open reads no journal. Durability needs no Sync: a PostgreSQL commit is
// as durable as the server's synchronous_commit makes it (on, the default: flushed to its
// write-ahead log before COMMIT returns), and the journal is the authority.
func (s *PostgresStore) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.conn == nil || s.broken != nil:
		return nil // read-only, or unusable until reopened (which reads the journal)
	}
	return s.writeSnapshot(ctx)
}

// Close writes the balance snapshot and closes the connections, which releases the
// writer lock. It is safe to call twice.
func (s *PostgresStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.conn != nil && s.broken == nil && !s.conn.IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs = append(errs, s.writeSnapshot(ctx))
		cancel()
	}
	errs = append(errs, s.closeDB())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ledger: close postgres: %w", err)
	}
	return nil
}

func (s *PostgresStore) closeDB() error {
	var errs []error
	if s.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		errs = append(errs, s.conn.Close(ctx))
	}
	return errors.Join(errs...)
}

func (s *PostgresStore) begin(ctx context.Context) error {
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return err
	}
	s.tx = tx
	return nil
}

func (s *PostgresStore) lookupIDs(ctx context.Context, reqs []pipeline.PostRequest, valid []int, dups map[string]uint64) error {
	s.ids = s.ids[:0]
	for _, i := range valid {
		s.ids = append(s.ids, reqs[i].TxID)
	}
	if len(s.ids) == 0 {
		return nil
	}
	rows, err := s.tx.Query(ctx, `SELECT tx_id, coalesce(decision_seq, 0) FROM entries WHERE tx_id = ANY($1)`, s.ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		dups[id] = uint64(seq)
	}
	return rows.Err()
}

// write copies the entries and their postings (binary COPY, the fastest way in: a
// multi-row INSERT ... ON CONFLICT (tx_id) DO NOTHING of the entries cost three times as
// much in BenchmarkLedger), then sends the versions and account inserts, the changed
// limits and, when one is due, the balance snapshot (pgsnapshot.go) in one round trip,
// as multi-row statements from arrays (unnest). It checks every row count. The balances
// of existing accounts are not written: the journal is their authority.
//
// Idempotency does not rest on ON CONFLICT: the batch's ids were looked up in the same
// transaction, under the writer lock, so a duplicate never reaches COPY; if one did (a
// writer outside the lock), the UNIQUE tx_id constraint fails the COPY and so the whole
// batch, which is rolled back and may be retried: the outcome ON CONFLICT DO NOTHING with
// a row-count check would give, where a silently skipped row is an error too.
func (s *PostgresStore) write(ctx context.Context, reqs []pipeline.PostRequest, reverses []string, bk *book, now int64) error {
	ac, lc := &s.ac, &s.lc
	ac.id, ac.currency, ac.kind, ac.limit, ac.balance, ac.created = ac.id[:0], ac.currency[:0], ac.kind[:0], ac.limit[:0], ac.balance[:0], ac.created[:0]
	lc.id, lc.limit = lc.id[:0], lc.limit[:0]
	// Balances are written by the snapshot only (pgsnapshot.go). A new account's row holds
	// its balance at the snapshot's position: 0 when the stored snapshot is older than the
	// batch, its balance after the batch when the batch writes the snapshot.
	snapshot := s.bs.due(bk.nextSeq - 1)
	for _, u := range bk.undo {
		a := u.a
		if u.created {
			ac.id = append(ac.id, a.id)
			ac.currency = append(ac.currency, a.currency)
			ac.kind = append(ac.kind, string(a.kind))
			ac.limit = append(ac.limit, a.limit)
			if snapshot {
				ac.balance = append(ac.balance, a.balance)
			} else {
				ac.balance = append(ac.balance, 0)
			}
			ac.created = append(ac.created, a.created)
		} else if a.limit != u.limit {
			lc.id = append(lc.id, a.id)
			lc.limit = append(lc.limit, a.limit)
		}
	}
	if err := s.hook("postings"); err != nil {
		return fmt.Errorf("insert postings: %w", err)
	}
	if n := len(bk.posted); n > 0 {
		c := &s.cbuf
		c.reset()
		for j, i := range bk.posted {
			r := &reqs[i]
			c.row(9)
			c.int8(bk.seqs[j])
			c.text(r.TxID)
			c.int8(r.TS)
			c.int8(now)
			c.text(r.Currency.Code)
			c.int8(r.Amount)
			if reverses != nil && reverses[i] != "" {
				c.text(reverses[i])
			} else {
				c.null()
			}
			c.int8OrNull(int64(r.Seq)) // the bits of a uint64; 0 identifies no decision
			c.int4OrNull(bk.vers[j])
		}
		if err := c.copyIn(ctx, s.conn.PgConn(), copyEntries, n); err != nil {
			return fmt.Errorf("insert entries: %w", err)
		}
	}
	if n := len(bk.posted); n > 0 {
		c := &s.cbuf
		c.reset()
		for j, i := range bk.posted {
			r := &reqs[i]
			c.row(3)
			c.int8(bk.seqs[j])
			c.text(r.Payer)
			c.int8(-r.Amount)
			c.row(3)
			c.int8(bk.seqs[j])
			c.text(r.Payee)
			c.int8(r.Amount)
		}
		if err := c.copyIn(ctx, s.conn.PgConn(), copyPostings, 2*n); err != nil {
			return fmt.Errorf("insert postings: %w", err)
		}
	}
	var b pgx.Batch
	var checks []rowCheck
	if n := len(bk.newVers); n > 0 {
		ids, models, rules := make([]int64, n), make([]string, n), make([]string, n)
		for i, v := range bk.newVers {
			ids[i], models[i], rules[i] = v.id, v.key.model, v.key.rules
		}
		b.Queue(`INSERT INTO versions(id, model, rules) SELECT * FROM unnest($1::integer[], $2::text[], $3::text[])`, ids, models, rules)
		checks = append(checks, rowCheck{"insert versions", n})
	}
	if n := len(ac.id); n > 0 {
		b.Queue(`INSERT INTO accounts(id, currency, kind, credit_limit, balance, created_ts)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])`,
			ac.id, ac.currency, ac.kind, ac.limit, ac.balance, ac.created)
		checks = append(checks, rowCheck{"insert accounts", n})
	}
	if n := len(lc.id); n > 0 {
		b.Queue(`UPDATE accounts SET credit_limit = v.lim
			FROM unnest($1::text[], $2::bigint[]) AS v(id, lim) WHERE accounts.id = v.id`, lc.id, lc.limit)
		checks = append(checks, rowCheck{"update limits", n})
	}
	if snapshot {
		s.bs.prepare(bk.nextSeq-1, bk.undo)
		s.bs.queue(&b, &checks)
	}
	return execChecked(ctx, s.tx, &b, checks)
}

// The COPY statements of write; the column types are those copyBuf writes.
const (
	copyEntries = `COPY entries(seq, tx_id, ts, posted_at, currency, amount, reverses, decision_seq, version_id)
		FROM STDIN (FORMAT binary)`
	copyPostings = `COPY postings(entry_seq, account_id, amount) FROM STDIN (FORMAT binary)`
)

func (s *PostgresStore) commit(ctx context.Context) error {
	tx := s.tx
	s.tx = nil
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	s.bs.committed(s.book.undo)
	return nil
}

func (s *PostgresStore) rollback() error {
	s.bs.discard()
	if s.tx == nil {
		if s.conn.IsClosed() {
			return errConnClosed
		}
		return nil
	}
	tx := s.tx
	s.tx = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	if s.conn.IsClosed() {
		return errConnClosed
	}
	return nil
}
