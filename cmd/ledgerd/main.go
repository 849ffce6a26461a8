// Command ledgerd runs the whole credit ledger on one machine: an embedded NATS server
// with JetStream (unless --nats-url names an external one), the event store, the usage
// ingest, the projections, the top-up and alert consumers, the HTTP API and the
// ledger.authorize responder. It stops cleanly on SIGINT/SIGTERM.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledgerd:", err)
		os.Exit(2)
	}
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledgerd:", err)
		os.Exit(2)
	}
	setGCPercent(cfg.GCPercent)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("ledgerd stopped with an error", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
	log.Info("ledgerd stopped")
	_ = log.Sync()
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	c := zap.NewProductionConfig()
	c.Level = zap.NewAtomicLevelAt(lvl)
	c.Sampling = nil // a ledger's log is an audit aid: never drop lines
	c.EncoderConfig = logEncoderConfig()
	return c.Build()
}

// logEncoderConfig is zap's production JSON with readable UTC times under "time".
func logEncoderConfig() zapcore.EncoderConfig {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "time"
	ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	return ec
}
