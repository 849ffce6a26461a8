package ledger

import "testing"

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
