package jetstream

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// RunTestServer starts an embedded JetStream server on a random loopback port with its
// store in t.TempDir(), connects to it, and stops both when the test ends. It lives in a
// non-test file so that the tests of every package run against a real server, not a
// mock of one.
func RunTestServer(t testing.TB) (*server.Server, *nats.Conn) {
	t.Helper()
	s, err := StartServer(ServerConfig{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start test nats server: %v", err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s, ConnectTestServer(t, s)
}

// ConnectTestServer opens one more connection to a test server (a second writer, a
// second process) and closes it when the test ends.
func ConnectTestServer(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(),
		nats.Name(t.Name()),
		// A test that restarts the server expects the client to come back.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("connect to test nats server: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
