package eventstore

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"go.uber.org/zap"
)

// knownSettings are the query settings EventStore-Client-Go v4 understands (lower-case,
// as it compares them). The client only logs an unknown one and carries on, so a typo
// such as "tsl=false" would silently leave TLS on and fail later with a puzzling
// handshake error; parseConfig refuses it instead.
var knownSettings = map[string]bool{
	"discoveryinterval":   true,
	"gossiptimeout":       true,
	"maxdiscoverattempts": true,
	"nodepreference":      true,
	"keepaliveinterval":   true,
	"keepalivetimeout":    true,
	"tls":                 true,
	"tlscafile":           true,
	"usercertfile":        true,
	"userkeyfile":         true,
	"tlsverifycert":       true,
	"defaultdeadline":     true,
}

// parseConfig turns a connection string (esdb://host:2113?tls=false) into the client's
// configuration, with the client's logging sent to log. Errors name the string with any
// password masked.
func parseConfig(connectionString string, log *zap.Logger) (*esdb.Configuration, error) {
	if strings.TrimSpace(connectionString) == "" {
		return nil, errors.New("eventstore: no connection string (for example esdb://127.0.0.1:2113?tls=false)")
	}
	shown := redact(connectionString)
	if !strings.Contains(connectionString, "://") {
		return nil, fmt.Errorf("eventstore: connection string %q: an invalid scheme is specified, expecting esdb:// or esdb+discover://", shown)
	}
	if i := strings.IndexByte(connectionString, '?'); i >= 0 {
		query, err := url.ParseQuery(connectionString[i+1:])
		if err != nil {
			return nil, fmt.Errorf("eventstore: connection string %q: bad settings: %w", shown, err)
		}
		for key, values := range query {
			lower := strings.ToLower(key)
			if !knownSettings[lower] {
				return nil, fmt.Errorf("eventstore: connection string %q: unknown setting %q", shown, key)
			}
			// The client ignores a malformed defaultDeadline without a word; say it.
			if lower == "defaultdeadline" && len(values) > 0 {
				if ms, err := strconv.Atoi(values[0]); err != nil || ms < 1 {
					return nil, fmt.Errorf("eventstore: connection string %q: defaultDeadline must be a positive number of milliseconds", shown)
				}
			}
		}
	}
	cfg, err := esdb.ParseConnectionString(connectionString)
	if err != nil {
		return nil, fmt.Errorf("eventstore: connection string %q: %w", shown, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventstore: connection string %q: %w", shown, err)
	}
	cfg.Logger = clientLogger(log)
	return cfg, nil
}

// redact masks the password of a connection string so it can appear in errors and logs.
// It works on the raw text because a string that fails to parse must be masked too.
func redact(connectionString string) string {
	scheme := strings.Index(connectionString, "://")
	if scheme < 0 {
		return connectionString
	}
	rest := connectionString[scheme+3:]
	authority := rest
	if end := strings.IndexAny(rest, "/?"); end >= 0 {
		authority = rest[:end]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return connectionString
	}
	userinfo := authority[:at]
	user, _, hasPassword := strings.Cut(userinfo, ":")
	if !hasPassword {
		return connectionString
	}
	return connectionString[:scheme+3] + user + ":xxxxx" + rest[at:]
}

// clientLogger routes the client library's log lines to zap. The client logs every
// failure it returns (and every subscription drop) at error level; the store returns or
// handles those errors itself and logs what matters once, so the client's own lines go
// one step down: its errors and warnings to Info, the rest to Debug.
func clientLogger(log *zap.Logger) esdb.LoggingFunc {
	l := log.Named("esdb-client")
	return func(level esdb.LogLevel, format string, args ...interface{}) {
		// Some client call sites pass their argument slice as a single argument.
		if len(args) == 1 {
			if inner, ok := args[0].([]interface{}); ok {
				args = inner
			}
		}
		msg := fmt.Sprintf(format, args...)
		switch level {
		case esdb.LogError, esdb.LogWarn:
			l.Info(msg)
		default:
			l.Debug(msg)
		}
	}
}
