package ledger

// IDLengthMax is the longest account, usage, top-up or adjustment id accepted.
const IDLengthMax = 64

// ValidID reports whether s is a well-formed id: 1..IDLengthMax bytes of [A-Za-z0-9._:-].
// A loop rather than a regexp: every usage checks two ids on the ingest path, and the
// regexp cost about 0.3 µs per usage.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > IDLengthMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

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
