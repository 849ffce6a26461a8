// Package ledger is the pure domain of the credit ledger: money, account state, Evolve
// (apply an event to a state) and Decide (turn a command into events), usage validation,
// the cause mapping, alert levels, the call authorization policy and the auto top-up rule.
//
// It does no I/O, reads no clock and never logs: time and ids come in as arguments, and
// decisions go out as events for the edges to persist.
package ledger
