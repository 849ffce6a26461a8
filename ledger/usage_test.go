package ledger

import (
	"bytes"
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
		{"stray closing brace", validUsage + `}`, "malformed_json"},
		{"stray closing bracket", validUsage + " ]x", "malformed_json"},
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

// usageSeeds are payloads that exercise the corners where a hand-written decoder and
// encoding/json could part: the seeds of FuzzParseUsageDifferential and the cases of
// TestParseUsageMatchesReference.
func usageSeeds() []string {
	const base = `{"usage_id":"call-8f2c","account_id":"acme","type":"call","reason":"fup_exceeded","occurred_at":"2026-11-24T10:15:00Z","amount":"0.42","currency":"USD","user_id":"u-7","quantity":"21","unit":"minute","destination":"+447911123456"}`
	with := func(old, new string) string { return strings.Replace(base, old, new, 1) }
	long := strings.Repeat("y", freeTextMax+1)
	seeds := []string{
		validUsage, base,
		`{"usage_id":"a","account_id":"b","type":"sms","occurred_at":"2026-01-01T00:00:00Z","amount":"0","currency":"EUR"}`,
		`{"amount": 1e999}`, `[{"usage_id": null}]`, "\xff\xfe",
		// Not an object, or nothing at all.
		``, ` `, `null`, " \t\r\nnull\n", `{}`, ` { } `, `[]`, `"str"`, `1`, `true`, `{`, `}`, `{"usage_id"`, `{"usage_id":`, `{"usage_id":"a"`, `{"usage_id":"a",}`, `{,}`, `{"a" "b"}`,
		// Whitespace between every token, and after the object.
		strings.NewReplacer(`{`, " \t{\n ", `:`, " \r:\t", `,`, "\n,\r\n", `}`, " } \n\t\r").Replace(base),
		base + " \n", "\n" + base,
		// Bytes after the object: only whitespace may follow it.
		base + `}`, base + ` ]`, base + `]x`, base + `{}`, base + ` x`, base + `,`, base + `"`, base + "\x00",
		"\xef\xbb\xbf" + base, // a byte order mark is not JSON whitespace
		// Escapes in values: plain, \u, surrogate pairs, lone or broken surrogates, bad escapes.
		with(`"call-8f2c"`, `"call\u002d8f2c"`), with(`"minute"`, `"min\/ute\t\n\"\\"`),
		with(`"minute"`, `"\ud83d\ude00"`), with(`"minute"`, `"\ud800"`), with(`"minute"`, `"\udc00\ud800x"`),
		with(`"minute"`, `"\ud800\u0041"`), with(`"minute"`, `"\ud800\ud800\udc00"`), with(`"minute"`, `"\x"`),
		with(`"minute"`, `"\u12"`), with(`"minute"`, `"\u00e9\u00E9"`), with(`"USD"`, `"\u0055SD"`),
		// Raw bytes in values: UTF-8, invalid UTF-8, encoded surrogates, controls, DEL.
		with(`"minute"`, `"Minüte ☎ 😀"`), with(`"minute"`, "\"\xff\""), with(`"minute"`, "\"\xc3(\""),
		with(`"minute"`, "\"\xed\xa0\x80\""), with(`"minute"`, "\"\xf4\x90\x80\x80\""), with(`"minute"`, "\"a\x01\""),
		with(`"minute"`, "\"a\nb\""), with(`"minute"`, "\"a\x7fb\""), with(`"acme"`, "\"ac\xffme\""),
		// Keys: case folding (also the Kelvin sign and the long s), escapes, unknown, duplicates.
		with(`"usage_id"`, `"USAGE_ID"`), with(`"usage_id"`, `"Usage_Id"`), with(`"usage_id"`, `"uſage_id"`),
		with(`"destination"`, `"deſtination"`), with(`"usage_id"`, `"u\u017fage_id"`), with(`"usage_id"`, `"usage_\u0069d"`),
		with(`"unit"`, `"\u0075nit"`), with(`"usage_id"`, `"usage_id "`), with(`"usage_id"`, `"usageid"`),
		with(`"usage_id"`, `"usage-id"`), with(`"usage_id"`, "\"usage_id\xff\""), with(`"type"`, `"TYPE"`),
		with(`"unit"`, `"K"`), with(`"unit"`, `"\u212a"`), with(`"unit"`, "\"\xe2\x84\xaa\""),
		with(`{`, `{"amount":"9",`), with(`{`, `{"amount":"-1",`), with(`{`, `{"AMOUNT":"9",`),
		base[:len(base)-1] + `,"amount":"7"}`, base[:len(base)-1] + `,"AMOUNT":"7"}`, base[:len(base)-1] + `,"amount":null}`,
		base[:len(base)-1] + `,"Amount":null}`, base[:len(base)-1] + `,"amount":7}`,
		// Other value types, for known and unknown keys.
		with(`"0.42"`, `null`), with(`"fup_exceeded"`, `null`), with(`"u-7"`, `null`), with(`"0.42"`, `0.42`),
		with(`"0.42"`, `1e3`), with(`"u-7"`, `true`), with(`"u-7"`, `{}`), with(`"u-7"`, `[]`), with(`"u-7"`, `["a"]`),
		with(`{`, `{"extra":{"a":[1,2,{"b":null}],"c":"d"},`), with(`{`, `{"extra":1,`), with(`{`, `{"extra":"\u0000",`),
		with(`{`, `{"":"",`), with(`"0.42"`, `nul`), with(`"0.42"`, `"0.42`),
		// Amounts and quantities.
		with(`"0.42"`, `"0.4200"`), with(`"0.42"`, `"0.00001"`), with(`"0.42"`, `"1.23450"`), with(`"0.42"`, `"-0.42"`),
		with(`"0.42"`, `"-0"`), with(`"0.42"`, `"-0.0000"`), with(`"0.42"`, `"1e3"`), with(`"0.42"`, `" 1"`), with(`"0.42"`, `"1 "`),
		with(`"0.42"`, `"1."`), with(`"0.42"`, `".5"`), with(`"0.42"`, `"+1"`), with(`"0.42"`, `""`), with(`"0.42"`, `"NaN"`),
		with(`"0.42"`, `"999999999999999.9999"`), with(`"0.42"`, `"1000000000000000"`), with(`"0.42"`, `"922337203685477.5808"`),
		with(`"0.42"`, `"922337203685477.5807"`), with(`"0.42"`, `"0000000000000000000000012.5000"`), with(`"0.42"`, `"٣"`),
		with(`"0.42"`, `"−1"`), with(`"0.42"`, `"1_000"`), with(`"0.42"`, `"0x10"`), with(`"0.42"`, `"1.2.3"`), with(`"0.42"`, `"--1"`),
		with(`"0.42"`, `"0.`+strings.Repeat("0", 10001)+`"`),
		with(`"21"`, `""`), with(`"21"`, `"lots"`), with(`"21"`, `"-1"`), with(`"21"`, `"1.00000"`), with(`"21"`, `"1e2"`),
		// Times.
		with(`10:15:00Z`, `12:15:00+02:00`), with(`10:15:00Z`, `10:15:00.123456789Z`), with(`10:15:00Z`, `10:15:00.1234567891Z`),
		with(`10:15:00Z`, `10:15:00,5Z`), with(`10:15:00Z`, `10:15:00z`), with(`2026-11-24T`, `2026-11-24t`), with(`10:15:00Z`, `10:15:00-00:00`),
		with(`10:15:00Z`, `24:00:00Z`), with(`10:15:00Z`, `10:15:60Z`), with(`2026-11-24`, `2026-02-30`), with(`2026-11-24`, `+2026-11-24`),
		with(`10:15:00Z`, `10:15:00`), with(`10:15:00Z`, `10:15:00+0200`), with(`10:15:00Z`, `10:15:00+24:00`),
		// Types, reasons, ids, currencies.
		with(`"call"`, `"CALL"`), with(`"call"`, `"fax"`), with(`"fup_exceeded"`, `""`), with(`"fup_exceeded"`, `"bored"`),
		with(`"call","reason":"fup_exceeded"`, `"sms","reason":"anything at all ☎"`), with(`"call","reason":"fup_exceeded"`, `"voice_agent"`),
		with(`"call-8f2c"`, `"call 8f2c"`), with(`"call-8f2c"`, `""`), with(`"call-8f2c"`, `"`+strings.Repeat("x", 64)+`"`),
		with(`"call-8f2c"`, `"`+strings.Repeat("x", 65)+`"`), with(`"acme"`, `"ü"`), with(`"acme"`, `"a/b"`),
		with(`"USD"`, `"usd"`), with(`"USD"`, `"US"`), with(`"USD"`, `"USDD"`), with(`"USD"`, `"ÜSD"`), with(`"USD"`, `"US\u0044"`),
		// Free text at and over the limit; several over it.
		with(`"u-7"`, `"`+strings.Repeat("u", freeTextMax)+`"`), with(`"u-7"`, `"`+long+`"`),
		with(`"+447911123456"`, `"`+long+`"`), with(`"minute"`, `"`+long+`"`),
		strings.NewReplacer(`"u-7"`, `"`+long+`"`, `"minute"`, `"`+long+`"`, `"+447911123456"`, `"`+long+`"`).Replace(base),
		strings.NewReplacer(`"21"`, `"`+strings.Repeat("1", freeTextMax+1)+`"`, `"minute"`, `"`+long+`"`).Replace(base),
		with(`"call","reason":"fup_exceeded"`, `"sms","reason":"`+strings.Repeat("r", 10000)+`"`),
		// Size limit.
		`{"usage_id":"` + strings.Repeat("x", UsagePayloadMax) + `"}`,
		with(`"u-7"`, `"`+strings.Repeat("u", UsagePayloadMax-len(base)+3)+`"`),
		with(`"u-7"`, `"`+strings.Repeat("u", UsagePayloadMax-len(base)+4)+`"`),
	}
	for _, b := range benchUsages {
		seeds = append(seeds, string(b))
	}
	return seeds
}

// TestParseUsageMatchesReference runs the seeds of the differential fuzz test in every
// go test run, so the hand-written decoder is held to encoding/json also without fuzzing.
func TestParseUsageMatchesReference(t *testing.T) {
	for _, s := range usageSeeds() {
		checkParseUsageAgainstReference(t, []byte(s))
	}
}

// FuzzParseUsageDifferential: for any input, ParseUsage (the hand-written scanner with
// encoding/json as the fallback) returns exactly what the old encoding/json implementation
// returns (usage_reference_test.go): every field, the amount as value, text and exponent,
// the time with its location, the content hash, and the error's code, reason and message.
func FuzzParseUsageDifferential(f *testing.F) {
	for _, s := range usageSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkParseUsageAgainstReference(t, raw)
	})
}

func checkParseUsageAgainstReference(t *testing.T, raw []byte) {
	t.Helper()
	want, wantErr := parseUsageReference(raw)
	// Parse a copy and clobber it afterwards: a usage must not share the caller's buffer,
	// which NATS reuses.
	buf := bytes.Clone(raw)
	got, err := ParseUsage(buf)
	for i := range buf {
		buf[i] = 'X'
	}
	if d := diffErrors(err, wantErr); d != "" {
		t.Fatalf("ParseUsage(%q): %s", truncate(string(raw), 300), d)
	}
	if d := diffUsages(got, want); d != "" {
		t.Fatalf("ParseUsage(%q): %s", truncate(string(raw), 300), d)
	}
}

// TestContentHashPinned pins the content hash of known payloads to the values the
// implementation before the hand-written decoder computed: the hash is stored in the durable
// usage index, and a change would break exactly-once charging across an upgrade.
func TestContentHashPinned(t *testing.T) {
	tests := []struct{ give, want string }{
		{string(benchUsages[0]), "fdc14f3d5c7e8e56e652b2329dcb2456"},
		{string(benchUsages[1]), "1107bc784f8e0bedf8e05b9c7c2943f2"},
		{string(benchUsages[2]), "94479af4242212a53201a6e3597f3059"},
		{string(benchUsages[3]), "0b7d7237e9f70e8517a15172a994109b"},
		{string(benchUsages[4]), "307493ae9513e0fb789f721090a409ac"},
		{string(benchUsages[5]), "a1d8cbf1c1de8ac64228bae44ced0bdf"},
		{string(benchUsages[6]), "08c4278365b1f6fe6fab1e4b1e321c58"},
		{`{"usage_id":"x","account_id":"y","type":"sms","occurred_at":"2026-11-24T12:15:00.5+02:00","amount":"-0.000","currency":"EUR","reason":"whatever\u00e9"}`, "dcbd5aef58a01ae8585a21221f1cc3c6"},
		{`{"usage_id":"x","account_id":"y","type":"sms","occurred_at":"2026-11-24T12:15:00.5+02:00","amount":"00012.3400","currency":"EUR","reason":"whatever\u00e9", "unit": "\ud800"}`, "03a235bb4b38fe877f4188df5699d126"},
	}
	for _, tt := range tests {
		u, err := ParseUsage([]byte(tt.give))
		if err != nil || u.Charge.ContentHash != tt.want {
			t.Errorf("ParseUsage(%s): hash %q, %v; want %q", tt.give, u.Charge.ContentHash, err, tt.want)
		}
	}
}
