package main

import (
	"os"
	"runtime/debug"
)

// gcPercentDefault is ledgerd's garbage collector target, where Go's default is 100.
// Ingest allocates per usage (decoded events, NATS messages, SQL arguments) while the
// live heap holds every account's state, so with 100 the collector marks that heap again
// after every few thousand usages: mark and sweep took 8% of ingest's CPU in the
// ledgerbench profile. With 400 it runs a quarter as often; the price is a larger heap
// between collections, measured at 1,000,000 accounts as 922 instead of 866 bytes of
// resident memory per account (BENCHMARKS.md). In a container with a memory limit, set
// GOMEMLIMIT as well, so that the collector runs sooner when the limit comes close.
const gcPercentDefault = 400

// setGCPercent applies --gc-percent unless the environment sets GOGC, which the Go
// runtime has already applied and which an operator expects to be obeyed.
func setGCPercent(percent int) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(percent)
}
