package ledger

import (
	"math"
	"regexp"
	"strings"

	"github.com/shopspring/decimal"
)

// AmountScaleMax is the most decimal places an amount may have; more is rejected, never
// rounded.
const AmountScaleMax = 4

// amountDigitsMax bounds the integer part so that no amount can overflow sums or be
// used to exhaust memory: 15 digits is far above any credit balance.
const amountDigitsMax = 15

// amountPattern is the shape of an amount. Only amounts the fast path of ParseAmount is not
// sure about are matched against it, so that every rejection keeps its exact message.
var amountPattern = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// ParseAmount parses a decimal amount given as a string ("12.5", "0.4200"). It rejects
// exponents, more than AmountScaleMax decimals and absurd magnitudes.
func ParseAmount(field, s string) (decimal.Decimal, error) {
	// Every usage event carries one or two amounts, so the common case skips the regexp
	// and the big-number parse; anything unusual takes the general path below.
	if d, ok := parseAmountFast(s); ok {
		return d, nil
	}
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

// parseAmountFast accepts exactly the amounts ParseAmount accepts whose coefficient fits an
// int64, and returns the decimal decimal.NewFromString would (same coefficient, same
// exponent). ok is false when it is not sure, never when it is wrong: the caller then takes
// the general path, which also words the rejection.
func parseAmountFast(s string) (d decimal.Decimal, ok bool) {
	coef, neg, exp, ok := scanAmountFast(s)
	if !ok {
		return d, false
	}
	v := int64(coef)
	if neg {
		v = -v
	}
	return decimal.New(v, exp), true
}

// scanAmountFast is parseAmountFast without building the decimal, for amounts that are only
// checked: the amount is -coef*10^exp when neg is set, else coef*10^exp.
func scanAmountFast(s string) (coef uint64, neg bool, exp int32, ok bool) {
	i := 0
	if len(s) > 0 && s[0] == '-' {
		i, neg = 1, true
	}
	intStart, significant := i, 0
	for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		if significant > 0 || s[i] != '0' {
			significant++
			if significant > amountDigitsMax {
				return 0, false, 0, false // too large
			}
		}
		coef = coef*10 + uint64(s[i]-'0')
	}
	if i == intStart {
		return 0, false, 0, false
	}
	if i < len(s) {
		if s[i] != '.' {
			return 0, false, 0, false
		}
		i++
		fracStart := i
		for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			if i-fracStart == AmountScaleMax {
				return 0, false, 0, false // too many decimal places
			}
			coef = coef*10 + uint64(s[i]-'0')
		}
		if i == fracStart || i != len(s) {
			return 0, false, 0, false
		}
		exp = int32(fracStart - i)
	}
	// At most 15+4 digits, so coef is below 1e19 and did not overflow; above MaxInt64 the
	// general path builds the big coefficient.
	if coef > math.MaxInt64 {
		return 0, false, 0, false
	}
	return coef, neg, exp, true
}

// appendAmountString appends what ParseAmount(field, s).String() returns, without the
// allocations of decimal's formatting: a sign only when the value is not zero, the integer
// part without leading zeros, the fraction without trailing zeros. s must be an amount
// ParseAmount accepts, and decimal's formatting globals must have their default values
// (the caller checks, see amountStringIsCanonical).
func appendAmountString(dst []byte, s string) []byte {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	intPart = strings.TrimLeft(intPart, "0")
	frac = strings.TrimRight(frac, "0")
	if neg && (intPart != "" || frac != "") {
		dst = append(dst, '-')
	}
	if intPart == "" {
		dst = append(dst, '0')
	}
	dst = append(dst, intPart...)
	if frac != "" {
		dst = append(dst, '.')
		dst = append(dst, frac...)
	}
	return dst
}

// amountStringIsCanonical reports whether decimal.Decimal.String formats the way
// appendAmountString assumes. DESIGN.md forbids changing decimal's globals; this keeps the
// content hash right even if somebody does.
func amountStringIsCanonical() bool {
	return decimal.TrimTrailingZeros && !decimal.UseScientificNotation
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
