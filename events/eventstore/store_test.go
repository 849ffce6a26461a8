package eventstore

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/storetest"
)

// TestContractSuite runs the one contract suite of events.Store against a real
// EventStoreDB, for example:
//
//	docker compose up -d eventstore
//	LEDGER_TEST_EVENTSTORE_URL='esdb://127.0.0.1:2113?tls=false' go test ./events/...
//
// The suite uses fresh account ids each run, so the database need not be empty.
func TestContractSuite(t *testing.T) {
	url := os.Getenv("LEDGER_TEST_EVENTSTORE_URL")
	if url == "" {
		t.Skip("set LEDGER_TEST_EVENTSTORE_URL=esdb://... to run the contract suite against EventStoreDB")
	}
	storetest.Run(t, func(t *testing.T) events.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := New(ctx, url, zaptest.NewLogger(t), Options{})
		if err != nil {
			t.Fatalf("eventstore.New: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestContractSuiteOverFake runs the same suite against the adapter over the in-memory
// stand-in of fake_test.go. It checks the adapter's own logic (batching, retries, start
// positions, resubscription) against the contract here, where no EventStoreDB runs; it
// says nothing about how a real server behaves, which only TestContractSuite shows.
func TestContractSuiteOverFake(t *testing.T) {
	db := newMemDB()
	storetest.Run(t, func(t *testing.T) events.Store {
		b := &fakeBackend{db: db}
		s, err := newStore(b.dial, zaptest.NewLogger(t), Options{ResubscribeDelayBase: time.Millisecond})
		if err != nil {
			t.Fatalf("newStore: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
