package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/events/jetstream"
	"github.com/telephony/creditledger/projections"
)

// testServer is the API over real parts: an embedded JetStream server, the JetStream
// store, the writer with its SQLite usage index, the SQLite read models fed by a running
// projector. Requests go straight to the handler, without a network hop.
type testServer struct {
	*Server
	handler http.Handler
}

// newTestServer builds one; tb may be a fuzz target's *testing.F, so that every fuzz
// worker builds its own once.
func newTestServer(tb testing.TB, opts Options) *testServer {
	tb.Helper()
	_, nc := jetstream.RunTestServer(tb)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	store, err := jetstream.New(ctx, nc, jetstream.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	js, err := natsjs.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := ingest.EnsureUsageStream(ctx, js, 1); err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	db, err := intake.Open(filepath.Join(dir, "intake.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	w := writer.New(store, db, zap.NewNop(), writer.Options{})
	if err := w.Load(ctx); err != nil {
		tb.Fatal(err)
	}
	reads, err := projections.Open(filepath.Join(dir, "readmodels.db"))
	if err != nil {
		tb.Fatal(err)
	}
	projector := projections.NewProjector(reads, store, zap.NewNop(), projections.ProjectorOptions{})
	done := make(chan struct{})
	go func() { defer close(done); _ = projector.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done; reads.Close() })
	consumer := ingest.New(js, w, db, zap.NewNop(), ingest.Options{})
	metrics := NewMetrics(MetricSources{
		EventsIngested: func() float64 { return float64(consumer.Stats.Charged.Load()) },
		ProjectionLag:  func() float64 { return 0 },
	})
	s := New(Deps{Writer: w, Reads: reads, Projector: projector, Intake: db, Ingest: consumer, JetStream: js, Metrics: metrics, Log: zap.NewNop()}, opts)
	return &testServer{Server: s, handler: s.Handler()}
}

// result is an answer of the handler.
type result struct {
	status int
	header http.Header
	body   []byte
}

// serve runs one request through the handler; ok is false when the request cannot be
// built (a URL the fuzzer made up that no client could send).
func (ts *testServer) serve(method, target, body string, header http.Header) (result, bool) {
	req, err := http.NewRequest(method, "http://ledger.test"+target, strings.NewReader(body))
	if err != nil {
		return result{}, false
	}
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	ts.handler.ServeHTTP(rec, req)
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b}, true
}

// mustServe is serve for well-formed requests.
func (ts *testServer) mustServe(t testing.TB, method, target, body string) result {
	t.Helper()
	r, ok := ts.serve(method, target, body, nil)
	if !ok {
		t.Fatalf("cannot build %s %s", method, target)
	}
	return r
}

// errorCode returns the code of an API.md error body, or "" when the body is not one.
func errorCode(body []byte) (code, message string) {
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Error.Code, e.Error.Message
}

// checkContract is what every answer must satisfy, whatever it was asked: a status the
// API uses for client input (never a 5xx: hostile input is the client's problem, and a
// 503 would tell the client to retry it), and for errors a JSON body
// {"error": {"code", "message"}}.
func checkContract(t testing.TB, what string, r result) {
	t.Helper()
	switch r.status {
	case 200, 201, 202:
		return
	case 400, 401, 403, 404, 409, 422:
	default:
		t.Fatalf("%s: status %d: %s", what, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: error with content type %q: %s", what, ct, r.body)
	}
	if code, msg := errorCode(r.body); code == "" || msg == "" {
		t.Fatalf("%s: status %d without an error code and message: %s", what, r.status, r.body)
	}
}
