// Package intake is the write side's own durable database under the data dir: the index
// of charged usage ids with their content hash, which makes charging exactly-once
// forever rather than only inside JetStream's duplicate window (a Pebble store in
// intake.db.usage-index/, with its own checkpoint), and, in the SQLite file intake.db,
// the rejections (bad input kept with its reason and raw payload) and the alert
// publisher's checkpoint.
//
// The usage index is derived from the ledger stream, so it can always be healed: on start
// the writer re-indexes every usage appended after the index's checkpoint, and an index
// directory that is missing starts at checkpoint 0.
package intake
