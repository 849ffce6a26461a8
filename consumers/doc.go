// Package consumers groups the stream consumers of the ledger and the write side they
// share. Each lives in its own sub-package:
//
//   - intake: the write side's durable database: the usage index (exactly-once charging
//     forever) and the rejections of bad input.
//   - writer: the command side: account state in memory, ledger.Decide, append with
//     optimistic concurrency, reload and decide again on conflict.
//   - ingest: the durable pull consumer of the USAGE stream.
//   - topup: the top-up process manager and the payment gateway port with its adapters.
//   - alerts: the alert publisher.
package consumers
