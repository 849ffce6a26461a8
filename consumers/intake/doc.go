// Package intake is the write side's own durable database (SQLite, file intake.db under
// the data dir): the index of charged usage ids with their content hash, which makes
// charging exactly-once forever rather than only inside JetStream's duplicate window, and
// the rejections: bad input kept with its reason and raw payload.
//
// The usage index is derived from the ledger stream, so it can always be healed: on start
// the writer re-indexes every usage appended after the index's checkpoint.
package intake
