package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/api"
	"github.com/telephony/creditledger/consumers/alerts"
	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/consumers/topup"
	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/eventstore"
	"github.com/telephony/creditledger/events/jetstream"
	"github.com/telephony/creditledger/projections"
)

// readinessLagMax is how far behind the projections may be for /readyz (API.md section 10).
const readinessLagMax = 5 * time.Second

// run starts every part, waits for ctx to end (or a part to fail), then stops them in
// reverse order: HTTP first, so no new work arrives, then the consumers, which finish
// their batch in hand, then the connections.
func run(ctx context.Context, cfg config, log *zap.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	ns, natsURL, err := startNATS(cfg, log)
	if err != nil {
		return err
	}
	if ns != nil {
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	}
	nc, err := connectNATS(natsURL, cfg, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := ingest.EnsureUsageStream(ctx, js, cfg.Replicas); err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, nc, log)
	if err != nil {
		return err
	}
	defer store.Close()

	db, err := intake.Open(filepath.Join(cfg.DataDir, "intake.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	w := writer.New(store, db, log.Named("writer"), writer.Options{})
	if err := w.Load(ctx); err != nil {
		return err
	}
	reads, err := projections.Open(filepath.Join(cfg.DataDir, "readmodels.db"))
	if err != nil {
		return err
	}
	defer reads.Close()
	projector := projections.NewProjector(reads, store, log.Named("projections"), projections.ProjectorOptions{})
	consumer := ingest.New(js, w, db, log.Named("ingest"), ingest.Options{Replicas: cfg.Replicas})
	gateway, err := paymentGateway(cfg, log)
	if err != nil {
		return err
	}
	topUps := topup.NewManager(w, store, gateway, log.Named("topup"), topup.Options{
		MaxAttempts: cfg.TopUpMaxAttempts, RetryDelayBase: cfg.TopUpRetryBase, AutoTopUpDailyMax: cfg.AutoTopUpDailyMax})
	alertPublisher := alerts.NewPublisher(store, js, db, log.Named("alerts"), alerts.Options{Replicas: cfg.Replicas})

	workers := newGroup(ctx)
	workers.Go("projections", projector.Run)
	workers.Go("ingest", consumer.Run)
	workers.Go("top-ups", topUps.Run)
	workers.Go("alerts", alertPublisher.Run)

	metrics := newMetrics(consumer, db, store, projector, topUps)
	srv := api.New(api.Deps{Writer: w, Reads: reads, Projector: projector, Intake: db, Ingest: consumer, JetStream: js, Metrics: metrics, Log: log.Named("api")},
		api.Options{AdminToken: cfg.AdminToken, ReadToken: cfg.ReadToken, Ready: readiness(store, projector)})
	authSub, err := srv.ServeAuthorize(nc)
	if err != nil {
		return fmt.Errorf("serve %s: %w", api.AuthorizeSubject, err)
	}
	httpSrv, err := serveHTTP(cfg.HTTPAddr, srv.Handler(), workers, log)
	if err != nil {
		return err
	}
	log.Info("ledgerd ready", zap.String("http", cfg.HTTPAddr), zap.String("nats", redactURLs(natsURL)), zap.String("store", cfg.Store), zap.String("data_dir", cfg.DataDir))

	workers.Wait()
	log.Info("stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeoutMax)
	defer cancel()
	_ = httpSrv.Shutdown(stopCtx)
	_ = authSub.Drain()
	workers.Stop()
	if err := w.SyncIndex(stopCtx); err != nil {
		// Nothing is lost: the next start re-indexes from the stream what is missing.
		log.Warn("usage index not fully written at stop", zap.Error(err))
	}
	return workers.Err()
}

// newMetrics exposes the counters of the running parts (API.md section 10).
func newMetrics(consumer *ingest.Consumer, db *intake.DB, store events.Store, projector *projections.Projector, topUps *topup.Manager) *api.Metrics {
	return api.NewMetrics(api.MetricSources{
		EventsIngested:  func() float64 { return float64(consumer.Stats.Charged.Load()) },
		UsageRedelivery: func() float64 { return float64(consumer.Stats.Redelivery.Load()) },
		Rejections: func() float64 {
			n, _ := db.CountRejections(context.Background(), intake.RejectionOpen)
			return float64(n)
		},
		ProjectionLag: func() float64 { return float64(projectionLag(store, projector)) },
		TopUpsByState: func() map[string]float64 {
			st := &topUps.Stats
			return map[string]float64{"requested": float64(st.Requested.Load()), "succeeded": float64(st.Succeeded.Load()),
				"failed": float64(st.Failed.Load()), "paying": float64(st.Paying.Load())}
		},
	})
}

func startNATS(cfg config, log *zap.Logger) (*server.Server, string, error) {
	if cfg.NATSURL != "" {
		return nil, cfg.NATSURL, nil
	}
	host, portStr, err := net.SplitHostPort(cfg.NATSListen)
	if err != nil {
		return nil, "", fmt.Errorf("--nats-listen: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, "", fmt.Errorf("--nats-listen port: %w", err)
	}
	sc := jetstream.ServerConfig{Host: host, Port: port, StoreDir: filepath.Join(cfg.DataDir, "nats"),
		Username: cfg.NATSUser, Password: cfg.NATSPassword, Logger: log.Named("nats"), ServerName: "ledgerd"}
	switch cfg.JetStreamSync {
	case "":
	case "always":
		sc.SyncAlways = true
	default:
		if sc.SyncInterval, err = time.ParseDuration(cfg.JetStreamSync); err != nil {
			return nil, "", fmt.Errorf("--jetstream-sync: %w", err)
		}
	}
	ns, err := jetstream.StartServer(sc)
	if err != nil {
		return nil, "", err
	}
	return ns, ns.ClientURL(), nil
}

func connectNATS(url string, cfg config, log *zap.Logger) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("ledgerd"), nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", zap.Error(err)) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", zap.String("url", c.ConnectedUrlRedacted())) }),
	}
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	if cfg.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	if cfg.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCert, cfg.NATSTLSKey))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	return nc, nil
}

// redactURLs hides the passwords of a comma-separated list of NATS URLs, for logs.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if _, hasPassword := u.User.Password(); hasPassword {
				parts[i] = u.Redacted()
			} else {
				parts[i] = u.Scheme + "://xxxxx@" + u.Host // a bare user is a token
			}
		}
	}
	return strings.Join(parts, ",")
}

func openStore(ctx context.Context, cfg config, nc *nats.Conn, log *zap.Logger) (events.Store, error) {
	if cfg.Store == "eventstore" {
		return eventstore.New(ctx, cfg.EventStoreURL, log.Named("eventstore"), eventstore.Options{})
	}
	return jetstream.New(ctx, nc, jetstream.Options{Replicas: cfg.Replicas, AckWait: cfg.NATSAckWait})
}

func paymentGateway(cfg config, log *zap.Logger) (topup.Gateway, error) {
	if cfg.PaymentGateway == "webhook" {
		return topup.NewWebhook(cfg.PaymentWebhookURL, log.Named("webhook"), topup.WebhookOptions{})
	}
	return topup.NewSandbox(log), nil
}

func serveHTTP(addr string, h http.Handler, workers *group, log *zap.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", zap.Error(err))
			workers.fail(err)
		}
	}()
	return srv, nil
}

// projectionLag is how many store events the read models have not applied yet.
func projectionLag(store events.Store, p *projections.Projector) uint64 {
	head, err := store.Head(context.Background())
	if err != nil {
		return 0
	}
	applied := p.Position()
	if head <= applied {
		return 0
	}
	return head - applied
}

// readiness: the store answers and the projections reach its current head within 5 s.
func readiness(store events.Store, p *projections.Projector) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, readinessLagMax)
		defer cancel()
		head, err := store.Head(ctx)
		if err != nil {
			return fmt.Errorf("event store unreachable: %w", err)
		}
		if err := p.WaitFor(ctx, head); err != nil {
			return fmt.Errorf("projections are more than %s behind (at %d of %d)", readinessLagMax, p.Position(), head)
		}
		return nil
	}
}

// group runs the long-lived parts; the first failure stops them all.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

func newGroup(parent context.Context) *group {
	ctx, cancel := context.WithCancel(parent)
	return &group{ctx: ctx, cancel: cancel}
}

// Go runs fn until the group stops.
func (g *group) Go(name string, fn func(context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(g.ctx); err != nil && !errors.Is(err, context.Canceled) {
			g.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

func (g *group) fail(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.mu.Unlock()
	g.cancel()
}

// Wait blocks until the group is asked to stop (its context ends).
func (g *group) Wait() { <-g.ctx.Done() }

// Stop asks every part to stop and waits for them.
func (g *group) Stop() { g.cancel(); g.wg.Wait() }

func (g *group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
