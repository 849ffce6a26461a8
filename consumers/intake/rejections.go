package intake

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// Rejection statuses.
const (
	RejectionOpen     = "open"     // not charged; waiting for a fix and a retry
	RejectionResolved = "resolved" // a retry charged it (or found it already charged)
)

// RejectionsPageMax bounds one listing.
const RejectionsPageMax = 1000

// Rejection is a usage event that could not be charged, kept with its raw payload.
type Rejection struct {
	ID string
	// Seq is the USAGE stream sequence of the message: the rejection's identity, so a
	// redelivered message does not become a second rejection.
	Seq        uint64
	ReceivedAt time.Time
	Subject    string
	AccountID  string
	Reason     string
	Message    string
	Payload    []byte
	Status     string
	UpdatedAt  time.Time
}

// RejectionID is the id of the rejection of USAGE stream message seq.
func RejectionID(seq uint64) string { return "rej-" + strconv.FormatUint(seq, 10) }

// AddRejections records rejections in one transaction; one already recorded is left as it is.
func (db *DB) AddRejections(ctx context.Context, rs []Rejection) error {
	if len(rs) == 0 {
		return nil
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record rejections: %w", err)
	}
	defer tx.Rollback()
	for _, r := range rs {
		_, err := tx.ExecContext(ctx, `INSERT INTO rejections
			(rejection_id, seq, received_at, subject, account_id, reason, message, payload, status, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			r.ID, r.Seq, formatTime(r.ReceivedAt), r.Subject, r.AccountID, r.Reason, r.Message, r.Payload, RejectionOpen, formatTime(r.ReceivedAt))
		if err != nil {
			return fmt.Errorf("record rejection %s: %w", r.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record rejections: %w", err)
	}
	return nil
}

const rejectionColumns = `rejection_id, seq, received_at, subject, account_id, reason, message, payload, status, updated_at`

// Rejections lists rejections, newest first, of one account ("" for all), at most limit.
func (db *DB) Rejections(ctx context.Context, accountID string, limit int) ([]Rejection, error) {
	q := `SELECT ` + rejectionColumns + ` FROM rejections`
	args := []any{}
	if accountID != "" {
		q += ` WHERE account_id = ?`
		args = append(args, accountID)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list rejections: %w", err)
	}
	defer rows.Close()
	var out []Rejection
	for rows.Next() {
		r, err := scanRejection(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Rejection returns one rejection.
func (db *DB) Rejection(ctx context.Context, id string) (Rejection, bool, error) {
	row := db.sql.QueryRowContext(ctx, `SELECT `+rejectionColumns+` FROM rejections WHERE rejection_id = ?`, id)
	r, err := scanRejection(row)
	if err == sql.ErrNoRows {
		return Rejection{}, false, nil
	}
	return r, err == nil, err
}

// UpdateRejection records the outcome of a retry.
func (db *DB) UpdateRejection(ctx context.Context, id, status, reason, message string, at time.Time) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE rejections SET status = ?, reason = ?, message = ?, updated_at = ? WHERE rejection_id = ?`,
		status, reason, message, formatTime(at), id)
	if err != nil {
		return fmt.Errorf("update rejection %s: %w", id, err)
	}
	return nil
}

// CountRejections counts the rejections by status (for metrics).
func (db *DB) CountRejections(ctx context.Context, status string) (int, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM rejections WHERE status = ?`, status).Scan(&n)
	return n, err
}

type scanner interface{ Scan(dest ...any) error }

func scanRejection(s scanner) (Rejection, error) {
	var r Rejection
	var received, updated string
	err := s.Scan(&r.ID, &r.Seq, &received, &r.Subject, &r.AccountID, &r.Reason, &r.Message, &r.Payload, &r.Status, &updated)
	if err != nil {
		if err == sql.ErrNoRows {
			return r, err
		}
		return r, fmt.Errorf("scan rejection: %w", err)
	}
	r.ReceivedAt, _ = time.Parse(time.RFC3339Nano, received)
	r.UpdatedAt, _ = time.Parse(time.RFC3339Nano, updated)
	return r, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
