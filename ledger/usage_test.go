package ledger

import (
	"strings"
	"testing"
)

const validUsage = `{"usage_id": "call-8f2c", "account_id": "acme", "type": "call", "reason": "fup_exceeded",
 "occurred_at": "2026-11-24T10:15:00Z", "amount": "0.42", "currency": "USD",
 "user_id": "u-7", "quantity": "21", "unit": "minute", "destination": "+447911123456"}`

func TestParseUsageValid(t *testing.T) {
	u, err := ParseUsage([]byte(validUsage))
	if err != nil {
		t.Fatal(err)
	}
	c := u.Charge
	if u.AccountID != "acme" || c.UsageID != "call-8f2c" || c.Cause != CauseFairUsageExceeded ||
		c.Amount.String() != "0.42" || c.UserID != "u-7" || c.Destination != "+447911123456" || c.ContentHash == "" {
		t.Fatalf("unexpected usage %+v", u)
	}
}

func TestParseUsageRejects(t *testing.T) {
	tests := []struct {
		name       string
		give       string
		wantReason string
	}{
		{"not json", `nope`, "malformed_json"},
		{"array", `[]`, "malformed_json"},
		{"amount as number", strings.Replace(validUsage, `"0.42"`, `0.42`, 1), "malformed_json"},
		{"trailing data", validUsage + `{}`, "malformed_json"},
		{"missing usage_id", strings.Replace(validUsage, `"usage_id": "call-8f2c",`, ``, 1), "missing_field"},
		{"bad usage_id", strings.Replace(validUsage, `call-8f2c`, `call 8f2c`, 1), "invalid_usage_id"},
		{"unknown type", strings.Replace(validUsage, `"call"`, `"fax"`, 1), "unknown_type"},
		{"call without reason", strings.Replace(validUsage, `"reason": "fup_exceeded",`, ``, 1), "missing_field"},
		{"unknown reason", strings.Replace(validUsage, `fup_exceeded`, `bored`, 1), "invalid_reason"},
		{"negative amount", strings.Replace(validUsage, `"0.42"`, `"-0.42"`, 1), "invalid_amount"},
		{"five decimals", strings.Replace(validUsage, `"0.42"`, `"0.42001"`, 1), "invalid_amount"},
		{"bad currency", strings.Replace(validUsage, `"USD"`, `"usd"`, 1), "invalid_currency"},
		{"bad time", strings.Replace(validUsage, `2026-11-24T10:15:00Z`, `yesterday`, 1), "invalid_occurred_at"},
		{"bad quantity", strings.Replace(validUsage, `"21"`, `"lots"`, 1), "invalid_quantity"},
		{"too large", `{"usage_id":"` + strings.Repeat("x", UsagePayloadMax) + `"}`, "payload_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseUsage([]byte(tt.give))
			if ErrorCode(err) != EINVALID || ErrorReason(err) != tt.wantReason {
				t.Fatalf("got %v; want reason %s", err, tt.wantReason)
			}
		})
	}
}

func TestContentHashComparesAmountsAsDecimals(t *testing.T) {
	a, _ := ParseUsage([]byte(validUsage))
	b, _ := ParseUsage([]byte(strings.Replace(validUsage, `"0.42"`, `"0.4200"`, 1)))
	c, _ := ParseUsage([]byte(strings.Replace(validUsage, `"0.42"`, `"0.43"`, 1)))
	if a.Charge.ContentHash != b.Charge.ContentHash {
		t.Error("0.42 and 0.4200 hash differently")
	}
	if a.Charge.ContentHash == c.Charge.ContentHash {
		t.Error("different amounts hash the same")
	}
}

func TestCauseOf(t *testing.T) {
	tests := []struct{ giveType, giveReason, want string }{
		{"call", "fup_exceeded", CauseFairUsageExceeded},
		{"call", "international", CauseOutsidePackage},
		{"call", "premium", CauseOutsidePackage},
		{"call", "unsupported_destination", CauseOutsidePackage},
		{"forwarded_call", "", CauseForwarding},
		{"sms", "", CauseMessaging},
		{"whatsapp", "", CauseMessaging},
		{"conversation_intelligence", "", CauseAdvancedFeatures},
		{"voice_agent", "", CauseAdvancedFeatures},
	}
	for _, tt := range tests {
		if got, err := CauseOf(tt.giveType, tt.giveReason); err != nil || got != tt.want {
			t.Errorf("CauseOf(%s, %s) = %s, %v; want %s", tt.giveType, tt.giveReason, got, err, tt.want)
		}
	}
}

// FuzzParseUsage: whatever the platform sends, the decoder returns a usage or an
// EINVALID error, never panics, and a usage it accepts is well-formed.
func FuzzParseUsage(f *testing.F) {
	f.Add([]byte(validUsage))
	f.Add([]byte(`{"usage_id":"a","account_id":"b","type":"sms","occurred_at":"2026-01-01T00:00:00Z","amount":"0","currency":"EUR"}`))
	f.Add([]byte(`{"amount": 1e999}`))
	f.Add([]byte(`[{"usage_id": null}]`))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		u, err := ParseUsage(raw)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("error without EINVALID code: %v", err)
			}
			return
		}
		if !ValidID(u.AccountID) || !ValidID(u.Charge.UsageID) || u.Charge.Amount.IsNegative() || -u.Charge.Amount.Exponent() > AmountScaleMax || u.Charge.Cause == "" {
			t.Fatalf("accepted a malformed usage: %+v", u)
		}
	})
}
