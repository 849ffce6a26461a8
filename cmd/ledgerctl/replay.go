package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

var replayCommand = &command{
	name:    "replay",
	args:    []string{"ACCOUNT"},
	summary: "every event of an account's stream with the running balance",
	details: `
Reads the account's stream from the event store and prints every event in order: its
version, when it was recorded and when it occurred (UTC), its type, the signed amount it
moved (negative for charges, 0 for events that move no money) and the balance after it,
computed with the ledger's own Evolve. The last line is always

  balance ACCOUNT AMOUNT

With --until, events recorded after that time are left out, so the last line is the
balance as of that moment.

With --json every event is one JSON object on its own line (account_id, version,
position, event_id, recorded_at, occurred_at, type, amount, balance, detail and the
event's data), and the last line is one more JSON object instead of the text line:
  {"account_id": "acme", "balance": "42.5", "events": 17, "until": "..."}
so that the whole output is JSON Lines.

An account with no events in the store is an error (exit 1).`,
	setup: func(fs *flag.FlagSet) runFunc {
		until := fs.String("until", "", "leave out events recorded after this `RFC3339` time")
		asJSON := fs.Bool("json", false, "print JSON Lines instead of a table")
		return func(ctx context.Context, e *env, args []string) error {
			return replay(ctx, e, args[0], *until, *asJSON)
		}
	},
}

func replay(ctx context.Context, e *env, account, untilText string, asJSON bool) error {
	if err := ledger.CheckID("account_id", account); err != nil {
		return usagef("%v", err)
	}
	until, err := parseUntil(untilText)
	if err != nil {
		return err
	}
	evs, err := readAccount(ctx, e.globals, account)
	if err != nil {
		return err
	}
	ss := steps(evs)
	ss = recordedBy(ss, until)
	w := bufio.NewWriter(e.stdout)
	if asJSON {
		err = writeReplayJSON(w, account, ss, until)
	} else {
		err = writeReplayText(w, account, ss)
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

// parseUntil reads --until; empty means no limit.
func parseUntil(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usagef("--until must be an RFC 3339 time such as 2026-11-24T10:15:00Z, got %q", s)
	}
	return t, nil
}

// readAccount reads the whole stream of one account from the event store.
func readAccount(ctx context.Context, g globals, account string) ([]events.Envelope, error) {
	store, closeStore, err := openStore(ctx, g)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	evs, err := store.ReadStream(ctx, account, 0)
	if err != nil {
		return nil, fmt.Errorf("read the stream of account %q: %w", account, err)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("account %q has no events in the event store: no such account", account)
	}
	return evs, nil
}

// recordedBy keeps the steps up to the first one recorded after until (all when until is
// zero). The stream is in recorded order, so replay stops there.
func recordedBy(ss []step, until time.Time) []step {
	if until.IsZero() {
		return ss
	}
	for i, s := range ss {
		if s.RecordedAt.After(until) {
			return ss[:i]
		}
	}
	return ss
}

// finalBalance is the balance after the last step (0 before any).
func finalBalance(ss []step) decimal.Decimal {
	if len(ss) == 0 {
		return decimal.Zero
	}
	return ss[len(ss)-1].After
}

const replayRow = "%7s  %-24s  %-24s  %-22s  %12s  %12s  %s\n"

func writeReplayText(w io.Writer, account string, ss []step) error {
	fmt.Fprintf(w, replayRow, "VERSION", "RECORDED_AT", "OCCURRED_AT", "TYPE", "AMOUNT", "BALANCE", "DETAIL")
	for _, s := range ss {
		fmt.Fprintf(w, replayRow, fmt.Sprint(s.Version), timeText(s.RecordedAt), timeText(s.OccurredAt),
			shortType(s.Type()), signed(s.Amount), s.After.String(), detail(s.Data))
	}
	_, err := fmt.Fprintf(w, "balance %s %s\n", account, finalBalance(ss))
	return err
}

// replayEvent is one line of replay --json.
type replayEvent struct {
	AccountID  string          `json:"account_id"`
	Version    uint64          `json:"version"`
	Position   uint64          `json:"position"`
	EventID    string          `json:"event_id"`
	RecordedAt time.Time       `json:"recorded_at"`
	OccurredAt time.Time       `json:"occurred_at"`
	Type       string          `json:"type"`
	Amount     decimal.Decimal `json:"amount"`
	Balance    decimal.Decimal `json:"balance"`
	Detail     string          `json:"detail"`
	Data       events.Event    `json:"data"`
}

// replayEnd is the last line of replay --json.
type replayEnd struct {
	AccountID string          `json:"account_id"`
	Balance   decimal.Decimal `json:"balance"`
	Events    int             `json:"events"`
	Until     *time.Time      `json:"until,omitempty"`
}

func writeReplayJSON(w io.Writer, account string, ss []step, until time.Time) error {
	enc := json.NewEncoder(w)
	for _, s := range ss {
		line := replayEvent{AccountID: s.AccountID, Version: s.Version, Position: s.Position, EventID: s.ID.String(),
			RecordedAt: s.RecordedAt.UTC(), OccurredAt: s.OccurredAt.UTC(), Type: s.Type(),
			Amount: s.Amount, Balance: s.After, Detail: detail(s.Data), Data: s.Data}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	end := replayEnd{AccountID: account, Balance: finalBalance(ss), Events: len(ss)}
	if !until.IsZero() {
		u := until.UTC()
		end.Until = &u
	}
	return enc.Encode(end)
}
