package main

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPartition(t *testing.T) {
	takesValue := func(name string) bool { return name == "until" || name == "reason" }
	for _, tt := range []struct {
		name      string
		give      []string
		wantFlags []string
		wantPos   []string
	}{
		{"flags after", []string{"replay", "acme", "--until", "2026-01-01T00:00:00Z", "--json"},
			[]string{"--until", "2026-01-01T00:00:00Z", "--json"}, []string{"replay", "acme"}},
		{"flags before", []string{"--json", "--until", "x", "replay", "acme"},
			[]string{"--json", "--until", "x"}, []string{"replay", "acme"}},
		{"interleaved with =", []string{"adjust", "--reason=fee", "acme", "-1"},
			[]string{"--reason=fee"}, []string{"adjust", "acme", "-1"}},
		{"negative amounts are arguments", []string{"adjust", "acme", "-0.5", "--reason", "-x"},
			[]string{"--reason", "-x"}, []string{"adjust", "acme", "-0.5"}},
		{"double dash ends flags", []string{"replay", "--", "--json"}, nil, []string{"replay", "--json"}},
		{"lone dash is an argument", []string{"x", "-"}, nil, []string{"x", "-"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			flags, pos, _ := partition(tt.give, takesValue)
			if !slices.Equal(flags, tt.wantFlags) || !slices.Equal(pos, tt.wantPos) {
				t.Errorf("partition(%q) = %q, %q; want %q, %q", tt.give, flags, pos, tt.wantFlags, tt.wantPos)
			}
		})
	}
}

// TestUsageErrors: a wrong command line exits 2 with a message and the usage, before
// anything is contacted.
func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		give []string
		want string
	}{
		{"no command", nil, "ledgerctl: no command given"},
		{"unknown command", []string{"frobnicate"}, `ledgerctl: unknown command "frobnicate"`},
		{"help of unknown command", []string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{"missing account", []string{"replay"}, "ledgerctl: replay: missing ACCOUNT"},
		{"missing usage id", []string{"explain", "acme"}, "ledgerctl: explain: missing USAGE_ID"},
		{"missing amount", []string{"top-up", "acme"}, "ledgerctl: top-up: missing AMOUNT"},
		{"extra argument", []string{"balance", "acme", "extra"}, `ledgerctl: balance: unexpected argument "extra"`},
		{"unknown flag", []string{"replay", "acme", "--frob"}, "flag provided but not defined: -frob"},
		{"bad until", []string{"replay", "acme", "--until", "yesterday"}, "--until must be an RFC 3339 time"},
		{"bad account id", []string{"replay", "a b"}, "account_id must be 1..64 characters"},
		{"bad format", []string{"movements", "acme", "--format", "xml"}, "--format must be csv or json"},
		{"bad store", []string{"replay", "acme", "--store", "postgres"}, "--store must be jetstream or eventstore"},
		{"eventstore without url", []string{"replay", "acme", "--store", "eventstore"}, "--store eventstore needs --eventstore-url"},
		{"open without currency", []string{"open", "acme"}, "open: missing --currency"},
		{"adjust without reason", []string{"adjust", "acme", "5"}, "adjust: missing --reason"},
		{"auto-top-up without enabled", []string{"auto-top-up", "acme"}, "missing --enabled=true or --enabled=false"},
		{"auto-top-up enabled alone", []string{"auto-top-up", "acme", "--enabled"}, "--enabled=true needs --threshold and --amount"},
		{"bool flag with a space", []string{"auto-top-up", "acme", "--enabled", "false"}, `(a true/false flag takes its value with "=", e.g. --enabled=false)`},
		{"bad api url", []string{"balance", "acme", "--api-url", "localhost:8080"}, "--api-url must be an http(s) URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ctl(tt.give...)
			if r.code != exitUsage {
				t.Errorf("exit %d, want 2; stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "Usage: ledgerctl") {
				t.Errorf("stderr does not hold %q and the usage:\n%s", tt.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, give := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := ctl(give...)
		if r.code != 0 {
			t.Errorf("%q: exit %d", give, r.code)
		}
		wantContains(t, strings.Join(give, " "), r.stdout, "Auditor commands", "Operator commands", "replay ACCOUNT",
			"--nats-url URL", "default nats://127.0.0.1:4222", "--data-dir DIR", "Exit status")
	}
	for _, c := range commands {
		for _, give := range [][]string{{"help", c.name}, {c.name, "-h"}, {c.name, "acme", "--help"}} {
			r := ctl(give...)
			if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: ledgerctl "+c.name) {
				t.Errorf("%q: exit %d, stdout %q", give, r.code, r.stdout)
			}
		}
	}
	wantContains(t, "help replay", ctl("help", "replay").stdout, "balance ACCOUNT AMOUNT", "--until RFC3339", "--json")
}

// TestUnreachable: with nothing listening, the commands say what they could not reach and
// exit 1.
func TestUnreachable(t *testing.T) {
	addr := freeAddr(t) // free: nothing listens there
	r := ctl("replay", "acme", "--nats-url", "nats://"+addr)
	if r.code != 1 || !strings.Contains(r.stderr, "ledgerctl: cannot reach NATS at nats://"+addr) || !strings.Contains(r.stderr, "is ledgerd running?") {
		t.Errorf("replay: exit %d, stderr %q", r.code, r.stderr)
	}
	r = ctl("balance", "acme", "--api-url", "http://"+addr)
	if r.code != 1 || !strings.Contains(r.stderr, "ledgerctl: cannot reach ledgerd's API at http://"+addr) {
		t.Errorf("balance: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "rebuild", "events")
	clock := p.start
	p.now = func() time.Time { return clock }
	for done := uint64(0); done <= 1000; done += 50 {
		clock = clock.Add(10 * time.Millisecond)
		p.Update(done, 1000)
	}
	p.Done(1000, 1000)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 11 { // one per tenth: 0%, 10%, ..., 100%
		t.Errorf("%d lines, want 11:\n%s", len(lines), buf.String())
	}
	if strings.Contains(buf.String(), "\r") {
		t.Error("a non-terminal got carriage returns")
	}
	if last := lines[len(lines)-1]; last != "rebuild: 100% 1000/1000 events 200ms" {
		t.Errorf("last line %q", last)
	}

	buf.Reset()
	p = newProgress(&buf, "rebuild", "events")
	p.Done(0, 0)
	if got := buf.String(); !strings.HasPrefix(got, "rebuild: 100% 0/0 events") {
		t.Errorf("empty store: %q", got)
	}
}

// TestAuditRefusals: a second rebuild of the same read models, verify without read models,
// or a data dir that does not exist, are refused before the store is contacted.
func TestAuditRefusals(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockRebuild(filepath.Join(dir, readModelsFile))
	if err != nil {
		t.Fatal(err)
	}
	r := ctl("rebuild", "--data-dir", dir, "--nats-url", "nats://"+freeAddr(t))
	if r.code != 1 || !strings.Contains(r.stderr, "another ledgerctl rebuild of "+filepath.Join(dir, readModelsFile)+" is running") {
		t.Errorf("second rebuild: exit %d, stderr %q", r.code, r.stderr)
	}
	unlock()
	if _, err := lockRebuild(filepath.Join(dir, readModelsFile)); err != nil {
		t.Errorf("lock not released: %v", err)
	}

	r = ctl("verify", "--data-dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "no read models at "+filepath.Join(dir, readModelsFile)) {
		t.Errorf("verify without read models: exit %d, stderr %q", r.code, r.stderr)
	}
	r = ctl("rebuild", "--data-dir", filepath.Join(dir, "nope"))
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist: is --data-dir ledgerd's data directory?") {
		t.Errorf("missing data dir: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestEnvironment: the global flags fall back on ledgerd's environment variables, and a flag
// on the command line wins.
func TestEnvironment(t *testing.T) {
	for _, name := range []string{"NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_TLS_CA", "NATS_TLS_CERT", "NATS_TLS_KEY", "STORE", "EVENTSTORE_URL", "API_URL"} {
		t.Setenv("LEDGER_"+name, "")
	}
	t.Setenv("LEDGER_NATS_LISTEN", "127.0.0.1:5222")
	t.Setenv("LEDGER_HTTP_ADDR", "127.0.0.1:9090")
	t.Setenv("LEDGER_DATA_DIR", "/var/lib/ledger")
	t.Setenv("LEDGER_TOKEN", "")
	t.Setenv("LEDGER_ADMIN_TOKEN", "s3cret")
	inv, err := parseInvocation([]string{"balance", "acme", "--data-dir", "/elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	want := globals{natsURL: "nats://127.0.0.1:5222", apiURL: "http://127.0.0.1:9090", dataDir: "/elsewhere",
		token: "s3cret", store: "jetstream"}
	if inv.globals != want {
		t.Errorf("globals %+v, want %+v", inv.globals, want)
	}
}
