package alert

import (
	"context"
	"log/slog"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// Log writes one structured log line (level WARN, message "fraud alert") per matching
// decision. It is a sinks.Writer that never fails.
type Log struct {
	route  Route
	logger *slog.Logger
	seen   *dedup
}

// NewLog returns a log alerter; a nil logger means slog.Default().
func NewLog(route Route, logger *slog.Logger, dedupSize int) *Log {
	if logger == nil {
		logger = slog.Default()
	}
	return &Log{route: route, logger: logger, seen: newDedup(dedupSize)}
}

// Write logs the alerts of batch.
func (l *Log) Write(ctx context.Context, batch []*pipeline.Event) ([]error, error) {
	for _, ev := range batch {
		if !l.route.Match(ev) || l.seen.has(ev.Tx.ID) {
			continue
		}
		d := &ev.Decision
		attrs := []slog.Attr{
			slog.String("id", ev.Tx.ID), slog.String("ts", ev.Tx.TSText), slog.String("decision", d.Outcome.String()),
			slog.Any("reasons", d.Reasons), slog.String("card_id", ev.Tx.CardID), slog.String("merchant_id", ev.Tx.MerchantID),
			slog.Int64("amount_minor", ev.Tx.Amount), slog.String("currency", ev.Tx.Currency.Code),
		}
		if d.HasScore {
			attrs = append(attrs, slog.Float64("score", d.Score))
		}
		l.logger.LogAttrs(ctx, slog.LevelWarn, "fraud alert", attrs...)
		l.seen.add(ev.Tx.ID)
	}
	return make([]error, len(batch)), nil
}

// Close does nothing.
func (l *Log) Close(context.Context) error { return nil }
