package eventstore

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		give          string
		wantAddress   string
		wantNoTLS     bool
		wantUser      string
		wantSkipCert  bool
		wantSeeds     int
		wantDeadline  time.Duration
		wantKeepAlive time.Duration
	}{
		{give: "esdb://127.0.0.1:2113?tls=false", wantAddress: "127.0.0.1:2113", wantNoTLS: true},
		{give: "esdb://eventstore:2113?tls=false", wantAddress: "eventstore:2113", wantNoTLS: true},
		{give: "esdb://127.0.0.1:2113?TLS=False", wantAddress: "127.0.0.1:2113", wantNoTLS: true},
		{give: "esdb://localhost", wantAddress: "localhost:2113"}, // TLS is on unless turned off
		{give: "esdb://127.0.0.1:2113?tls=true", wantAddress: "127.0.0.1:2113"},
		{give: "esdb://admin:changeit@db.example:2113?tlsVerifyCert=false", wantAddress: "db.example:2113", wantUser: "admin", wantSkipCert: true},
		{give: "esdb://a:2113,b:2113,c:2113?tls=false", wantNoTLS: true, wantSeeds: 3},
		{give: "esdb+discover://cluster.example:2113", wantAddress: "cluster.example:2113"},
		{give: "esdb://127.0.0.1:2113?tls=false&defaultDeadline=2500", wantAddress: "127.0.0.1:2113", wantNoTLS: true, wantDeadline: 2500 * time.Millisecond},
		{give: "esdb://127.0.0.1:2113?keepAliveInterval=20000", wantAddress: "127.0.0.1:2113", wantKeepAlive: 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			cfg, err := parseConfig(tt.give, zap.NewNop())
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if cfg.Address != tt.wantAddress && tt.wantSeeds == 0 {
				t.Errorf("Address = %q, want %q", cfg.Address, tt.wantAddress)
			}
			if cfg.DisableTLS != tt.wantNoTLS {
				t.Errorf("DisableTLS = %v, want %v", cfg.DisableTLS, tt.wantNoTLS)
			}
			if cfg.Username != tt.wantUser {
				t.Errorf("Username = %q, want %q", cfg.Username, tt.wantUser)
			}
			if cfg.SkipCertificateVerification != tt.wantSkipCert {
				t.Errorf("SkipCertificateVerification = %v, want %v", cfg.SkipCertificateVerification, tt.wantSkipCert)
			}
			if len(cfg.GossipSeeds) != tt.wantSeeds {
				t.Errorf("%d gossip seeds, want %d", len(cfg.GossipSeeds), tt.wantSeeds)
			}
			if tt.wantDeadline != 0 && (cfg.DefaultDeadline == nil || *cfg.DefaultDeadline != tt.wantDeadline) {
				t.Errorf("DefaultDeadline = %v, want %v", cfg.DefaultDeadline, tt.wantDeadline)
			}
			if tt.wantKeepAlive != 0 && cfg.KeepAliveInterval != tt.wantKeepAlive {
				t.Errorf("KeepAliveInterval = %v, want %v", cfg.KeepAliveInterval, tt.wantKeepAlive)
			}
			if cfg.Logger == nil {
				t.Error("no logger set: the client would log to stderr on its own")
			}
		})
	}
}

func TestParseConfigRefusesBadStrings(t *testing.T) {
	tests := []struct {
		give string
		want string // in the error
	}{
		{"", "no connection string"},
		{"   ", "no connection string"},
		{"http://127.0.0.1:2113", "invalid scheme"},
		{"127.0.0.1:2113", "invalid scheme"},
		{"esdb://", "doesn't have an host"},
		{"esdb://127.0.0.1:notaport", "port"},
		{"esdb://127.0.0.1:2113/some/path", "unsupported URL path"},
		{"esdb://127.0.0.1:2113?tls=maybe", "true or false"},
		{"esdb://127.0.0.1:2113?tsl=false", `unknown setting "tsl"`},
		{"esdb://127.0.0.1:2113?nodePreference=nearest", "NodePreference"},
		{"esdb://127.0.0.1:2113?defaultDeadline=soon", "defaultDeadline"},
		{"esdb://127.0.0.1:2113?userCertFile=/tmp/u.crt", "userCertFile and userKeyFile"},
		{"esdb://:secret@127.0.0.1:2113", "empty username"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			_, err := parseConfig(tt.give, zap.NewNop())
			if err == nil {
				t.Fatalf("parseConfig(%q) accepted it", tt.give)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to mention %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "eventstore: ") {
				t.Errorf("error %q does not say where it comes from", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ give, want string }{
		{"esdb://127.0.0.1:2113?tls=false", "esdb://127.0.0.1:2113?tls=false"},
		{"esdb://admin:changeit@db:2113?tls=true", "esdb://admin:xxxxx@db:2113?tls=true"},
		{"esdb://admin@db:2113", "esdb://admin@db:2113"},
		{"esdb://admin:p@ss@db:2113", "esdb://admin:xxxxx@db:2113"},
		{"esdb://admin:changeit@a:2113,b:2113/x", "esdb://admin:xxxxx@a:2113,b:2113/x"},
		{"not a url", "not a url"},
	}
	for _, tt := range tests {
		if got := redact(tt.give); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestClientLoggerGoesToZap(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	log := clientLogger(zap.New(core))
	log("error", "subscription has dropped. Reason: %v", "eof")
	log("debug", "trying candidate '%s'...", []interface{}{"127.0.0.1:2113"}) // as the client's applyLogger passes them
	entries := logs.All()
	if len(entries) != 2 {
		t.Fatalf("%d entries, want 2", len(entries))
	}
	if entries[0].Message != "subscription has dropped. Reason: eof" || entries[0].Level != zap.InfoLevel {
		t.Errorf("first entry %q at %v", entries[0].Message, entries[0].Level)
	}
	if entries[1].Message != "trying candidate '127.0.0.1:2113'..." || entries[1].Level != zap.DebugLevel {
		t.Errorf("second entry %q at %v", entries[1].Message, entries[1].Level)
	}
	if entries[0].LoggerName != "esdb-client" {
		t.Errorf("logger name %q", entries[0].LoggerName)
	}
}
