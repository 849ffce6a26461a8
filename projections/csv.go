package projections

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"time"
)

// csvHeader is the header of the "Export credit movements" file (API.md section 7).
var csvHeader = []string{"occurred_at", "event_id", "type", "cause", "user_id", "reference", "description", "amount", "balance_after", "currency"}

// WriteMovementsCSV streams the account's movements matching f to w as CSV: the csvHeader
// line, then one row per movement in stream order, times in RFC 3339 UTC and amounts as
// exact decimal strings. Memory does not grow with the row count (see EachMovement).
func (db *DB) WriteMovementsCSV(ctx context.Context, w io.Writer, accountID string, f MovementFilter) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	record := make([]string, len(csvHeader))
	err := db.EachMovement(ctx, accountID, f, func(m Movement) error {
		fillRecord(record, m)
		return cw.Write(record)
	})
	if err != nil {
		return fmt.Errorf("write csv of %s: %w", accountID, err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv of %s: %w", accountID, err)
	}
	return nil
}

// fillRecord writes m into record in csvHeader order, reusing the slice.
func fillRecord(record []string, m Movement) {
	record[0] = formatTime(m.OccurredAt)
	record[1] = m.EventID.String()
	record[2] = m.Type
	record[3] = m.Cause
	record[4] = m.UserID
	record[5] = m.Reference
	record[6] = m.Description
	record[7] = m.Amount.String()
	record[8] = m.BalanceAfter.String()
	record[9] = m.Currency
}

// formatTime is RFC 3339 in UTC with only the fractional digits needed ("" for no time).
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
