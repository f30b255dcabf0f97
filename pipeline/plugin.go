package pipeline

import (
	"context"
	"errors"
)

// ErrEndOfInput is returned by a Source that has no more messages (a file read to its end).
var ErrEndOfInput = errors.New("end of input")

// Message is one raw input event and where it came from.
type Message struct {
	Data      []byte
	Pos       int64 // position in the source: byte offset, stream sequence, ...
	Partition int   // the source partition (shard, subject) it came from; 0 for a file
}

// Source reads raw events. The engine decodes and validates them, so a source only moves
// bytes and positions. ReadBatch returns ErrEndOfInput when a finite source is exhausted;
// a live source returns an empty batch when nothing arrived for a while (a fetch timeout,
// well under a second) and returns promptly once ctx is cancelled;
// the messages it returns stay valid until the ack function is called.
type Source interface {
	// Name identifies the source in dead letters and metrics.
	Name() string
	ReadBatch(ctx context.Context) ([]Message, AckFunc, error)
	Close() error
}

// AckFunc tells a source that every message of a batch was decided and made durable by every
// required sink (err == nil), or not (err != nil, the source may redeliver).
type AckFunc func(ctx context.Context, err error) error

// Sink receives decided events in input order. WriteBatch may buffer; Flush returns only
// when everything written before it is durable in the sink (or with an error). The engine
// acknowledges a batch to its source only after every sink has flushed it, so a sink that
// buffers loses nothing when the process dies. The events passed to WriteBatch stay valid
// until the next Flush returns; the slice holding them may be reused as soon as WriteBatch
// returns.
type Sink interface {
	WriteBatch(ctx context.Context, events []*Event) error
	Flush(ctx context.Context) error
	Close(ctx context.Context) error
}

// Eval is the working record of one transaction inside a partition worker: scorers read the
// transaction and earlier scorers' features and add features, a score and hits.
type Eval struct {
	Tx       *Transaction
	Features []float64 // indexed by the engine's FeatureSchema
	Score    float64
	HasScore bool
	// ShadowScore is a challenger's score (a shadow model): recorded in the decision as
	// shadow_score, never acted on.
	ShadowScore    float64
	HasShadowScore bool
	// Rules is the version of the rule set that decided, when a rules scorer sets it (rules
	// reloaded while running); "" leaves the version the engine was built with.
	Rules string
	Hits  []Hit
	// Late is set for a transaction later than the allowed lateness: scorers decide it from
	// the state as it is and must not add it to their state.
	Late bool
}

// SetScore records a model's score: the decision's score, or, for a shadow (challenger)
// model, its shadow score, which nothing acts on.
func (e *Eval) SetScore(p float64, shadow bool) {
	if shadow {
		e.ShadowScore, e.HasShadowScore = p, true
		return
	}
	e.Score, e.HasScore = p, true
}

// Scorer computes features and hits for one partition's transactions. It is called from
// that partition's goroutine only, so it keeps per-key state without locks.
type Scorer interface {
	Score(ev *Eval)
}

// ScorerFactory builds one Scorer per partition. Features it produces must be declared on
// the schema at construction (before the first partition is built) so indices are fixed.
type ScorerFactory interface {
	// NewScorer returns the scorer for one partition.
	NewScorer(partition int) (Scorer, error)
	// Version is what the decision's "model" or "rules" field reports ("" for neither).
	Version() (kind, version string)
}

// PostRequest asks the ledger to post one approved transaction: Amount minor units from the
// payer account to the payee (merchant settlement) account. The ledger fills Status and, when
// it rejects, Reason (a reason code such as "ledger:insufficient_funds").
type PostRequest struct {
	TxID     string
	TS       int64 // event time, Unix milliseconds
	Payer    string
	Payee    string
	Amount   int64 // minor units, > 0
	Currency Currency
	// Seq identifies the decision: the engine's sequence number of its event, the same when
	// a crashed run is replayed from its checkpoint. A ledger that stores it can tell a
	// replay of the decision that posted an entry from another event with the same id.
	Seq   uint64
	Model string // the model version that decided, "" for none
	Rules string // the rule set version that decided, "" for none
	// Partition is the source partition the transaction came from: a ledger sharded by
	// stream partition (scale-out) posts it in that partition's shard.
	Partition int
	Status    LedgerStatus
	Reason    string
}

// Ledger posts approved transactions as balanced double-entry postings, idempotent by
// transaction id. Post returns only after every posted entry of reqs is durable; it fills
// each request's Status (Posted, Rejected or Duplicate). The engine calls it from one
// goroutine.
type Ledger interface {
	Post(ctx context.Context, reqs []PostRequest) error
	Close() error
}

// Committer is implemented by sources that keep a read position upstream (a JetStream
// durable consumer). When the engine takes checkpoints it never calls a Committer's AckFunc;
// it calls Commit with the source position of each checkpoint once that checkpoint is
// durable, so upstream forgets only what a checkpoint can replay from. Without checkpoints
// the engine acknowledges each batch through its AckFunc after the sinks flushed it.
type Committer interface {
	Commit(ctx context.Context, pos []byte) error
}

// Responder is implemented by sources whose senders wait for their decision (the HTTP
// decision API). The engine calls Respond with every event of a batch, decided or refused,
// after the ledger made its postings durable and every sink flushed it. Respond must not
// keep the events: they are reused once it returns.
type Responder interface {
	Respond(events []Event)
}

// DecisionObserver is implemented by scorers that keep state about decisions (a card's
// recent declines): the partition calls Decided after each transaction's decision is made
// from the hits, from the partition's goroutine, never for a late transaction.
type DecisionObserver interface {
	Decided(ev *Eval, outcome Outcome)
}

// OrderedScorer computes features that cross cards, such as terminal and merchant risk
// from delayed feedback. The engine runs it in one goroutine over every transaction and
// feedback event in input order, before the partitions, so its features are the same in
// every run of the same input whatever the number of partitions. Its features are declared
// on the engine's schema like any scorer's; the partitions copy them into each Eval before
// the scorers run, so rules and models read them as features.<name>.
type OrderedScorer interface {
	// Features lists the schema indices of the features Score writes, in dst's order.
	Features() []int
	// Score writes a transaction's feature values into dst and, unless late, adds the
	// transaction to the state. A transaction id seen before is scored, not added again.
	Score(tx *Transaction, late bool, dst []float64)
	// Feedback applies a verdict on an earlier transaction.
	Feedback(fb *Feedback)
	Snapshotter
}

// Chargeback reverses a posted transaction that feedback confirmed as fraud. It answers
// LedgerPosted when it reversed it, LedgerDuplicate when it was reversed before,
// LedgerSkipped when the transaction was never posted (it was declined), LedgerRejected
// with a reason when the reversal would break a limit. An error stops the engine, which
// resumes from its last checkpoint: a Chargeback must be idempotent.
type Chargeback func(ctx context.Context, fb *Feedback) (status LedgerStatus, reason string, err error)
