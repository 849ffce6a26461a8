package intake

import (
	"context"
	"database/sql"
	"fmt"
)

// AlertsCheckpointName is the checkpoint row of the alert publisher: the ledger position
// up to which every alert is published.
const AlertsCheckpointName = "alerts"

// NamedCheckpoint reads the ledger position stored under name (0 when none is).
// Consumers other than the usage index keep their own positions this way.
func (db *DB) NamedCheckpoint(ctx context.Context, name string) (uint64, error) {
	var p uint64
	err := db.sql.QueryRowContext(ctx, `SELECT position FROM checkpoint WHERE name = ?`, name).Scan(&p)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint %s: %w", name, err)
	}
	return p, nil
}

// SetNamedCheckpoint stores position under name.
func (db *DB) SetNamedCheckpoint(ctx context.Context, name string, position uint64) error {
	_, err := db.sql.ExecContext(ctx, `INSERT INTO checkpoint (name, position) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position`, name, position)
	if err != nil {
		return fmt.Errorf("write checkpoint %s: %w", name, err)
	}
	return nil
}
