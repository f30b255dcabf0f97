package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pgMigrations bring a PostgreSQL ledger's schema from version i (the highest version in
// schema_migrations) to i+1. Append to the list; never edit an applied migration.
var pgMigrations = []string{
	// 1: accounts, entries (with the reversed transaction of a chargeback) and postings.
	`CREATE TABLE accounts (
		id           text PRIMARY KEY,
		currency     text NOT NULL,
		kind         text NOT NULL,    -- customer, merchant, system
		credit_limit bigint NOT NULL,  -- minor units; balance >= -credit_limit for customers
		balance      bigint NOT NULL,  -- minor units, the sum of the account's postings
		created_ts   bigint            -- wall clock, Unix ms
	) WITH (fillfactor = 70);         -- room for HOT updates of the balances
	CREATE TABLE entries (
		seq       bigint PRIMARY KEY,
		tx_id     text NOT NULL UNIQUE,
		ts        bigint NOT NULL,  -- event time, Unix ms
		posted_at bigint NOT NULL,  -- wall clock, Unix ms
		currency  text NOT NULL,
		amount    bigint NOT NULL,  -- minor units, > 0
		reverses  text UNIQUE       -- the transaction id a chargeback reverses
	);
	CREATE TABLE postings (
		entry_seq  bigint NOT NULL,
		account_id text NOT NULL,
		amount     bigint NOT NULL  -- signed minor units; an entry's postings sum to zero
	);
	CREATE INDEX postings_entry_seq ON postings(entry_seq);`,
	// 2: decision provenance, as in SQLite's version 3: the decision's sequence number and
	// its model and rules versions, by reference to the few pairs in versions. NULL for
	// entries that no decision posted and for those posted before this version. Adding a
	// nullable column rewrites nothing.
	`CREATE TABLE versions (
		id    integer PRIMARY KEY,
		model text NOT NULL,  -- "" for none
		rules text NOT NULL,  -- "" for none
		UNIQUE (model, rules)
	);
	ALTER TABLE entries ADD COLUMN decision_seq bigint, ADD COLUMN version_id integer; -- versions.id`,
	// 3: fewer index insertions a posting. The UNIQUE constraint on reverses indexed every
	// entry, NULLs included: a partial index holds the reversals only. The B-tree on
	// postings(entry_seq) took an insertion for every posting: postings are written in
	// entry order, so a BRIN index (a summary per 16 pages) finds an entry's postings as
	// well at almost no cost to write.
	`ALTER TABLE entries DROP CONSTRAINT entries_reverses_key;
	CREATE UNIQUE INDEX entries_reverses ON entries(reverses) WHERE reverses IS NOT NULL;
	DROP INDEX postings_entry_seq;
	CREATE INDEX postings_entry_seq ON postings USING brin (entry_seq) WITH (pages_per_range = 16, autosummarize = on);`,
	// 4: balances leave the batch's transaction. The journal (entries and postings) is the
	// authority; accounts.balance becomes a snapshot of the balances at the journal
	// position balance_snapshot.position, written every few batches, and a store adds
	// the postings after that position when it opens. checksum covers the snapshot (see
	// pgsnapshot.go); NULL, as this migration leaves it, makes the next open recompute
	// every balance from the journal. Until then the balances are those of the last
	// entry, as version 3 kept them.
	`CREATE TABLE balance_snapshot (
		one      boolean PRIMARY KEY DEFAULT true CHECK (one), -- a single row
		position bigint NOT NULL,  -- entries.seq at which accounts.balance is exact
		checksum bigint            -- of the balances and the position; NULL: unknown
	);
	INSERT INTO balance_snapshot(position) SELECT coalesce(max(seq), 0) FROM entries;`,
	// 5: one index insertion less an entry. Entries are written in seq order by the one
	// writer, which numbers them from the last under its lock: the B-tree of the primary
	// key cost every entry an insertion (about a quarter of the entry's COPY) to find
	// entries by seq, which only range scans do (the tail after the balance snapshot at
	// open, the postings' join in export). A BRIN index finds those ranges as well;
	// Verify checks that no seq repeats (duplicate_seq).
	`ALTER TABLE entries DROP CONSTRAINT entries_pkey;
	ALTER TABLE entries ALTER COLUMN seq SET NOT NULL;
	CREATE INDEX entries_seq ON entries USING brin (seq) WITH (pages_per_range = 16, autosummarize = on);`,
}

// migrationLockKey, with the hash of the schema, serializes migrations between processes
// ("fpmg").
const migrationLockKey int32 = 0x6670_6d67

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// pgMigrate applies the migrations the database lacks, each in its own transaction that
// also records its version.
func pgMigrate(ctx context.Context, c *pgx.Conn) error {
	if _, err := c.Exec(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for {
		done, err := pgMigrateOne(ctx, c)
		if err != nil || done {
			return err
		}
	}
}

func pgMigrateOne(ctx context.Context, c *pgx.Conn) (done bool, err error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	// Another process may be migrating: wait for it, then read the version it left.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", migrationLockKey); err != nil {
		return false, err
	}
	var v int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case v > len(pgMigrations):
		return false, fmt.Errorf("schema version %d is newer than this program's %d", v, len(pgMigrations))
	case v == len(pgMigrations):
		return true, nil
	}
	if _, err := tx.Exec(ctx, pgMigrations[v]); err != nil {
		return false, fmt.Errorf("migrate schema to version %d: %w", v+1, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations(version) VALUES ($1)", v+1); err != nil {
		return false, fmt.Errorf("migrate schema to version %d: %w", v+1, err)
	}
	return false, tx.Commit(ctx)
}
