// Package jetstream is the NATS JetStream adapter of events.Store, and the embedded
// NATS server that ledgerd runs when it is not pointed at an external one.
//
// Layout: one stream, LEDGER, holds every account stream of the ledger; account
// {account_id} is the subject ledger.account.{account_id} (see Subject). The stream is
// immutable (DenyDelete, DenyPurge) and has no limits that could drop an event
// (DESIGN rule 2). An event is one message: the body is events.Marshal of its envelope,
// the Nats-Msg-Id header is the event's deterministic id (rule 3) and the
// Ledger-Version header its version. Position is the JetStream stream sequence.
//
// Optimistic concurrency (rule 4) is JetStream's expected last sequence per subject: an
// event at version v must follow the stream sequence of version v-1 of its account. The
// store keeps a bounded cache of each account's last (version, sequence) so that the hot
// path needs no lookup, and asks the server (one direct get) when the cache cannot tell.
// Because a single server checks the expected sequence before it de-duplicates by
// Nats-Msg-Id, a retried append whose first attempt landed comes back as a
// wrong-last-sequence error; the store then looks at the event at that version and
// reports success when it is the same event.
//
// The expected-sequence header stays on the stored message, so every event also points
// at its account's previous event: ReadStream fetches a short tail (a reload after a
// conflict) by following those links back from the account's last event, and searches
// by sequence only for long tails or messages without the link.
//
// Reads use ordered consumers (they recreate themselves after a reconnect) with large
// pulls, and decode events on several cores while handing them to the caller in order.
// Bodies are written and read by a codec (codec.go, flat.go) that produces and accepts
// exactly what events.Marshal and events.Unmarshal do, several times faster, and hands
// anything unusual to the events package.
//
// A Store is safe for concurrent use; several stores may share one connection.
package jetstream
