package pipeline

// Outcome is what fraudpipe decided for a transaction. Higher is more severe.
type Outcome uint8

// Outcomes, in order of severity: a decision is the most severe outcome any stage asked for.
const (
	Approve Outcome = iota
	Review
	Decline
)

var outcomeNames = [...]string{"approve", "review", "decline"}

// String returns the outcome's name as written in decisions.
func (o Outcome) String() string { return outcomeNames[o] }

// ParseOutcome maps "approve", "review" or "decline" to an Outcome.
func ParseOutcome(s string) (Outcome, bool) {
	for i, n := range outcomeNames {
		if n == s {
			return Outcome(i), true
		}
	}
	return 0, false
}

// LedgerStatus is what the ledger stage did with a decision.
type LedgerStatus uint8

// Ledger statuses of CONTRACT.md.
const (
	LedgerSkipped   LedgerStatus = iota // not approved, nothing posted
	LedgerPosted                        // posted now
	LedgerRejected                      // approved by scoring, refused by the ledger (limit, currency)
	LedgerDuplicate                     // the transaction id was posted before; nothing posted now
)

var ledgerNames = [...]string{"skipped", "posted", "rejected", "duplicate"}

// String returns the status as written in decisions.
func (s LedgerStatus) String() string { return ledgerNames[s] }

// Decision is the outcome for one transaction (CONTRACT.md "Decision").
type Decision struct {
	Outcome  Outcome
	Score    float64 // model fraud probability, valid when HasScore
	HasScore bool
	Reasons  []string // most important first
	Ledger   LedgerStatus
	Model    string // model version, "" when no model ran
	Rules    string // rule set version, "" when no rules ran
	// ShadowModel is the version of a challenger scored beside the model, and ShadowScore
	// its score (valid when HasShadowScore): recorded, never acted on.
	ShadowModel    string
	ShadowScore    float64
	HasShadowScore bool
}

// Hit is one thing a scorer asks for: an outcome and the reason code that explains it.
// Outcome Approve means a tag: the reason is recorded, the decision is not changed.
type Hit struct {
	Outcome Outcome
	Reason  string
}
