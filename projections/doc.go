// Package projections holds the read models of the ledger and the machinery that feeds
// them: the SQLite read-model store (DB), the Projector that follows the event store from a
// checkpoint, Rebuild and Verify.
//
// The read models are accounts (balance, alert level, auto top-up state), movements (one row
// per usage, succeeded top-up and adjustment, with the running balance), the usage summary
// (computed from movements) and top-ups. They are derived data: the ledger's event streams are
// the truth, and Rebuild or Verify can always recompute them from there.
//
// Two rules keep them exact after any crash (DESIGN.md section 3 rule 6):
//   - a batch of events is applied in one SQLite transaction that also stores the checkpoint
//     (the store Position of the last event applied), so rows and checkpoint never disagree;
//   - an event whose Version is at or below the account's version in the read model is a
//     no-op, so re-delivered events are never counted twice.
//
// SQLite runs through the pure-Go driver modernc.org/sqlite (no C toolchain), in WAL mode, so
// one process writes while others (the HTTP API, ledgerctl verify) read consistent snapshots.
package projections
