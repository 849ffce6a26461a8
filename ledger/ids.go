package ledger

import "regexp"

// IDLengthMax is the longest account, usage, top-up or adjustment id accepted.
const IDLengthMax = 64

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// ValidID reports whether s is a well-formed id: 1..64 chars of [A-Za-z0-9._:-].
func ValidID(s string) bool { return idPattern.MatchString(s) }

// CheckID returns an EINVALID error naming field when s is not a well-formed id.
func CheckID(field, s string) error {
	if !ValidID(s) {
		return Errorf(EINVALID, "invalid_"+field, "%s must be 1..%d characters of [A-Za-z0-9._:-], got %q", field, IDLengthMax, truncate(s, 80))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
