package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/api"
	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/events/jetstream"
	"github.com/telephony/creditledger/projections"
)

// system is ledgerd's hot-path components wired as cmd/ledgerd's run() wires them:
// an embedded NATS server with JetStream on file storage, the USAGE stream, the
// JetStream event store, the intake database, the writer (loaded), the read models with
// their Projector, the ingest consumer and the ledger.authorize responder on the
// ledger's own connection. The top-up and alert consumers are left out: the benchmark's
// accounts have no auto top-up and nothing here subscribes to alerts.
type system struct {
	dir       string
	srv       *server.Server
	nc        *nats.Conn // the ledger's connection, as ledgerd's
	js        natsjs.JetStream
	store     *jetstream.Store
	intake    *intake.DB
	writer    *writer.Writer
	reads     *projections.DB
	projector *projections.Projector
	consumer  *ingest.Consumer
	api       *api.Server
	authSub   *nats.Subscription

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

// startServer starts the embedded JetStream server on a free loopback port with its files
// under dir/nats, as ledgerd does with --data-dir dir.
func startServer(dir string, log *zap.Logger) (*server.Server, error) {
	return jetstream.StartServer(jetstream.ServerConfig{Port: -1, StoreDir: filepath.Join(dir, "nats"), ServerName: "ledgerbench", Logger: nil})
}

func startSystem(ctx context.Context, dir string, log *zap.Logger) (sys *system, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	s := &system{dir: dir}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.srv, err = startServer(dir, log); err != nil {
		return s, err
	}
	if s.nc, err = nats.Connect(s.srv.ClientURL(), nats.Name("ledgerd")); err != nil {
		return s, err
	}
	if s.js, err = natsjs.New(s.nc); err != nil {
		return s, err
	}
	if _, err = ingest.EnsureUsageStream(ctx, s.js, 1); err != nil {
		return s, err
	}
	if s.store, err = jetstream.New(ctx, s.nc, jetstream.Options{}); err != nil {
		return s, err
	}
	if s.intake, err = intake.Open(filepath.Join(dir, "intake.db")); err != nil {
		return s, err
	}
	s.writer = writer.New(s.store, s.intake, log.Named("writer"), writer.Options{})
	if err = s.writer.Load(ctx); err != nil {
		return s, err
	}
	if s.reads, err = projections.Open(filepath.Join(dir, "readmodels.db")); err != nil {
		return s, err
	}
	s.projector = projections.NewProjector(s.reads, s.store, log.Named("projections"), projections.ProjectorOptions{})
	s.consumer = ingest.New(s.js, s.writer, s.intake, log.Named("ingest"), ingest.Options{})

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.goRun(runCtx, "projections", s.projector.Run)
	s.goRun(runCtx, "ingest", s.consumer.Run)

	metrics := api.NewMetrics(api.MetricSources{
		EventsIngested: func() float64 { return float64(s.consumer.Stats.Charged.Load()) },
	})
	s.api = api.New(api.Deps{Writer: s.writer, Reads: s.reads, Projector: s.projector, Intake: s.intake,
		Ingest: s.consumer, JetStream: s.js, Metrics: metrics, Log: log.Named("api")}, api.Options{})
	if s.authSub, err = s.api.ServeAuthorize(s.nc); err != nil {
		return s, err
	}
	return s, nil
}

func (s *system) goRun(ctx context.Context, name string, fn func(context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.mu.Lock()
			if s.err == nil {
				s.err = fmt.Errorf("%s: %w", name, err)
			}
			s.mu.Unlock()
		}
	}()
}

// failed returns the first error of a background part.
func (s *system) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// stop stops the parts in ledgerd's order: responder, consumers, stores, connection, server.
func (s *system) stop() {
	if s.authSub != nil {
		_ = s.authSub.Drain()
	}
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	if s.reads != nil {
		s.reads.Close()
	}
	if s.intake != nil {
		s.intake.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// connect opens a client connection to the system's server (the platform's side).
func connect(url, name string) (*nats.Conn, error) {
	return nats.Connect(url, nats.Name(name), nats.Timeout(10*time.Second))
}
