package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// commands are ledgerctl's verbs, in the order the help lists them.
var commands = []*command{
	replayCommand, explainCommand, verifyCommand, rebuildCommand,
	openCommand, balanceCommand, topUpCommand, autoTopUpCommand, adjustCommand, movementsCommand,
}

const helpIntro = `ledgerctl is the operator and auditor tool of the credit ledger.

Usage:
  ledgerctl COMMAND [ARGUMENTS] [FLAGS]

Flags may come before or after the arguments.
`

const helpOutro = `
Auditor commands read the event store directly (JetStream at --nats-url, or EventStoreDB
with --store eventstore), never the read models they audit. With ledgerd's embedded NATS
(the default) ledgerd must be running for them to reach the store.

Exit status: 0 success; 1 failure (and verify found differences); 2 wrong usage.
Run "ledgerctl help COMMAND" for what a command prints and its own flags.
`

// printHelp writes the general help (cmd nil) or the help of one command.
func printHelp(w io.Writer, cmd *command) {
	if cmd != nil {
		printCommandHelp(w, cmd)
		return
	}
	fmt.Fprint(w, helpIntro)
	fmt.Fprint(w, "\nAuditor commands (the event store is the truth):\n")
	commandList(w, "replay", "explain", "verify", "rebuild")
	fmt.Fprint(w, "\nOperator commands (through ledgerd's HTTP API at --api-url):\n")
	commandList(w, "open", "balance", "top-up", "auto-top-up", "adjust", "movements")
	fmt.Fprint(w, "\nGlobal flags (each also from the environment: LEDGER_ + NAME, e.g. LEDGER_DATA_DIR):\n")
	printFlags(w, globalFlagSet())
	fmt.Fprint(w, helpOutro)
}

func printCommandHelp(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", usageLine(cmd), strings.TrimSpace(cmd.details))
	fs := newFlagSet(cmd.name)
	cmd.setup(fs)
	if hasFlags(fs) {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs)
	}
	fmt.Fprint(w, "\nGlobal flags (see \"ledgerctl help\"): --nats-url, --nats-user, --nats-password,\n--nats-tls-ca, --nats-tls-cert, --nats-tls-key, --store, --eventstore-url, --data-dir, --api-url, --token.\n")
}

// printUsage is the short reminder shown after a usage error.
func printUsage(w io.Writer, cmd *command) {
	if cmd != nil {
		fmt.Fprintf(w, "Usage: %s\nRun \"ledgerctl help %s\" for details.\n", usageLine(cmd), cmd.name)
		return
	}
	fmt.Fprint(w, "Usage: ledgerctl COMMAND [ARGUMENTS] [FLAGS]\n\nCommands:\n")
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	commandList(w, names...)
	fmt.Fprint(w, "\nRun \"ledgerctl help\" for the flags, \"ledgerctl help COMMAND\" for one command.\n")
}

// usageLine is "ledgerctl NAME ARGS [--flag VALUE]...".
func usageLine(cmd *command) string {
	parts := append([]string{"ledgerctl", cmd.name}, cmd.args...)
	fs := newFlagSet(cmd.name)
	cmd.setup(fs)
	fs.VisitAll(func(f *flag.Flag) {
		name, _ := flag.UnquoteUsage(f)
		if name == "" {
			parts = append(parts, "[--"+f.Name+"]")
			return
		}
		parts = append(parts, "[--"+f.Name+" "+name+"]")
	})
	return strings.Join(parts, " ")
}

func globalFlagSet() *flag.FlagSet {
	fs := newFlagSet("")
	var g globals
	g.register(fs)
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// printFlags lists fs's flags as "--name VALUE  usage (default x)".
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		head := "--" + f.Name
		if name != "" {
			head += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && !strings.Contains(f.Name, "password") && f.Name != "token" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  %s\n      %s\n", head, usage)
	})
}
