package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// accountView is the account as the API shows it (API.md section 2). Amounts stay the
// API's strings: ledgerctl shows them, it does not compute with them.
type accountView struct {
	AccountID           string `json:"account_id"`
	Currency            string `json:"currency"`
	Balance             string `json:"balance"`
	Alert               string `json:"alert"`
	AlertSince          string `json:"alert_since"`
	LowBalanceThreshold string `json:"low_balance_threshold"`
	AutoTopUp           struct {
		Enabled     bool   `json:"enabled"`
		Threshold   string `json:"threshold"`
		Amount      string `json:"amount"`
		State       string `json:"state"`
		LastFailure string `json:"last_failure"`
	} `json:"auto_top_up"`
	Version   uint64 `json:"version"`
	UpdatedAt string `json:"updated_at"`
}

func (a accountView) autoTopUpText() string {
	t := a.AutoTopUp
	s := "disabled"
	if t.Enabled {
		s = fmt.Sprintf("enabled: below %s add %s", t.Threshold, t.Amount)
	}
	s += " (" + t.State
	if t.LastFailure != "" {
		s += ", last failure " + t.LastFailure
	}
	return s + ")"
}

var openCommand = &command{
	name:    "open",
	args:    []string{"ACCOUNT"},
	summary: "open an account in a currency",
	details: `
Opens the account (PUT /v1/accounts/ACCOUNT). Opening an account that already exists with
the same currency changes nothing and says so; with another currency it is an error.`,
	setup: func(fs *flag.FlagSet) runFunc {
		currency := fs.String("currency", "", "the account's `CURRENCY`, e.g. USD (required)")
		threshold := fs.String("low-balance-threshold", "", "alert level \"low\" below this `AMOUNT` (default 10)")
		return func(ctx context.Context, e *env, args []string) error {
			if *currency == "" {
				return usagef("open: missing --currency")
			}
			body := map[string]string{"currency": *currency}
			if *threshold != "" {
				body["low_balance_threshold"] = *threshold
			}
			return openAccount(ctx, e, args[0], body)
		}
	},
}

func openAccount(ctx context.Context, e *env, id string, body map[string]string) error {
	c, err := newAPIClient(e.globals)
	if err != nil {
		return err
	}
	var a accountView
	status, err := c.call(ctx, http.MethodPut, accountPath(id), nil, body, &a)
	if err != nil {
		return err
	}
	what := "opened"
	if status == http.StatusOK {
		what = "already open"
	}
	fmt.Fprintf(e.stdout, "account %s %s: %s, balance %s, alert %s\n", a.AccountID, what, a.Currency, a.Balance, a.Alert)
	return nil
}

var balanceCommand = &command{
	name:    "balance",
	args:    []string{"ACCOUNT"},
	summary: "balance, alert level and auto top-up state of an account",
	details: `
Shows the account as ledgerd's read models have it (GET /v1/accounts/ACCOUNT): balance and
currency, alert level, low-balance threshold, auto top-up settings and state, stream
version. With --json it prints the API's JSON unchanged.`,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print the API's JSON")
		return func(ctx context.Context, e *env, args []string) error {
			return showBalance(ctx, e, args[0], *asJSON)
		}
	},
}

func showBalance(ctx context.Context, e *env, id string, asJSON bool) error {
	c, err := newAPIClient(e.globals)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if _, err := c.call(ctx, http.MethodGet, accountPath(id), nil, nil, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	var a accountView
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("unreadable account: %w", err)
	}
	row := func(label, value string) { fmt.Fprintf(e.stdout, "%-22s %s\n", label, value) }
	row("account", a.AccountID)
	row("balance", a.Balance+" "+a.Currency)
	row("alert", a.Alert+" (since "+a.AlertSince+")")
	row("low balance threshold", a.LowBalanceThreshold)
	row("auto top-up", a.autoTopUpText())
	row("version", fmt.Sprint(a.Version))
	row("updated at", a.UpdatedAt)
	return nil
}

// topUpView is a top-up as the API shows it (API.md section 5).
type topUpView struct {
	TopUpID       string  `json:"top_up_id"`
	Kind          string  `json:"kind"`
	Amount        string  `json:"amount"`
	State         string  `json:"state"`
	Attempts      int     `json:"attempts"`
	FailureReason string  `json:"failure_reason"`
	RequestedAt   string  `json:"requested_at"`
	CompletedAt   *string `json:"completed_at"`
}

// topUpPollInterval is how often top-up --wait asks for the top-up's state.
const topUpPollInterval = 100 * time.Millisecond

var topUpCommand = &command{
	name:    "top-up",
	args:    []string{"ACCOUNT", "AMOUNT"},
	summary: "request a one-time top-up (the payment gateway is charged)",
	details: `
Requests a one-time top-up of AMOUNT (POST /v1/accounts/ACCOUNT/top-ups) and prints its id
and state. Without --id a new id is generated (tu-<UTC time>-<random>) and printed: give
the same --id to retry safely, since the same id and amount return the existing top-up
instead of charging again.

With --wait, waits up to that long for the payment to finish; a top-up that failed (or is
still pending when the time is up) is an error (exit 1).`,
	setup: func(fs *flag.FlagSet) runFunc {
		id := fs.String("id", "", "the top-up's `ID` (default: a new one)")
		wait := fs.Duration("wait", 0, "wait up to this `DURATION` (e.g. 30s) for the payment to succeed or fail")
		return func(ctx context.Context, e *env, args []string) error {
			return topUp(ctx, e, args[0], args[1], *id, *wait)
		}
	},
}

func topUp(ctx context.Context, e *env, account, amount, id string, wait time.Duration) error {
	c, err := newAPIClient(e.globals)
	if err != nil {
		return err
	}
	if id == "" {
		id = newID("tu")
	}
	var t topUpView
	status, err := c.call(ctx, http.MethodPost, accountPath(account, "/top-ups"), nil,
		map[string]string{"top_up_id": id, "amount": amount}, &t)
	if err != nil {
		return err
	}
	what := "requested"
	if status == http.StatusOK {
		what = "already requested"
	}
	fmt.Fprintf(e.stdout, "top-up %s of %s for %s %s: %s\n", t.TopUpID, t.Amount, account, what, t.State)
	if wait <= 0 || t.State != "pending" {
		return topUpOutcome(t)
	}
	if t, err = awaitTopUp(ctx, c, account, t.TopUpID, wait); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "top-up %s: %s after %d attempt(s)\n", t.TopUpID, t.State, t.Attempts)
	return topUpOutcome(t)
}

// topUpOutcome is an error for a failed top-up, so that scripts see exit 1.
func topUpOutcome(t topUpView) error {
	if t.State == "failed" {
		return fmt.Errorf("top-up %s failed: %s", t.TopUpID, t.FailureReason)
	}
	return nil
}

// awaitTopUp polls the top-up until it is no longer pending or wait has passed.
func awaitTopUp(ctx context.Context, c *apiClient, account, id string, wait time.Duration) (topUpView, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(topUpPollInterval)
	defer tick.Stop()
	for {
		var t topUpView
		_, err := c.call(ctx, http.MethodGet, accountPath(account, "/top-ups/", url.PathEscape(id)), nil, nil, &t)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return t, fmt.Errorf("top-up %s is still pending after %s", id, wait)
		case err != nil:
			return t, err
		case t.State != "pending":
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, fmt.Errorf("top-up %s is still pending after %s", id, wait)
		case <-tick.C:
		}
	}
}

// newID makes an id for a top-up or adjustment the operator did not name: the time makes
// it readable and sortable, the random part unique. It fits the ids' alphabet.
func newID(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return prefix + "-" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

var autoTopUpCommand = &command{
	name:    "auto-top-up",
	args:    []string{"ACCOUNT"},
	summary: "turn auto top-up on or off, with its threshold and amount",
	details: `
Saves the auto top-up settings (PUT /v1/accounts/ACCOUNT/auto-top-up): whenever the
balance is below --threshold, a top-up of --amount is started. Saving also lifts a
"suspended" state after failed payments. --enabled=true needs --threshold and --amount;
with --enabled=false the ones not given keep their current values.`,
	setup: func(fs *flag.FlagSet) runFunc {
		enabled := fs.Bool("enabled", false, "true to turn auto top-up on, false to turn it off (write --enabled=false)")
		threshold := fs.String("threshold", "", "top up when the balance is below this `AMOUNT`")
		amount := fs.String("amount", "", "the `AMOUNT` of each auto top-up")
		return func(ctx context.Context, e *env, args []string) error {
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if !set["enabled"] {
				return usagef("auto-top-up: missing --enabled=true or --enabled=false")
			}
			if *enabled && (*threshold == "" || *amount == "") {
				return usagef("auto-top-up: --enabled=true needs --threshold and --amount")
			}
			return configureAutoTopUp(ctx, e, args[0], *enabled, *threshold, *amount)
		}
	},
}

func configureAutoTopUp(ctx context.Context, e *env, account string, enabled bool, threshold, amount string) error {
	c, err := newAPIClient(e.globals)
	if err != nil {
		return err
	}
	if threshold == "" || amount == "" {
		// Turning it off: the API wants all three fields; keep what is saved.
		var cur accountView
		if _, err := c.call(ctx, http.MethodGet, accountPath(account), nil, nil, &cur); err != nil {
			return err
		}
		threshold = firstNonEmpty(threshold, cur.AutoTopUp.Threshold)
		amount = firstNonEmpty(amount, cur.AutoTopUp.Amount)
	}
	body := map[string]any{"enabled": enabled, "threshold": threshold, "amount": amount}
	var a accountView
	if _, err := c.call(ctx, http.MethodPut, accountPath(account, "/auto-top-up"), nil, body, &a); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "auto top-up of %s: %s\n", a.AccountID, a.autoTopUpText())
	return nil
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var adjustCommand = &command{
	name:    "adjust",
	args:    []string{"ACCOUNT", "AMOUNT"},
	summary: "append a compensating credit (+) or debit (-), e.g. a refund",
	details: `
Appends an adjustment (POST /v1/accounts/ACCOUNT/adjustments): a positive AMOUNT credits
the account, a negative one debits it (write it as is: "adjust acme -5 --reason ...").
With --usage-id it refunds that usage, and the refunds of a usage can never exceed its
charge. Without --id a new id is generated and printed; give the same --id to retry safely.`,
	setup: func(fs *flag.FlagSet) runFunc {
		reason := fs.String("reason", "", "why (`TEXT`), shown on the statement; required")
		usageID := fs.String("usage-id", "", "the usage (`USAGE_ID`) this adjustment refunds")
		id := fs.String("id", "", "the adjustment's `ID` (default: a new one)")
		return func(ctx context.Context, e *env, args []string) error {
			if *reason == "" {
				return usagef("adjust: missing --reason")
			}
			body := map[string]string{"adjustment_id": firstNonEmpty(*id, newID("adj")), "amount": args[1], "reason": *reason}
			if *usageID != "" {
				body["usage_id"] = *usageID
			}
			return adjust(ctx, e, args[0], body)
		}
	},
}

func adjust(ctx context.Context, e *env, account string, body map[string]string) error {
	c, err := newAPIClient(e.globals)
	if err != nil {
		return err
	}
	var got struct {
		AdjustmentID string `json:"adjustment_id"`
		Amount       string `json:"amount"`
		UsageID      string `json:"usage_id"`
	}
	status, err := c.call(ctx, http.MethodPost, accountPath(account, "/adjustments"), nil, body, &got)
	if err != nil {
		return err
	}
	what := "applied to"
	if status == http.StatusOK {
		what = "was already applied to"
	}
	ref := ""
	if got.UsageID != "" {
		ref = " (usage " + got.UsageID + ")"
	}
	fmt.Fprintf(e.stdout, "adjustment %s %s %s: %s%s\n", got.AdjustmentID, what, account, got.Amount, ref)
	return nil
}

// movementsPageSize is the page size movements --format json asks for: the API's maximum,
// to make as few requests as possible.
const movementsPageSize = 1000

var movementsCommand = &command{
	name:    "movements",
	args:    []string{"ACCOUNT"},
	summary: "the account's credit movements, as CSV or JSON",
	details: `
Exports the account's credit movements (API.md section 7) in stream order.

--format csv (the default) streams the "Export credit movements" file
(GET /v1/accounts/ACCOUNT/movements.csv) to stdout as the API writes it, header included.

--format json follows next_cursor through every page of GET /v1/accounts/ACCOUNT/movements
and prints JSON Lines: one movement object per line, so that millions of movements stream
in constant memory (jq -s . makes one array of them).

The filters are the API's: --from and --to (RFC 3339), --cause, --type (usage, top_up,
adjustment) and --user-id.`,
	setup: func(fs *flag.FlagSet) runFunc {
		format := fs.String("format", "csv", "`FORMAT` of the output: csv or json")
		q := map[string]*string{
			"from":    fs.String("from", "", "only movements that occurred at or after this `RFC3339` time"),
			"to":      fs.String("to", "", "only movements that occurred before this `RFC3339` time"),
			"cause":   fs.String("cause", "", "only this `CAUSE` (e.g. fair_usage_exceeded, top_up, adjustment)"),
			"type":    fs.String("type", "", "only this `TYPE`: usage, top_up or adjustment"),
			"user_id": fs.String("user-id", "", "only the usage of this user (`USER_ID`)"),
		}
		return func(ctx context.Context, e *env, args []string) error {
			query := url.Values{}
			for k, v := range q {
				if *v != "" {
					query.Set(k, *v)
				}
			}
			switch *format {
			case "csv":
				return exportCSV(ctx, e, args[0], query)
			case "json":
				return exportJSON(ctx, e, args[0], query)
			}
			return usagef("movements: --format must be csv or json, got %q", *format)
		}
	},
}

func exportCSV(ctx context.Context, e *env, account string, query url.Values) error {
	c, err := newAPIClient(e.globals)
	if err != nil {
		return err
	}
	resp, err := c.send(ctx, http.MethodGet, accountPath(account, "/movements.csv"), query, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(e.stdout, resp.Body); err != nil {
		// ledgerd cuts the stream when the export fails half-way; say so rather than
		// leave a file that looks complete.
		return fmt.Errorf("the export was cut short, the output is incomplete: %w", err)
	}
	return nil
}

func exportJSON(ctx context.Context, e *env, account string, query url.Values) error {
	c, err := newAPIClient(e.globals)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(e.stdout)
	query.Set("limit", fmt.Sprint(movementsPageSize))
	for {
		var page struct {
			Movements  []json.RawMessage `json:"movements"`
			NextCursor string            `json:"next_cursor"`
		}
		if _, err := c.call(ctx, http.MethodGet, accountPath(account, "/movements"), query, nil, &page); err != nil {
			return err
		}
		for _, m := range page.Movements {
			var line bytes.Buffer
			if err := json.Compact(&line, m); err != nil {
				return fmt.Errorf("unreadable movement: %w", err)
			}
			line.WriteByte('\n')
			if _, err := w.Write(line.Bytes()); err != nil {
				return err
			}
		}
		if page.NextCursor == "" {
			return w.Flush()
		}
		query.Set("cursor", page.NextCursor)
	}
}
