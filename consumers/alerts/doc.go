// Package alerts is the alert publisher: it follows the ledger's store and publishes, on
// the NATS subject ledger.alerts.{account_id}, each change of an account's alert level
// (ok, low, depleted) and each failed and suspended auto top-up, exactly once (API.md
// section 6).
//
// Exactly once, across crashes: alerts go through the JetStream stream ALERTS, which
// captures ledger.alerts.>, with a Nats-Msg-Id derived from the event id and the alert
// kind, and the publisher's checkpoint (in the intake database) moves past an event only
// after the server acknowledged its alerts. A crash between the acknowledgement and the
// checkpoint makes the restarted publisher derive the same alerts with the same ids
// again: it first looks at the last alert stored for that account and skips what is
// already there, and the stream's duplicate window drops anything that still slips by.
// Core NATS subscribers of ledger.alerts.> receive every alert as it is stored; a
// consumer of the ALERTS stream can also read the ones it missed.
//
// The level of a new account is depleted (its balance is 0), but opening an account
// publishes nothing: an alert reports a change of level, and a new account has no
// previous level to change from. The first usage or top-up that moves it to another
// level is its first alert.
package alerts
