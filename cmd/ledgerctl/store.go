package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/eventstore"
	"github.com/telephony/creditledger/events/jetstream"
)

// connectTimeout bounds reaching the event store: an auditor waiting on a dead address
// should learn so in seconds, not hang.
const connectTimeout = 5 * time.Second

// openStore connects to the ledger's event store named by the global flags. The returned
// function closes the store and its connection.
func openStore(ctx context.Context, g globals) (events.Store, func(), error) {
	switch g.store {
	case "jetstream":
		return openJetStream(ctx, g)
	case "eventstore":
		if g.eventStoreURL == "" {
			return nil, nil, usagef("--store eventstore needs --eventstore-url (e.g. esdb://127.0.0.1:2113?tls=false)")
		}
		ctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		s, err := eventstore.New(ctx, g.eventStoreURL, nil, eventstore.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("cannot reach EventStoreDB at %s: %w", redactURLs(g.eventStoreURL), err)
		}
		return s, func() { _ = s.Close() }, nil
	default:
		return nil, nil, usagef("--store must be jetstream or eventstore, got %q", g.store)
	}
}

// openJetStream connects to NATS and opens the LEDGER stream. It first reads the stream's
// configuration: a missing stream means the wrong NATS (jetstream.New would create an empty
// ledger there), and the store is then opened with the stream's own replicas and duplicate
// window, because jetstream.New updates the stream to the options it is given and an
// auditor must change nothing (ledgerd --replicas 3 on a cluster would otherwise be scaled
// back to 1).
func openJetStream(ctx context.Context, g globals) (events.Store, func(), error) {
	shown := redactURLs(g.natsURL)
	nc, err := nats.Connect(g.natsURL, natsOptions(g)...)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach NATS at %s: %v: is ledgerd running? (its embedded NATS only runs while ledgerd does; see --nats-url)", shown, err)
	}
	cfg, err := ledgerStreamConfig(ctx, nc, shown)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	s, err := jetstream.New(ctx, nc, jetstream.Options{Replicas: cfg.Replicas, DuplicateWindow: cfg.Duplicates})
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("open the ledger's streams on NATS at %s: %w", shown, err)
	}
	return s, func() { _ = s.Close(); nc.Close() }, nil
}

// natsOptions are the connection options of the global flags, as ledgerd's.
func natsOptions(g globals) []nats.Option {
	opts := []nats.Option{nats.Name("ledgerctl"), nats.Timeout(connectTimeout)}
	if g.natsUser != "" {
		opts = append(opts, nats.UserInfo(g.natsUser, g.natsPassword))
	}
	if g.natsTLSCA != "" {
		opts = append(opts, nats.RootCAs(g.natsTLSCA))
	}
	if g.natsTLSCert != "" {
		opts = append(opts, nats.ClientCert(g.natsTLSCert, g.natsTLSKey))
	}
	return opts
}

func ledgerStreamConfig(ctx context.Context, nc *nats.Conn, shown string) (natsjs.StreamConfig, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	js, err := natsjs.New(nc)
	if err != nil {
		return natsjs.StreamConfig{}, fmt.Errorf("jetstream on NATS at %s: %w", shown, err)
	}
	stream, err := js.Stream(ctx, jetstream.StreamName)
	switch {
	case errors.Is(err, natsjs.ErrStreamNotFound):
		return natsjs.StreamConfig{}, fmt.Errorf("NATS at %s has no %s stream: is it the ledger's NATS (ledgerd --nats-listen or --nats-url)?", shown, jetstream.StreamName)
	case errors.Is(err, natsjs.ErrJetStreamNotEnabled):
		return natsjs.StreamConfig{}, fmt.Errorf("NATS at %s has no JetStream: is it the ledger's NATS (ledgerd --nats-listen or --nats-url)?", shown)
	case err != nil:
		return natsjs.StreamConfig{}, fmt.Errorf("look up stream %s on NATS at %s: %w", jetstream.StreamName, shown, err)
	}
	return stream.CachedInfo().Config, nil
}

// redactURLs hides the passwords (and bare-user tokens) in a comma-separated list of
// URLs before it is printed.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// redactURL hides a password in a URL before it is printed.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, hasPassword := u.User.Password(); !hasPassword {
		return u.Scheme + "://xxxxx@" + u.Host // a bare user is a token
	}
	return u.Redacted()
}
