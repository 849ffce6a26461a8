// Command ledgerctl is the operator and auditor CLI of the credit ledger (API.md section 8).
//
// The auditor commands (replay, explain, verify, rebuild) read the ledger's event streams
// directly from the event store (JetStream at --nats-url, or EventStoreDB at
// --eventstore-url), because the streams are the truth and an audit must not trust the
// projections it is checking. The operator commands (open, balance, top-up, auto-top-up,
// adjust, movements) go through ledgerd's HTTP API at --api-url, so they follow the same
// rules, validation and authorisation as every other client.
//
// Flags may come before or after the positional arguments; every global flag can also be
// set in the environment as LEDGER_ + its name in upper case with "_" (as for ledgerd).
// Exit status: 0 on success, 1 when the command failed (or verify found differences), 2 on
// a usage error. Run "ledgerctl help" for the full text.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	// Ctrl-C cancels the context, so a long replay or rebuild stops cleanly instead of
	// leaving a half-written file (Rebuild writes aside and swaps at the end).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is ledgerctl with its arguments (without the program name); it returns the exit
// status. Tests call it in-process.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	inv, err := parseInvocation(args)
	switch {
	case errors.Is(err, errHelp):
		printHelp(stdout, inv.cmd)
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "ledgerctl: %v\n\n", err)
		printUsage(stderr, inv.cmd)
		return exitUsage
	}
	env := &env{globals: inv.globals, stdout: stdout, stderr: stderr}
	err = inv.exec(ctx, env, inv.args)
	return exitStatus(err, stderr, inv.cmd)
}

// exitStatus reports err on stderr and turns it into the exit status.
func exitStatus(err error, stderr io.Writer, cmd *command) int {
	var usage usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "ledgerctl: interrupted")
		return exitFailure
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "ledgerctl: %v\n\n", err)
		printUsage(stderr, cmd)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "ledgerctl: %v\n", err)
		return exitFailure
	}
}

// usageError is a command used wrongly (exit 2, with the command's usage).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// env is what a command runs with: the global flags and the output streams.
type env struct {
	globals globals
	stdout  io.Writer
	stderr  io.Writer
}
