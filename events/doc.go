// Package events holds the facts of the ledger: the event types that live in the
// per-account streams, the envelope every event travels in, the JSON codec with
// versioned type names and upcasting, the deterministic event ids, and the Store port
// that the event-store adapters (events/jetstream, events/eventstore) implement.
//
// Nothing here does I/O; the adapters do.
package events
