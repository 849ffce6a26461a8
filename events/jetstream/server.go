package jetstream

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// ServerConfig configures the embedded NATS server that ledgerd runs when it is not given
// an external NATS (API.md section 1). Zero values are the defaults stated per field.
type ServerConfig struct {
	// Host is the client listen address. Default 127.0.0.1: API.md section 9 keeps the
	// embedded server on loopback unless told otherwise.
	Host string
	// Port is the client port. Default (0) 4222; -1 picks a random free port (tests).
	Port int
	// StoreDir is where JetStream keeps its files. Required: the ledger's streams are
	// its source of truth, so they never silently land in a temporary directory.
	StoreDir string
	// SyncInterval is how often JetStream fsyncs its files (DESIGN rule 9). A crash of the
	// process loses nothing; a power cut can lose up to this interval of acknowledged
	// writes. Default (0): the server's default (2m).
	SyncInterval time.Duration
	// SyncAlways fsyncs every write before it is acknowledged: no loss on a power cut, at
	// a measured cost of 10-50x in ingest throughput on the dev VM (1-5k instead of
	// 40-55k events/s; figures in bench_test.go). For production, prefer replicas (R3
	// on a cluster) over SyncAlways. Default false.
	SyncAlways bool
	// Username and Password, when Username is set, are required from every client.
	Username string
	Password string
	// ServerName names the server in logs and cluster views. Default: a generated id.
	ServerName string
	// Logger receives the server's log lines. Default (nil): the server logs nothing.
	Logger *zap.Logger
	// Debug also forwards the server's debug lines to Logger. Default false.
	Debug bool
	// ReadyTimeout bounds the wait for the server to accept connections. Default 10s.
	ReadyTimeout time.Duration
}

// readyTimeoutDefault is long enough for JetStream to recover a large store on a slow disk.
const readyTimeoutDefault = 10 * time.Second

// StartServer starts an embedded nats-server with JetStream on file storage and returns it
// once it accepts connections. The caller stops it with Shutdown and WaitForShutdown.
func StartServer(cfg ServerConfig) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("start nats server: no JetStream store directory")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = 4222
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = readyTimeoutDefault
	}
	opts := &server.Options{
		ServerName:   cfg.ServerName,
		Host:         cfg.Host,
		Port:         cfg.Port,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncInterval: cfg.SyncInterval,
		SyncAlways:   cfg.SyncAlways,
		Username:     cfg.Username,
		Password:     cfg.Password,
		// The embedding process owns signals and its own HTTP endpoints.
		NoSigs:   true,
		HTTPPort: 0,
		NoLog:    cfg.Logger == nil,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats server: %w", err)
	}
	if cfg.Logger != nil {
		s.SetLogger(zapLogger{cfg.Logger.Sugar()}, cfg.Debug, false)
	}
	go s.Start()
	if !s.ReadyForConnections(cfg.ReadyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("start nats server on %s:%d: not ready after %s", cfg.Host, cfg.Port, cfg.ReadyTimeout)
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, errors.New("start nats server: JetStream did not start")
	}
	return s, nil
}

// zapLogger adapts zap to the server's Logger interface so that the server's lines end
// up in the process's structured log instead of on stderr.
type zapLogger struct{ l *zap.SugaredLogger }

func (z zapLogger) Noticef(format string, v ...any) { z.l.Infof(format, v...) }
func (z zapLogger) Warnf(format string, v ...any)   { z.l.Warnf(format, v...) }

// Fatalf logs at error level: the server calls it before it shuts itself down, and zap's
// Fatal would exit the whole process instead of letting ledgerd stop cleanly.
func (z zapLogger) Fatalf(format string, v ...any) { z.l.Errorf(format, v...) }
func (z zapLogger) Errorf(format string, v ...any) { z.l.Errorf(format, v...) }
func (z zapLogger) Debugf(format string, v ...any) { z.l.Debugf(format, v...) }
func (z zapLogger) Tracef(format string, v ...any) { z.l.Debugf(format, v...) }
