package api

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/projections"
)

// Options configure a Server.
type Options struct {
	// AdminToken, when set, is required as "Authorization: Bearer" on every /v1 request.
	AdminToken string
	// ReadToken, when set, may be used instead of AdminToken for GET requests only.
	ReadToken string
	// ReadYourWritesWait bounds how long a write waits for the read models to show it
	// before answering. Default 2s.
	ReadYourWritesWait time.Duration
	// Ready reports whether the store is reachable and the projections caught up.
	Ready func(ctx context.Context) error
	// Now reads the clock. Default time.Now.
	Now func() time.Time
}

// Server serves the HTTP API.
type Server struct {
	writer    *writer.Writer
	reads     *projections.DB
	projector *projections.Projector
	intake    *intake.DB
	ingest    *ingest.Consumer
	js        jetstream.JetStream
	log       *zap.Logger
	opts      Options
	metrics   *Metrics
}

// Deps are the parts a Server reads and writes.
type Deps struct {
	Writer    *writer.Writer
	Reads     *projections.DB
	Projector *projections.Projector
	Intake    *intake.DB
	Ingest    *ingest.Consumer
	JetStream jetstream.JetStream
	Metrics   *Metrics
	Log       *zap.Logger
}

// New returns a Server.
func New(d Deps, opts Options) *Server {
	if opts.ReadYourWritesWait <= 0 {
		opts.ReadYourWritesWait = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{writer: d.Writer, reads: d.Reads, projector: d.Projector, intake: d.Intake, ingest: d.Ingest,
		js: d.JetStream, log: d.Log, opts: opts, metrics: d.Metrics}
}

// Handler returns the HTTP handler of the whole API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	v1 := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.authorized(h)) }
	v1("PUT /v1/accounts/{account_id}", s.putAccount)
	v1("GET /v1/accounts/{account_id}", s.getAccount)
	v1("GET /v1/accounts/{account_id}/authorize", s.getAuthorize)
	v1("POST /v1/usage", s.postUsage)
	v1("POST /v1/accounts/{account_id}/adjustments", s.postAdjustment)
	v1("PUT /v1/accounts/{account_id}/alert-settings", s.putAlertSettings)
	v1("PUT /v1/accounts/{account_id}/auto-top-up", s.putAutoTopUp)
	v1("POST /v1/accounts/{account_id}/top-ups", s.postTopUp)
	v1("GET /v1/accounts/{account_id}/top-ups", s.getTopUps)
	v1("GET /v1/accounts/{account_id}/top-ups/{top_up_id}", s.getTopUp)
	v1("GET /v1/accounts/{account_id}/movements", s.getMovements)
	v1("GET /v1/accounts/{account_id}/movements.csv", s.getMovementsCSV)
	v1("GET /v1/accounts/{account_id}/usage-summary", s.getUsageSummary)
	v1("GET /v1/rejections", s.getRejections)
	v1("POST /v1/rejections/{rejection_id}/retry", s.postRejectionRetry)
	mux.HandleFunc("GET /healthz", s.getHealthz)
	mux.HandleFunc("GET /readyz", s.getReadyz)
	if s.metrics != nil {
		mux.Handle("GET /metrics", s.metrics.Handler())
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErrorCode(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// authorized enforces API.md section 9: with an admin token set, every /v1 request
// needs a bearer token; the read token is good for GET only. Tokens are compared in
// constant time so their bytes cannot be guessed from timings.
func (s *Server) authorized(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.AdminToken == "" && s.opts.ReadToken == "" {
			h(w, r)
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch {
		case !ok || token == "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="ledger"`)
			writeErrorCode(w, http.StatusUnauthorized, "unauthorized", "an Authorization: Bearer token is required")
		case s.opts.AdminToken != "" && equalToken(token, s.opts.AdminToken):
			h(w, r)
		case s.opts.ReadToken != "" && equalToken(token, s.opts.ReadToken):
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				writeErrorCode(w, http.StatusForbidden, "forbidden", "the read token may only be used with GET")
				return
			}
			h(w, r)
		default:
			writeErrorCode(w, http.StatusUnauthorized, "unauthorized", "the bearer token is not valid")
		}
	})
}

func equalToken(given, want string) bool {
	return subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}

// waitForReadModels makes a write visible to the reads that follow it: it waits until
// the projections have applied the appended events (bounded by ReadYourWritesWait).
// When nothing was appended, the command's effect was already in the stream (a client's
// retry); right after a restart the read models may not have applied it yet, so it
// waits for them to reach the store's head instead (a 404 for a top-up the client has
// just been told exists would be wrong; the crash torture test found it).
func (s *Server) waitForReadModels(ctx context.Context, evs []events.Envelope) {
	if s.projector == nil {
		return
	}
	if len(evs) == 0 {
		if err := s.projector.CaughtUp(ctx, s.opts.ReadYourWritesWait); err != nil {
			s.log.Warn("read models lag behind the store", zap.Error(err))
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadYourWritesWait)
	defer cancel()
	if err := s.projector.WaitFor(ctx, evs[len(evs)-1].Position); err != nil {
		s.log.Warn("read models lag behind a write", zap.Uint64("position", evs[len(evs)-1].Position), zap.Error(err))
	}
}
