// Package ledger is fraudpipe's double-entry ledger: approved payments are posted to it as
// balanced entries, idempotently by transaction id, and refused when they would take a
// customer account past its limit.
//
// # Model
//
// Every posted transaction is one entry with two postings in the transaction's currency:
// the payer account is debited (-amount) and the payee, the merchant's settlement account,
// is credited (+amount). The postings of an entry, and so of every currency, sum to zero.
// Amounts are signed integers of minor units (cents), never floating point.
//
// Accounts are created on first use: a payer as kind customer with the default limit of its
// currency (Options.DefaultLimit), a payee as kind merchant. An account's currency is fixed
// by its first posting; a later transaction in another currency is rejected with
// ReasonCurrencyMismatch. A customer account's balance may reach exactly -limit and no
// lower: a payment that would go further is rejected with ReasonInsufficientFunds. Merchant
// and system accounts have no limit (their credit_limit column is 0 and is not checked).
//
// A chargeback (Reverse) is a new entry, "reversal:" + the transaction id, whose postings
// negate the original's and whose reverses column names it; a transaction is reversed at
// most once. Opening balances and limits come from a reference file (ReadAccountsFile,
// Options.Accounts): each opening balance is an entry "opening:" + the account id against
// the currency's system account "system:funding:" + code, so every currency still sums to
// zero.
//
// # Provenance and repeats
//
// An entry that a decision posted records the decision: decision_seq, the engine's
// sequence number of the event (PostRequest.Seq), and the model and rules versions that
// decided (PostRequest.Model, Rules). The versions repeat for millions of entries, so an
// entry holds version_id, a row of the small versions table (id, model, rules) that the
// book keeps in memory; Export joins it back. A request whose transaction id has an entry
// already posts nothing; it answers LedgerPosted when the entry's decision_seq is its Seq
// (the same decision, replayed from a checkpoint after a crash: it was this decision that
// posted the entry) and LedgerDuplicate otherwise (another event with the same id). Seq 0
// identifies no decision and always answers LedgerDuplicate. The answer needs no query of
// its own: the lookup of a batch's ids that finds the duplicates reads their
// decision_seq too.
//
// # Two stores, one decision logic
//
// The decisions are made in memory by one piece of code that both stores share (book.go:
// the accounts, the limit, currency and duplicate checks, and the undo of a failed batch;
// core runs a batch: begin, look up ids, decide, write, commit). A store only looks up
// which ids it holds and writes what was decided: SQLiteStore (below) and PostgresStore
// (OpenPostgres), which writes a batch on one pgx connection in one transaction: the
// entries and postings by binary COPY (the data encoded directly into one reused buffer,
// pgcopy.go), new versions and new accounts as multi-row statements from arrays, each
// row count checked; a duplicate id that got past the lookup fails the batch on the
// UNIQUE tx_id constraint. It does not update the balances in a batch: the journal is
// their authority, and the accounts table holds a snapshot of them at one entry that
// the writer writes every Options.BalanceSnapshotEvery entries and on Close; a store
// that opens adds the postings after it (pgsnapshot.go).
// Its schema is migrated on open from a versioned list (schema_migrations), and the writer
// holds a PostgreSQL advisory lock so that a second writer fails at once. Verify, Stats,
// Export and Reverse's lookup read in REPEATABLE READ snapshots on other connections.
// docs/ledger.md describes the model, invariants, durability and costs for operators.
//
// # The SQLite store
//
// SQLiteStore (OpenSQLite) keeps the ledger in one SQLite file through the pure-Go
// modernc.org/sqlite. The store is the file's single writer: it holds every account's
// balance, limit and rowid, and the versions, in memory, loaded at open, decides each
// request there, and writes a whole Post batch in one database transaction (group
// commit) with multi-row statements of up to 256 rows: INSERT for entries, postings and
// new accounts, one UPDATE by rowid for the balances of the other accounts the batch
// touched. Transaction ids are not held in memory: duplicates, with their decision_seq,
// are found with one indexed lookup per 256 ids of the batch. Post returns after COMMIT;
// when the commit fails the in-memory balances are restored and no request is reported
// posted.
//
// The writer drives SQLite's C API (modernc.org/sqlite/lib) directly rather than through
// database/sql, which on this path cost as much as SQLite itself; Verify and Stats read
// through database/sql on their own connections, in WAL snapshots that Post does not block.
// A background goroutine checkpoints the write-ahead log into the database file
// (Options.CheckpointInterval), so that Post does not wait for the copy and its fsyncs.
//
// Transaction ids that grow with time (tx-000001, ULIDs, UUIDv7) are appended to the
// tx_id index. Random ids (UUIDv4) land on random pages of it: once the index is much
// larger than a batch every posting rewrites a page of it into the log, and the cost of a
// posting grows about tenfold (see BenchmarkPost).
//
// # Durability
//
// The database runs in WAL mode. With Options.Synchronous "normal" (the default) a commit
// appends to the write-ahead log without waiting for fsync: a committed batch survives a
// crash of the process, but an operating-system crash or power loss can lose the last
// batches committed before it (the database stays consistent, it only goes back in time).
// That is the trade-off the pipeline can afford if it calls SQLiteStore.Sync before it
// records a checkpoint: Sync checkpoints the log with fsync, so every batch posted before
// the checkpoint survives power loss, and batches after it that are lost are posted again
// when the sources are replayed from the checkpoint (the ledger is idempotent by
// transaction id). Synchronous "full" fsyncs the log on every commit instead: every batch
// Post returns is durable against power loss, at the cost of one fsync per batch.
package ledger
