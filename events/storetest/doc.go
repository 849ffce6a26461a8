// Package storetest is the contract suite of events.Store: the one set of tests that
// every adapter (events/jetstream, events/eventstore) must pass, in the manner of
// watermill's pubsub test suite. An adapter's test calls Run with a constructor.
//
// The suite assumes nothing about the store's prior content: it may run against a
// long-lived server that holds other data and other writers. Every subtest uses fresh
// account ids (a random prefix) and measures positions relative to Head taken at its
// start, and checks of ReadAll and Subscribe look only at the subtest's own accounts
// (plus the store-wide order of positions).
package storetest
