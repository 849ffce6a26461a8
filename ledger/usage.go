package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	// Ingest pays this per message: the hand-written scanner decodes the payloads the platform
	// really sends, and hands everything else (escapes, unknown or case-folded keys, nulls,
	// numbers, duplicates, anything malformed) to encoding/json, whose semantics define the
	// result. FuzzParseUsageDifferential holds the two paths to the same answers.
	f, ok := scanUsage(raw)
	if !ok {
		var err error
		if f, err = decodeUsageJSON(raw); err != nil {
			return Usage{}, err
		}
	}
	return f.validate()
}

// decodeUsageJSON decodes a usage event with encoding/json: the general path, for payloads
// scanUsage is not sure about.
func decodeUsageJSON(raw []byte) (usageFields, error) {
	var w usageWire
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&w); err != nil {
		return usageFields{}, Errorf(EINVALID, "malformed_json", "usage event is not a JSON object of string fields: %v", err)
	}
	// Only JSON whitespace may follow the object. (Decoder.More would not do: it is false
	// also when the next byte is '}' or ']', and "{...}}" was once accepted that way.)
	if len(bytes.TrimLeft(raw[dec.InputOffset():], " \t\r\n")) > 0 {
		return usageFields{}, Errorf(EINVALID, "malformed_json", "usage event has trailing data after the JSON object")
	}
	var f usageFields
	for i, p := range [usageFieldCount]*string{w.UsageID, w.AccountID, w.Type, w.Reason, w.OccurredAt,
		w.Amount, w.Currency, w.UserID, w.Quantity, w.Unit, w.Destination} {
		if p != nil { // a JSON null leaves the field absent, like a missing key
			f.v[i], f.present = *p, f.present|1<<i
		}
	}
	return f, nil
}

// usageFields holds the string fields of one usage event as decoded, indexed by the
// usageField* constants; present has bit i set when field i was given (and not null).
type usageFields struct {
	v       [usageFieldCount]string
	present uint16
}

// validate checks the fields and builds the usage. Both decoding paths end here, so they
// share every rule, reason code and message.
func (f *usageFields) validate() (Usage, error) {
	for _, i := range [...]int{usageFieldUsageID, usageFieldAccountID, usageFieldType, usageFieldOccurredAt, usageFieldAmount, usageFieldCurrency} {
		if f.present&(1<<i) == 0 {
			return Usage{}, Errorf(EINVALID, "missing_field", "%s is required", usageFieldNames[i])
		}
	}
	accountID := f.v[usageFieldAccountID]
	c := events.UsageCharged{UsageID: f.v[usageFieldUsageID], UsageType: f.v[usageFieldType], Reason: f.v[usageFieldReason]}
	if err := CheckID("usage_id", c.UsageID); err != nil {
		return Usage{}, err
	}
	if err := CheckID("account_id", accountID); err != nil {
		return Usage{}, err
	}
	var err error
	if c.Cause, err = CauseOf(c.UsageType, c.Reason); err != nil {
		return Usage{}, err
	}
	if c.UsedAt, err = ParseTime("occurred_at", f.v[usageFieldOccurredAt]); err != nil {
		return Usage{}, err
	}
	if c.Amount, err = ParseNonNegative("amount", f.v[usageFieldAmount]); err != nil {
		return Usage{}, err
	}
	if c.Currency, err = ParseCurrency(f.v[usageFieldCurrency]); err != nil {
		return Usage{}, err
	}
	c.UserID, c.Quantity, c.Unit, c.Destination = f.v[usageFieldUserID], f.v[usageFieldQuantity], f.v[usageFieldUnit], f.v[usageFieldDestination]
	// The first over-long field in this order is reported. (Before, the order was that of a
	// map iteration, so with several over-long fields the reason was any one of them.)
	for _, i := range [...]int{usageFieldUserID, usageFieldQuantity, usageFieldUnit, usageFieldDestination} {
		if len(f.v[i]) > freeTextMax {
			name := usageFieldNames[i]
			return Usage{}, Errorf(EINVALID, "invalid_"+name, "%s is longer than %d bytes", name, freeTextMax)
		}
	}
	if c.Quantity != "" {
		// Only checked, so the common case skips building a decimal; ParseNonNegative has the
		// last word on anything unusual.
		if coef, neg, _, ok := scanAmountFast(c.Quantity); !ok || neg && coef != 0 {
			if _, err := ParseNonNegative("quantity", c.Quantity); err != nil {
				return Usage{}, Errorf(EINVALID, "invalid_quantity", "quantity must be a non-negative decimal string, got %q", truncate(c.Quantity, 40))
			}
		}
	}
	c.ContentHash = contentHash(accountID, &c, f.v[usageFieldAmount])
	return Usage{AccountID: accountID, Charge: c}, nil
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
	if len(s) != 3 || !isUpper(s[0]) || !isUpper(s[1]) || !isUpper(s[2]) {
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
// redelivery of the same usage is recognised and one that differs is not. The hash is stored
// in the durable usage index, so its input must never change: every field followed by a zero
// byte, in this order, the time in UTC as RFC 3339 with nanoseconds, the amount as
// decimal.Decimal.String writes it; then the hex of the first 16 bytes of SHA-256.
// amountText is the amount as given, from which the canonical form is written without
// decimal's allocations.
func contentHash(accountID string, c *events.UsageCharged, amountText string) string {
	var stack [512]byte // typical content is ~150 bytes; larger content grows on the heap
	b := stack[:0]
	for _, f := range [...]string{accountID, c.UsageID, c.UsageType, c.Reason} {
		b = append(b, f...)
		b = append(b, 0)
	}
	b = c.UsedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, 0)
	if amountStringIsCanonical() {
		b = appendAmountString(b, amountText)
	} else {
		b = append(b, c.Amount.String()...)
	}
	b = append(b, 0)
	for _, f := range [...]string{c.Currency, c.UserID, c.Quantity, c.Unit, c.Destination} {
		b = append(b, f...)
		b = append(b, 0)
	}
	sum := sha256.Sum256(b)
	var hexSum [32]byte
	hex.Encode(hexSum[:], sum[:16])
	return string(hexSum[:])
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
