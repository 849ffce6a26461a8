package ledger

import (
	"regexp"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func TestParseAmount(t *testing.T) {
	tests := []struct {
		give    string
		want    string
		wantErr bool
	}{
		{give: "12.5", want: "12.5"},
		{give: "0.4200", want: "0.42"},
		{give: "0", want: "0"},
		{give: "-3.25", want: "-3.25"},
		{give: "0.0001", want: "0.0001"},
		{give: "0.00001", wantErr: true},
		{give: "1.23450", wantErr: true}, // five places written: rejected, never rounded
		{give: "1e3", wantErr: true},
		{give: "", wantErr: true},
		{give: " 1", wantErr: true},
		{give: "1.", wantErr: true},
		{give: ".5", wantErr: true},
		{give: "NaN", wantErr: true},
		{give: "999999999999999", want: "999999999999999"},
		{give: "1000000000000000", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseAmount("amount", tt.give)
		if tt.wantErr {
			if err == nil || ErrorCode(err) != EINVALID {
				t.Errorf("ParseAmount(%q) = %v, %v; want an EINVALID error", tt.give, got, err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseAmount(%q) = %v, %v; want %s", tt.give, got, err, tt.want)
		}
	}
}

func TestParsePositiveAndNonNegative(t *testing.T) {
	if _, err := ParseNonNegative("a", "-0.01"); err == nil {
		t.Error("ParseNonNegative accepted a negative amount")
	}
	if _, err := ParseNonNegative("a", "0"); err != nil {
		t.Errorf("ParseNonNegative(0): %v", err)
	}
	if _, err := ParsePositive("a", "0"); err == nil {
		t.Error("ParsePositive accepted 0")
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"acme", true}, {"a.b:c-d_e", true}, {"", false}, {"a b", false}, {"a/b", false}, {"a*", false},
		{string(make([]byte, 65)), false}, {"x234567890123456789012345678901234567890123456789012345678901234", true},
	}
	for _, tt := range tests {
		if got := ValidID(tt.give); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

// ValidID was a regexp; the loop that replaced it must agree with it on every byte, in
// every position, at the length limits, and on multi-byte characters.
func TestValidIDMatchesItsRegexp(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	check := func(s string) {
		if got, want := ValidID(s), pattern.MatchString(s); got != want {
			t.Errorf("ValidID(%q) = %v, the regexp says %v", s, got, want)
		}
	}
	for b := 0; b < 256; b++ {
		c := string([]byte{byte(b)})
		check(c)
		check("a" + c)
		check(c + "a")
		check(strings.Repeat("a", 63) + c)
		check(strings.Repeat("a", 64) + c)
	}
	for _, s := range []string{"", "é", "aé", "ａ", "K", "a\x00b", "a\n", strings.Repeat("z", 64), strings.Repeat("z", 65), strings.Repeat("é", 32)} {
		check(s)
	}
}

// amountSeeds are the amounts the differential tests start from.
var amountSeeds = []string{
	"12.5", "0.4200", "0", "-0", "-0.0000", "-3.25", "0.0001", "0.00001", "1.23450", "1e3", "1E3", "", " 1", "1 ", "1.", ".5",
	"+1", "-", "-.5", "NaN", "Inf", "999999999999999", "1000000000000000", "999999999999999.9999", "-999999999999999.9999",
	"922337203685477.5807", "922337203685477.5808", "-922337203685477.5808", "0000000000000000000000012.3400",
	"00000000000000000000000000000000000000.0001", "1000000000000000.0", "٣", "−1", "1_000", "0x10", "1.2.3", "--1",
	"0." + strings.Repeat("0", 10001), "1" + strings.Repeat("0", 40), "0.42\n", "12,5",
}

// TestParseAmountMatchesReference runs the seeds of FuzzParseAmountDifferential in every run.
func TestParseAmountMatchesReference(t *testing.T) {
	for _, s := range amountSeeds {
		checkParseAmountAgainstReference(t, s)
	}
}

// FuzzParseAmountDifferential: ParseAmount, ParseNonNegative and ParsePositive without the
// regexp return what the regexp-based implementation returned (value, text, exponent, error),
// and appendAmountString writes what decimal's String does for every accepted amount.
func FuzzParseAmountDifferential(f *testing.F) {
	for _, s := range amountSeeds {
		f.Add(s)
	}
	f.Fuzz(checkParseAmountAgainstReference)
}

func checkParseAmountAgainstReference(t *testing.T, s string) {
	for _, p := range []struct {
		name      string
		got, want func(field, s string) (decimal.Decimal, error)
	}{
		{"ParseAmount", ParseAmount, parseAmountReference},
		{"ParseNonNegative", ParseNonNegative, parseNonNegativeReference},
		{"ParsePositive", ParsePositive, parsePositiveReference},
	} {
		got, err := p.got("amount", s)
		want, wantErr := p.want("amount", s)
		if d := diffErrors(err, wantErr); d != "" {
			t.Fatalf("%s(%q): %s", p.name, s, d)
		}
		if d := diffAmounts(got, want); d != "" {
			t.Fatalf("%s(%q): %s", p.name, s, d)
		}
		if err == nil {
			if text := string(appendAmountString(nil, s)); text != want.String() {
				t.Fatalf("appendAmountString(%q) = %q, want %q", s, text, want.String())
			}
		}
	}
}
