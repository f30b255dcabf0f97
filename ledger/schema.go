package ledger

import "fmt"

// migrations bring the schema from version i (PRAGMA user_version) to i+1. Append to the
// list; never edit an applied migration.
var migrations = []string{
	// 1: accounts, entries and postings.
	`CREATE TABLE IF NOT EXISTS accounts (
		id           TEXT PRIMARY KEY,
		currency     TEXT NOT NULL,
		kind         TEXT NOT NULL,    -- customer, merchant, system
		credit_limit INTEGER NOT NULL, -- minor units; balance >= -credit_limit for customers
		balance      INTEGER NOT NULL, -- minor units, the sum of the account's postings
		created_ts   INTEGER           -- wall clock, Unix ms
	);
	CREATE TABLE IF NOT EXISTS entries (
		seq       INTEGER PRIMARY KEY,
		tx_id     TEXT NOT NULL UNIQUE,
		ts        INTEGER NOT NULL, -- event time, Unix ms
		posted_at INTEGER NOT NULL, -- wall clock, Unix ms
		currency  TEXT NOT NULL,
		amount    INTEGER NOT NULL  -- minor units, > 0
	);
	CREATE TABLE IF NOT EXISTS postings (
		entry_seq  INTEGER NOT NULL,
		account_id TEXT NOT NULL,
		amount     INTEGER NOT NULL -- signed minor units; an entry's postings sum to zero
	);`,
	// 2: chargebacks. A reversing entry names the transaction id it reverses; a transaction
	// is reversed at most once.
	`ALTER TABLE entries ADD COLUMN reverses TEXT;
	CREATE UNIQUE INDEX IF NOT EXISTS entries_reverses ON entries(reverses) WHERE reverses IS NOT NULL;`,
	// 3: decision provenance. decision_seq is the engine's sequence number of the decision
	// that posted the entry; version_id names the model and rules versions that decided it,
	// a row of versions, the few pairs that millions of entries repeat. Both are NULL for
	// entries that no decision posted (reversals, opening balances) and for entries posted
	// before this version.
	`CREATE TABLE IF NOT EXISTS versions (
		id    INTEGER PRIMARY KEY,
		model TEXT NOT NULL, -- "" for none
		rules TEXT NOT NULL, -- "" for none
		UNIQUE (model, rules)
	);
	ALTER TABLE entries ADD COLUMN decision_seq INTEGER;
	ALTER TABLE entries ADD COLUMN version_id INTEGER; -- versions.id`,
}

// migrate applies the migrations the database lacks, each in its own transaction.
func migrate(c *rawConn) error {
	v, err := userVersion(c)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program's %d", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if err := applyMigration(c, v); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	return nil
}

func userVersion(c *rawConn) (int, error) {
	var v int
	err := c.query("PRAGMA user_version", func(r *rawStmt) error { v = int(r.columnInt64(0)); return nil })
	return v, err
}

func applyMigration(c *rawConn, v int) (err error) {
	if err := c.exec("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil && c.inTx() {
			_ = c.exec("ROLLBACK")
		}
	}()
	// Another process may have migrated while this one waited for the lock.
	cur, err := userVersion(c)
	if err != nil {
		return err
	}
	if cur == v {
		if err := c.exec(migrations[v]); err != nil {
			return err
		}
		if err := c.exec(fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			return err
		}
	}
	return c.exec("COMMIT")
}
