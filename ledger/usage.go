package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/telephony/creditledger/events"
)

// Usage types reported by the telephony platform.
const (
	UsageCall                     = "call"
	UsageForwardedCall            = "forwarded_call"
	UsageSMS                      = "sms"
	UsageWhatsApp                 = "whatsapp"
	UsageConversationIntelligence = "conversation_intelligence"
	UsageVoiceAgent               = "voice_agent"
)

// Credit-movement causes, derived from the usage type (API.md section 3).
const (
	CauseFairUsageExceeded = "fair_usage_exceeded"
	CauseOutsidePackage    = "outside_package"
	CauseForwarding        = "forwarding"
	CauseMessaging         = "messaging"
	CauseAdvancedFeatures  = "advanced_features"
)

// Causes lists every cause, in the order summaries show them.
var Causes = []string{CauseFairUsageExceeded, CauseOutsidePackage, CauseForwarding, CauseMessaging, CauseAdvancedFeatures}

// UsagePayloadMax is the largest usage event accepted, in bytes.
const UsagePayloadMax = 16 << 10

// freeTextMax bounds the optional descriptive fields.
const freeTextMax = 128

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// usageWire is the JSON the platform sends. Every field is a string so that a JSON number
// for an amount is refused rather than silently converted through a float.
type usageWire struct {
	UsageID     *string `json:"usage_id"`
	AccountID   *string `json:"account_id"`
	Type        *string `json:"type"`
	Reason      *string `json:"reason"`
	OccurredAt  *string `json:"occurred_at"`
	Amount      *string `json:"amount"`
	Currency    *string `json:"currency"`
	UserID      *string `json:"user_id"`
	Quantity    *string `json:"quantity"`
	Unit        *string `json:"unit"`
	Destination *string `json:"destination"`
}

// Usage is one validated usage event; Charged turns it into the ledger event.
type Usage struct {
	AccountID string
	Charge    events.UsageCharged
}

// ParseUsage decodes and validates one usage event. Every failure is an *Error with code
// EINVALID and a reason code fit for a rejection record.
func ParseUsage(raw []byte) (Usage, error) {
	if len(raw) > UsagePayloadMax {
		return Usage{}, Errorf(EINVALID, "payload_too_large", "usage event is %d bytes, the limit is %d", len(raw), UsagePayloadMax)
	}
	var w usageWire
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&w); err != nil {
		return Usage{}, Errorf(EINVALID, "malformed_json", "usage event is not a JSON object of string fields: %v", err)
	}
	if dec.More() {
		return Usage{}, Errorf(EINVALID, "malformed_json", "usage event has trailing data after the JSON object")
	}
	return w.validate()
}

func (w usageWire) validate() (Usage, error) {
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
	c := events.UsageCharged{UsageID: *w.UsageID, UsageType: *w.Type, Reason: str(w.Reason)}
	if c.Cause, err = CauseOf(c.UsageType, c.Reason); err != nil {
		return u, err
	}
	if c.UsedAt, err = ParseTime("occurred_at", *w.OccurredAt); err != nil {
		return u, err
	}
	if c.Amount, err = ParseNonNegative("amount", *w.Amount); err != nil {
		return u, err
	}
	if c.Currency, err = ParseCurrency(*w.Currency); err != nil {
		return u, err
	}
	c.UserID, c.Quantity, c.Unit, c.Destination = str(w.UserID), str(w.Quantity), str(w.Unit), str(w.Destination)
	for name, v := range map[string]string{"user_id": c.UserID, "quantity": c.Quantity, "unit": c.Unit, "destination": c.Destination} {
		if len(v) > freeTextMax {
			return u, Errorf(EINVALID, "invalid_"+name, "%s is longer than %d bytes", name, freeTextMax)
		}
	}
	if c.Quantity != "" {
		if _, err := ParseNonNegative("quantity", c.Quantity); err != nil {
			return u, Errorf(EINVALID, "invalid_quantity", "quantity must be a non-negative decimal string, got %q", truncate(c.Quantity, 40))
		}
	}
	c.ContentHash = contentHash(*w.AccountID, c)
	return Usage{AccountID: *w.AccountID, Charge: c}, nil
}

// CauseOf maps a usage type (and, for calls, the reason) to the movement cause.
func CauseOf(usageType, reason string) (string, error) {
	switch usageType {
	case UsageCall:
		switch reason {
		case "fup_exceeded":
			return CauseFairUsageExceeded, nil
		case "international", "premium", "unsupported_destination":
			return CauseOutsidePackage, nil
		case "":
			return "", Errorf(EINVALID, "missing_field", "reason is required for type call")
		}
		return "", Errorf(EINVALID, "invalid_reason", "unknown call reason %q", truncate(reason, 40))
	case UsageForwardedCall:
		return CauseForwarding, nil
	case UsageSMS, UsageWhatsApp:
		return CauseMessaging, nil
	case UsageConversationIntelligence, UsageVoiceAgent:
		return CauseAdvancedFeatures, nil
	}
	return "", Errorf(EINVALID, "unknown_type", "unknown usage type %q", truncate(usageType, 40))
}

// ParseCurrency accepts an ISO 4217 style code of three upper-case letters.
func ParseCurrency(s string) (string, error) {
	if !currencyPattern.MatchString(s) {
		return "", Errorf(EINVALID, "invalid_currency", "currency must be three upper-case letters, got %q", truncate(s, 20))
	}
	return s, nil
}

// ParseTime parses an RFC 3339 time and returns it in UTC.
func ParseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, Errorf(EINVALID, "invalid_"+field, "%s must be an RFC 3339 time, got %q", field, truncate(s, 40))
	}
	return t.UTC(), nil
}

// contentHash fingerprints what a usage says, with amounts compared as decimals, so a
// redelivery of the same usage is recognised and one that differs is not.
func contentHash(accountID string, c events.UsageCharged) string {
	h := sha256.New()
	for _, f := range []string{accountID, c.UsageID, c.UsageType, c.Reason, c.UsedAt.Format(time.RFC3339Nano),
		c.Amount.String(), c.Currency, c.UserID, c.Quantity, c.Unit, c.Destination} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return strings.Clone(*p)
}
