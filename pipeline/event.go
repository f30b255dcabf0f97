package pipeline

// Event is one input message on its way through the engine: decoded into Tx, or refused
// with Err (a dead letter); then decided. Seq is its position in the engine's input order.
type Event struct {
	Seq    uint64
	Source string
	Pos    int64
	// SourcePartition is the source partition the event came from, for the watermark.
	SourcePartition int
	Raw             []byte       // the input bytes; kept for dead letters
	Err             *DecodeError // non-nil: a dead letter, never decided
	Tx              Transaction
	Feedback        *Feedback // non-nil: a feedback event, not a transaction: never decided
	Cross           []float64 // the values of the ordered scorers' features, in their order
	Decision        Decision
	Features        []float64 // the feature values, indexed by the engine's FeatureSchema
	Late            bool
}

// DeadLetter reports whether the event was refused instead of decided.
func (e *Event) DeadLetter() bool { return e.Err != nil }
