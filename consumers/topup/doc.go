// Package topup is the top-up process manager and the payment gateway port with its
// adapters.
//
// A top-up lives in its account's stream: TopUpRequested opens it (appended with
// optimistic concurrency, so an account never has two pending), every failed payment
// attempt is a TopUpAttemptFailed that says when the next one is due, and TopUpSucceeded
// or TopUpFailed closes it. The Manager turns those facts into payment calls: it follows
// the store, starts auto top-ups when ledger.AutoTopUpDue says so, charges the Gateway
// when an attempt is due and records the outcome through the writer. Because every
// attempt of a top-up carries the same top_up_id as its idempotency key, a payment cut
// off by a crash is simply attempted again after the restart: the gateway answers with
// the payment it already made, and the credit is applied once.
//
// Adapters of Gateway: Sandbox (approves everything; for development) and Webhook (the
// HTTP contract of API.md section 5).
package topup
