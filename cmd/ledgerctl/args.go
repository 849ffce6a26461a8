package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

// globals are the flags every command accepts (API.md section 8: the same defaults as
// ledgerd).
type globals struct {
	natsURL       string
	natsUser      string
	natsPassword  string
	natsTLSCA     string
	natsTLSCert   string
	natsTLSKey    string
	store         string
	eventStoreURL string
	dataDir       string
	apiURL        string
	token         string
}

// register defines the global flags on fs, with their defaults taken from the
// environment the way ledgerd takes its own.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.natsURL, "nats-url", defaultNATSURL(), "`URL` of the NATS server holding the ledger's JetStream streams (env LEDGER_NATS_URL; else nats://$LEDGER_NATS_LISTEN)")
	fs.StringVar(&g.natsUser, "nats-user", os.Getenv("LEDGER_NATS_USER"), "NATS user name (`USER`), when ledgerd's NATS requires one")
	fs.StringVar(&g.natsPassword, "nats-password", os.Getenv("LEDGER_NATS_PASSWORD"), "NATS `PASSWORD`, with --nats-user")
	fs.StringVar(&g.natsTLSCA, "nats-tls-ca", os.Getenv("LEDGER_NATS_TLS_CA"), "PEM `FILE` of the CA of an external NATS's certificate (turns TLS on)")
	fs.StringVar(&g.natsTLSCert, "nats-tls-cert", os.Getenv("LEDGER_NATS_TLS_CERT"), "PEM client certificate `FILE`, with --nats-tls-key")
	fs.StringVar(&g.natsTLSKey, "nats-tls-key", os.Getenv("LEDGER_NATS_TLS_KEY"), "PEM private key `FILE` of --nats-tls-cert")
	fs.StringVar(&g.store, "store", envOr("STORE", "jetstream"), "where the ledger's event streams live: `STORE` is jetstream or eventstore")
	fs.StringVar(&g.eventStoreURL, "eventstore-url", os.Getenv("LEDGER_EVENTSTORE_URL"), "EventStoreDB connection `STRING`, with --store eventstore (e.g. esdb://127.0.0.1:2113?tls=false)")
	fs.StringVar(&g.dataDir, "data-dir", envOr("DATA_DIR", "./data"), "ledgerd's data `DIR`; the read models are {data-dir}/readmodels.db")
	fs.StringVar(&g.apiURL, "api-url", defaultAPIURL(), "`URL` of ledgerd's HTTP API, for the operator commands (env LEDGER_API_URL; else http://$LEDGER_HTTP_ADDR)")
	fs.StringVar(&g.token, "token", envOr("TOKEN", os.Getenv("LEDGER_ADMIN_TOKEN")), "bearer `TOKEN` for the API (env LEDGER_TOKEN or LEDGER_ADMIN_TOKEN)")
}

// envOr reads LEDGER_{name}, or def when it is unset or empty (an empty value would only
// ever be a mistake for these flags).
func envOr(name, def string) string {
	if v := os.Getenv("LEDGER_" + name); v != "" {
		return v
	}
	return def
}

// defaultNATSURL follows ledgerd's configuration when it is in the environment: an external
// NATS (LEDGER_NATS_URL) or the embedded one's listen address (LEDGER_NATS_LISTEN).
func defaultNATSURL() string {
	if v := os.Getenv("LEDGER_NATS_URL"); v != "" {
		return v
	}
	return "nats://" + envOr("NATS_LISTEN", "127.0.0.1:4222")
}

// defaultAPIURL is LEDGER_API_URL, else ledgerd's listen address (LEDGER_HTTP_ADDR).
func defaultAPIURL() string {
	if v := os.Getenv("LEDGER_API_URL"); v != "" {
		return v
	}
	return "http://" + envOr("HTTP_ADDR", "127.0.0.1:8080")
}

// command is one verb of ledgerctl.
type command struct {
	name string
	// args names the positional arguments, all required.
	args    []string
	summary string
	// details is the help text after the usage line: what it does and prints.
	details string
	// setup defines the command's own flags on fs and returns the function that runs
	// the command once fs is parsed.
	setup func(fs *flag.FlagSet) runFunc
}

// runFunc runs a command with its positional arguments.
type runFunc func(ctx context.Context, e *env, args []string) error

// invocation is a parsed command line.
type invocation struct {
	cmd     *command
	globals globals
	args    []string
	exec    runFunc
}

// errHelp asks for the help text (of inv.cmd, or the general one when it is nil).
var errHelp = errors.New("help requested")

// parseInvocation finds the command among args, then parses the global and the command's
// flags wherever they are, before or after the positional arguments.
func parseInvocation(args []string) (invocation, error) {
	var inv invocation
	flags, pos, idx := partition(args, anyValueFlag)
	if len(pos) == 0 {
		if hasHelpFlag(flags) {
			return inv, errHelp
		}
		return inv, usagef("no command given")
	}
	if pos[0] == "help" {
		if len(pos) > 1 {
			inv.cmd = lookup(pos[1])
			if inv.cmd == nil {
				return inv, usagef("unknown command %q", pos[1])
			}
		}
		return inv, errHelp
	}
	if inv.cmd = lookup(pos[0]); inv.cmd == nil {
		return inv, usagef("unknown command %q", pos[0])
	}
	rest := slices.Delete(slices.Clone(args), idx[0], idx[0]+1)
	fs := newFlagSet(inv.cmd.name)
	inv.globals.register(fs)
	inv.exec = inv.cmd.setup(fs)
	flags, pos, _ = partition(rest, func(name string) bool { return isValueFlag(fs, name) })
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return inv, errHelp
		}
		return inv, usageError{err.Error()}
	}
	inv.args = pos
	return inv, checkArgs(inv.cmd, pos)
}

// checkArgs checks the number of positional arguments.
func checkArgs(cmd *command, pos []string) error {
	if len(pos) < len(cmd.args) {
		return usagef("%s: missing %s", cmd.name, strings.Join(cmd.args[len(pos):], " "))
	}
	if len(pos) > len(cmd.args) {
		extra := pos[len(cmd.args)]
		if extra == "true" || extra == "false" {
			return usagef("%s: unexpected argument %q (a true/false flag takes its value with \"=\", e.g. --enabled=%s)", cmd.name, extra, extra)
		}
		return usagef("%s: unexpected argument %q", cmd.name, extra)
	}
	return nil
}

// newFlagSet returns a quiet flag set: ledgerctl prints its own usage and errors.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("ledgerctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// negativeNumber is a positional argument that starts with "-" but is not a flag, such
// as the amount of a debit adjustment.
var negativeNumber = regexp.MustCompile(`^-[0-9.]`)

// partition splits args into flags (with the values of flags that take one) and
// positional arguments, keeping each group in order, so that flags may come anywhere. A
// lone "--" ends the flags. idx holds the index in args of each positional argument.
func partition(args []string, takesValue func(name string) bool) (flags, pos []string, idx []int) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			for j := i + 1; j < len(args); j++ {
				pos, idx = append(pos, args[j]), append(idx, j)
			}
			return flags, pos, idx
		case len(a) < 2 || a[0] != '-' || negativeNumber.MatchString(a):
			pos, idx = append(pos, a), append(idx, i)
		default:
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue(name) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	return flags, pos, idx
}

// boolFlag is how the flag package recognises a flag that needs no value.
type boolFlag interface{ IsBoolFlag() bool }

// isValueFlag reports whether fs defines name as a flag that takes a value.
func isValueFlag(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(boolFlag)
	return !ok || !b.IsBoolFlag()
}

// anyValueFlag reports whether name takes a value as a global flag or as a flag of any
// command: the command is not known yet while it is being looked for.
func anyValueFlag(name string) bool {
	fs := newFlagSet("")
	var g globals
	g.register(fs)
	if isValueFlag(fs, name) {
		return true
	}
	for _, c := range commands {
		fs := newFlagSet(c.name)
		c.setup(fs)
		if isValueFlag(fs, name) {
			return true
		}
	}
	return false
}

func hasHelpFlag(flags []string) bool {
	for _, f := range flags {
		switch strings.TrimLeft(f, "-") {
		case "h", "help":
			return true
		}
	}
	return false
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// commandList is for the general help: name, arguments and summary of every command.
func commandList(w io.Writer, names ...string) {
	for _, n := range names {
		c := lookup(n)
		fmt.Fprintf(w, "  %-28s %s\n", strings.TrimSpace(c.name+" "+strings.Join(c.args, " ")), c.summary)
	}
}
