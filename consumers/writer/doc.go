// Package writer is the command side of the ledger. It keeps every account's state in
// memory (rebuilt from the event store on start), turns commands into events with
// ledger.Decide, and appends them with optimistic concurrency: when another writer got
// there first, it reloads the stream and decides again. Usage charges go through the
// durable usage index (consumers/intake) so that each usage is charged exactly once,
// whenever and however often it arrives.
//
// Per account, commands are serialised by a mutex; that keeps one process from racing
// itself, while the store's expected-version check keeps several processes honest.
package writer
