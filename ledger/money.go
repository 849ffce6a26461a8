package ledger

import (
	"regexp"

	"github.com/shopspring/decimal"
)

// AmountScaleMax is the most decimal places an amount may have; more is rejected, never
// rounded.
const AmountScaleMax = 4

// amountDigitsMax bounds the integer part so that no amount can overflow sums or be
// used to exhaust memory: 15 digits is far above any credit balance.
const amountDigitsMax = 15

var amountPattern = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// ParseAmount parses a decimal amount given as a string ("12.5", "0.4200"). It rejects
// exponents, more than AmountScaleMax decimals and absurd magnitudes.
func ParseAmount(field, s string) (decimal.Decimal, error) {
	if !amountPattern.MatchString(s) {
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

// ParseNonNegative is ParseAmount that also rejects negative amounts.
func ParseNonNegative(field, s string) (decimal.Decimal, error) {
	d, err := ParseAmount(field, s)
	if err != nil {
		return d, err
	}
	if d.IsNegative() {
		return decimal.Decimal{}, Errorf(EINVALID, "invalid_amount", "%s must not be negative: %q", field, s)
	}
	return d, nil
}

// ParsePositive is ParseAmount that also rejects zero and negative amounts.
func ParsePositive(field, s string) (decimal.Decimal, error) {
	d, err := ParseAmount(field, s)
	if err != nil {
		return d, err
	}
	if !d.IsPositive() {
		return decimal.Decimal{}, Errorf(EINVALID, "invalid_amount", "%s must be greater than 0: %q", field, s)
	}
	return d, nil
}

// FormatAmount writes an amount the way the API shows it: a plain decimal string.
func FormatAmount(d decimal.Decimal) string { return d.String() }
