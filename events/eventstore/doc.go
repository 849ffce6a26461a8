// Package eventstore is the EventStoreDB adapter of the ledger's events.Store port.
//
// Layout in EventStoreDB:
//   - one stream per account, named events.StreamName(id) = "account-{id}";
//   - one EventStoreDB event per ledger event: EventID is the envelope's deterministic id
//     (never one the client invents, so a retried append is recognised by the server),
//     EventType the versioned type name ("usage_charged.v1"), Data the JSON payload,
//     Metadata a small JSON document with account_id, version, occurred_at, recorded_at;
//   - ledger versions are 1-based, EventStoreDB revisions 0-based: version v is revision v-1.
//
// Positions are EventStoreDB commit positions in $all. Events appended through gRPC are
// never part of an explicit transaction, so each has its own commit position (equal to
// its prepare position) and commit positions grow strictly in $all order: a single
// uint64 is enough to resume a read or a subscription exactly after an event.
//
// The adapter needs EventStoreDB 22.6 or later: from that version the server reports $all
// positions on stream reads, which Append and ReadStream use to fill Envelope.Position.
// New refuses older servers.
//
// The client library (EventStore-Client-Go v4) neither resubscribes a dropped catch-up
// subscription nor recovers from a failed node discovery (the client then stays closed
// for good); both are handled here: Subscribe resubscribes with exponential backoff from
// the last delivered position, and the store replaces a client that has shut itself down.
package eventstore
