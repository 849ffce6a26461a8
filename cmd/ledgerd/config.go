package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// config holds ledgerd's flags (API.md section 1). Every flag can also come from the
// environment as LEDGER_ + its name in upper case with "_" for "-"; a flag given on the
// command line wins over the environment.
type config struct {
	DataDir            string
	HTTPAddr           string
	NATSListen         string
	NATSURL            string
	NATSUser           string
	NATSPassword       string
	NATSTLSCA          string
	NATSTLSCert        string
	NATSTLSKey         string
	Replicas           int
	NATSAckWait        time.Duration
	JetStreamSync      string
	Store              string
	EventStoreURL      string
	PaymentGateway     string
	PaymentWebhookURL  string
	TopUpMaxAttempts   int
	TopUpRetryBase     time.Duration
	AutoTopUpDailyMax  int
	AdminToken         string
	ReadToken          string
	LogLevel           string
	ShutdownTimeoutMax time.Duration
	GCPercent          int
}

func parseConfig(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("ledgerd", flag.ContinueOnError)
	str := func(p *string, name, def, usage string) { fs.StringVar(p, name, env(name, def), usage) }
	// Secrets (and URLs that may carry them) are read from the environment after parsing,
	// not given as flag defaults, so that --help and usage errors never print them.
	secrets := map[string]*string{}
	secret := func(p *string, name, usage string) {
		fs.StringVar(p, name, "", usage+" (or env LEDGER_"+envName(name)+")")
		secrets[name] = p
	}
	str(&c.DataDir, "data-dir", "./data", "where the embedded NATS server and the read models keep their files")
	str(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP API listen address")
	str(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server")
	secret(&c.NATSURL, "nats-url", "connect to this external NATS instead of embedding one")
	str(&c.NATSUser, "nats-user", "", "NATS user name (embedded server: required from clients; external: used to connect)")
	secret(&c.NATSPassword, "nats-password", "NATS password, with --nats-user")
	str(&c.NATSTLSCA, "nats-tls-ca", "", "external NATS: PEM file of the CA that signed the server's certificate (turns TLS on)")
	str(&c.NATSTLSCert, "nats-tls-cert", "", "external NATS: PEM client certificate, with --nats-tls-key, for servers that verify clients")
	str(&c.NATSTLSKey, "nats-tls-key", "", "external NATS: PEM private key of --nats-tls-cert")
	str(&c.JetStreamSync, "jetstream-sync", "", `embedded JetStream fsync policy: "always", or an interval like "1s" (default: the server's 2m; a process crash loses nothing either way)`)
	str(&c.Store, "store", "jetstream", "where the ledger's event streams live: jetstream or eventstore")
	secret(&c.EventStoreURL, "eventstore-url", "EventStoreDB connection string, e.g. esdb://127.0.0.1:2113?tls=false")
	str(&c.PaymentGateway, "payment-gateway", "sandbox", "sandbox (approves every charge) or webhook")
	secret(&c.PaymentWebhookURL, "payment-webhook-url", "payment webhook URL, with --payment-gateway webhook")
	secret(&c.AdminToken, "admin-token", "bearer token required on every /v1 request")
	secret(&c.ReadToken, "read-token", "bearer token allowed for GET requests only")
	str(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	var err error
	intFlag := func(p *int, name string, def int, usage string) {
		v, e := strconv.Atoi(env(name, strconv.Itoa(def)))
		if e != nil {
			err = errors.Join(err, fmt.Errorf("LEDGER_%s: %w", envName(name), e))
		}
		fs.IntVar(p, name, v, usage)
	}
	durFlag := func(p *time.Duration, name string, def time.Duration, usage string) {
		v, e := time.ParseDuration(env(name, def.String()))
		if e != nil {
			err = errors.Join(err, fmt.Errorf("LEDGER_%s: %w", envName(name), e))
		}
		fs.DurationVar(p, name, v, usage)
	}
	intFlag(&c.TopUpMaxAttempts, "top-up-max-attempts", 3, "payment attempts for one top-up before it is given up")
	durFlag(&c.TopUpRetryBase, "top-up-retry-base", time.Minute, "delay before the 2nd payment attempt; doubles for each further attempt")
	intFlag(&c.AutoTopUpDailyMax, "auto-top-up-daily-max", 10, "at most this many auto top-ups per account in any 24 h")
	intFlag(&c.Replicas, "replicas", 1, "replicas of the LEDGER and USAGE streams: 3 on a NATS cluster (with --nats-url), 1 on one server")
	durFlag(&c.NATSAckWait, "nats-ack-wait", 30*time.Second, "how long an append waits for JetStream's acknowledgement before it is retried; bounds the pause of charging after a cluster leader is lost")
	durFlag(&c.ShutdownTimeoutMax, "shutdown-timeout", 8*time.Second, "how long a graceful stop may take")
	intFlag(&c.GCPercent, "gc-percent", gcPercentDefault, "Go garbage collector target, as GOGC (which wins when set): heap growth allowed between collections, in percent of the live heap")
	if err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, p := range secrets {
		if !given[name] {
			*p = env(name, "")
		}
	}
	return c, c.validate()
}

func (c config) validate() error {
	switch {
	case c.Store != "jetstream" && c.Store != "eventstore":
		return fmt.Errorf("--store must be jetstream or eventstore, got %q", c.Store)
	case c.Store == "eventstore" && c.EventStoreURL == "":
		return errors.New("--store eventstore needs --eventstore-url")
	case c.PaymentGateway != "sandbox" && c.PaymentGateway != "webhook":
		return fmt.Errorf("--payment-gateway must be sandbox or webhook, got %q", c.PaymentGateway)
	case c.PaymentGateway == "webhook" && c.PaymentWebhookURL == "":
		return errors.New("--payment-gateway webhook needs --payment-webhook-url")
	case c.TopUpMaxAttempts < 1:
		return errors.New("--top-up-max-attempts must be at least 1")
	case c.TopUpRetryBase <= 0:
		return errors.New("--top-up-retry-base must be positive")
	case c.AutoTopUpDailyMax < 0:
		return errors.New("--auto-top-up-daily-max must not be negative")
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("--replicas must be 1..5 (JetStream's range), got %d", c.Replicas)
	case c.GCPercent < 25:
		return fmt.Errorf("--gc-percent must be at least 25, got %d", c.GCPercent)
	case c.NATSAckWait <= 0:
		return errors.New("--nats-ack-wait must be positive")
	case c.Replicas > 1 && c.NATSURL == "":
		return errors.New("--replicas above 1 needs --nats-url naming a NATS cluster: the embedded server is a single node")
	case (c.NATSTLSCA != "" || c.NATSTLSCert != "" || c.NATSTLSKey != "") && c.NATSURL == "":
		return errors.New("--nats-tls-* apply to an external NATS: set --nats-url")
	case (c.NATSTLSCert == "") != (c.NATSTLSKey == ""):
		return errors.New("--nats-tls-cert and --nats-tls-key go together")
	case (c.NATSUser == "") != (c.NATSPassword == ""):
		return errors.New("--nats-user and --nats-password go together")
	case c.NATSURL == "" && c.NATSUser == "" && !isLoopback(c.NATSListen):
		// Whoever reaches the embedded NATS can publish usage that charges any account:
		// beyond loopback it needs authentication, HTTP tokens or not.
		return fmt.Errorf("refusing to open the embedded NATS on %s without --nats-user/--nats-password: it listens on loopback only without them", c.NATSListen)
	}
	if c.AdminToken == "" && c.ReadToken == "" {
		// API.md section 9: without tokens, only loopback.
		if !isLoopback(c.HTTPAddr) {
			return fmt.Errorf("refusing to serve HTTP on %s without --admin-token: without tokens ledgerd listens on loopback only", c.HTTPAddr)
		}
	}
	if c.ReadToken != "" && c.AdminToken == "" {
		return errors.New("--read-token needs --admin-token too: otherwise writes would be open")
	}
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func env(flagName, def string) string {
	if v, ok := os.LookupEnv("LEDGER_" + envName(flagName)); ok {
		return v
	}
	return def
}

func envName(flagName string) string { return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_")) }
