package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/telephony/creditledger/events"
)

// This file keeps the encoding/json and regexp based implementation of ParseUsage and
// ParseAmount as it was before the hand-written scanner, as the reference the differential
// fuzz tests hold the fast code to. It is the old code unchanged but for two points, marked
// below: the old free-text length check iterated over a map, so with several over-long fields
// the reason was random among them; the reference (and ParseUsage) report the first in a
// fixed order, which was one of the old possible answers. And the old trailing-data check
// (Decoder.More) let a stray '}' or ']' after the object through; both now reject anything
// but whitespace there.

var (
	amountPatternReference   = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
	currencyPatternReference = regexp.MustCompile(`^[A-Z]{3}$`)
)

func parseUsageReference(raw []byte) (Usage, error) {
	if len(raw) > UsagePayloadMax {
		return Usage{}, Errorf(EINVALID, "payload_too_large", "usage event is %d bytes, the limit is %d", len(raw), UsagePayloadMax)
	}
	var w usageWire
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&w); err != nil {
		return Usage{}, Errorf(EINVALID, "malformed_json", "usage event is not a JSON object of string fields: %v", err)
	}
	// Changed: was dec.More(), which accepted "{...}}" and "{...}]x".
	if len(bytes.TrimLeft(raw[dec.InputOffset():], " \t\r\n")) > 0 {
		return Usage{}, Errorf(EINVALID, "malformed_json", "usage event has trailing data after the JSON object")
	}
	return validateReference(w)
}

func validateReference(w usageWire) (Usage, error) {
	var u Usage
	var err error
	for _, f := range []struct {
		name string
		v    *string
	}{{"usage_id", w.UsageID}, {"account_id", w.AccountID}, {"type", w.Type}, {"occurred_at", w.OccurredAt}, {"amount", w.Amount}, {"currency", w.Currency}} {
		if f.v == nil {
			return u, Errorf(EINVALID, "missing_field", "%s is required", f.name)
		}
	}
	if err = CheckID("usage_id", *w.UsageID); err != nil {
		return u, err
	}
	if err = CheckID("account_id", *w.AccountID); err != nil {
		return u, err
	}
	c := events.UsageCharged{UsageID: *w.UsageID, UsageType: *w.Type, Reason: strReference(w.Reason)}
	if c.Cause, err = CauseOf(c.UsageType, c.Reason); err != nil {
		return u, err
	}
	if c.UsedAt, err = ParseTime("occurred_at", *w.OccurredAt); err != nil {
		return u, err
	}
	if c.Amount, err = parseNonNegativeReference("amount", *w.Amount); err != nil {
		return u, err
	}
	if c.Currency, err = parseCurrencyReference(*w.Currency); err != nil {
		return u, err
	}
	c.UserID, c.Quantity, c.Unit, c.Destination = strReference(w.UserID), strReference(w.Quantity), strReference(w.Unit), strReference(w.Destination)
	// The one change: a slice in declaration order instead of a map (see the top of the file).
	for _, f := range []struct{ name, v string }{{"user_id", c.UserID}, {"quantity", c.Quantity}, {"unit", c.Unit}, {"destination", c.Destination}} {
		if len(f.v) > freeTextMax {
			return u, Errorf(EINVALID, "invalid_"+f.name, "%s is longer than %d bytes", f.name, freeTextMax)
		}
	}
	if c.Quantity != "" {
		if _, err := parseNonNegativeReference("quantity", c.Quantity); err != nil {
			return u, Errorf(EINVALID, "invalid_quantity", "quantity must be a non-negative decimal string, got %q", truncate(c.Quantity, 40))
		}
	}
	c.ContentHash = contentHashReference(*w.AccountID, c)
	return Usage{AccountID: *w.AccountID, Charge: c}, nil
}

func parseCurrencyReference(s string) (string, error) {
	if !currencyPatternReference.MatchString(s) {
		return "", Errorf(EINVALID, "invalid_currency", "currency must be three upper-case letters, got %q", truncate(s, 20))
	}
	return s, nil
}

func contentHashReference(accountID string, c events.UsageCharged) string {
	h := sha256.New()
	for _, f := range []string{accountID, c.UsageID, c.UsageType, c.Reason, c.UsedAt.Format(time.RFC3339Nano),
		c.Amount.String(), c.Currency, c.UserID, c.Quantity, c.Unit, c.Destination} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func strReference(p *string) string {
	if p == nil {
		return ""
	}
	return strings.Clone(*p)
}

func parseAmountReference(field, s string) (decimal.Decimal, error) {
	if !amountPatternReference.MatchString(s) {
		return decimal.Decimal{}, Errorf(EINVALID, "invalid_amount", "%s must be a decimal string like \"12.50\", got %q", field, s)
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, Errorf(EINVALID, "invalid_amount", "%s: %v", field, err)
	}
	if -d.Exponent() > AmountScaleMax {
		return decimal.Decimal{}, Errorf(EINVALID, "invalid_amount", "%s has more than %d decimal places: %q", field, AmountScaleMax, s)
	}
	if d.Abs().GreaterThanOrEqual(decimal.New(1, amountDigitsMax)) {
		return decimal.Decimal{}, Errorf(EINVALID, "invalid_amount", "%s is too large: %q", field, s)
	}
	return d, nil
}

func parseNonNegativeReference(field, s string) (decimal.Decimal, error) {
	d, err := parseAmountReference(field, s)
	if err != nil {
		return d, err
	}
	if d.IsNegative() {
		return decimal.Decimal{}, Errorf(EINVALID, "invalid_amount", "%s must not be negative: %q", field, s)
	}
	return d, nil
}

func parsePositiveReference(field, s string) (decimal.Decimal, error) {
	d, err := parseAmountReference(field, s)
	if err != nil {
		return d, err
	}
	if !d.IsPositive() {
		return decimal.Decimal{}, Errorf(EINVALID, "invalid_amount", "%s must be greater than 0: %q", field, s)
	}
	return d, nil
}

// diffErrors describes how two results' errors differ, or returns "" when both are nil or
// both are *Error with the same code, reason and message.
func diffErrors(got, want error) string {
	if got == nil && want == nil {
		return ""
	}
	var g, w *Error
	if !errors.As(got, &g) || !errors.As(want, &w) {
		return "got error " + errString(got) + ", want " + errString(want)
	}
	if *g != *w {
		return "got error " + errString(got) + " (" + g.Code + "), want " + errString(want) + " (" + w.Code + ")"
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// diffAmounts describes how two decimals differ in value, text or exponent, or returns "".
func diffAmounts(got, want decimal.Decimal) string {
	if !got.Equal(want) || got.String() != want.String() || got.Exponent() != want.Exponent() {
		return fmt.Sprintf("amount %s (exp %d), want %s (exp %d)", got, got.Exponent(), want, want.Exponent())
	}
	return ""
}

// diffUsages describes every way two usages differ, or returns "".
func diffUsages(got, want Usage) string {
	var d []string
	g, w := got.Charge, want.Charge
	for _, f := range []struct{ name, got, want string }{
		{"AccountID", got.AccountID, want.AccountID},
		{"UsageID", g.UsageID, w.UsageID},
		{"UsageType", g.UsageType, w.UsageType},
		{"Reason", g.Reason, w.Reason},
		{"Cause", g.Cause, w.Cause},
		{"Currency", g.Currency, w.Currency},
		{"UserID", g.UserID, w.UserID},
		{"Quantity", g.Quantity, w.Quantity},
		{"Unit", g.Unit, w.Unit},
		{"Destination", g.Destination, w.Destination},
		{"ContentHash", g.ContentHash, w.ContentHash},
		{"UsedAt", g.UsedAt.Format(time.RFC3339Nano), w.UsedAt.Format(time.RFC3339Nano)},
	} {
		if f.got != f.want {
			d = append(d, f.name+": got "+quote(f.got)+", want "+quote(f.want))
		}
	}
	if !g.UsedAt.Equal(w.UsedAt) || g.UsedAt.Location() != w.UsedAt.Location() || g.UsedAt != w.UsedAt {
		d = append(d, "UsedAt: got "+g.UsedAt.String()+", want "+w.UsedAt.String())
	}
	if s := diffAmounts(g.Amount, w.Amount); s != "" {
		d = append(d, s)
	}
	return strings.Join(d, "; ")
}

func quote(s string) string { return fmt.Sprintf("%q", truncate(s, 60)) }
