package ledger

import (
	"strings"
	"unicode/utf8"
)

// Indexes of the fields of a usage event in usageFields, in the order of usageWire.
const (
	usageFieldUsageID = iota
	usageFieldAccountID
	usageFieldType
	usageFieldReason
	usageFieldOccurredAt
	usageFieldAmount
	usageFieldCurrency
	usageFieldUserID
	usageFieldQuantity
	usageFieldUnit
	usageFieldDestination
	usageFieldCount
)

// usageFieldNames are the JSON names of the fields, by index.
var usageFieldNames = [usageFieldCount]string{"usage_id", "account_id", "type", "reason", "occurred_at",
	"amount", "currency", "user_id", "quantity", "unit", "destination"}

// usageFieldIndex returns the index of the field whose JSON name is exactly key, or -1.
// Only exact names: encoding/json also matches names case-insensitively (with Unicode
// folds such as the Kelvin sign), and such keys are left to it.
func usageFieldIndex(key []byte) int {
	switch string(key) { // no allocation: the compiler compares the bytes in place
	case "usage_id":
		return usageFieldUsageID
	case "account_id":
		return usageFieldAccountID
	case "type":
		return usageFieldType
	case "reason":
		return usageFieldReason
	case "occurred_at":
		return usageFieldOccurredAt
	case "amount":
		return usageFieldAmount
	case "currency":
		return usageFieldCurrency
	case "user_id":
		return usageFieldUserID
	case "quantity":
		return usageFieldQuantity
	case "unit":
		return usageFieldUnit
	case "destination":
		return usageFieldDestination
	}
	return -1
}

// scanUsage decodes the usage events the platform normally sends, without reflection: one
// JSON object whose keys are the exact field names, each at most once, and whose values are
// strings without escapes or control characters, holding valid UTF-8; whitespace between
// tokens and after the object. For such input the result equals what encoding/json decodes
// into usageWire. ok is false for anything else, valid or not, and the caller then decodes
// with encoding/json: the scanner never decides that input is malformed, so every rejection
// and every corner of encoding/json's semantics (escapes, invalid UTF-8 replaced by U+FFFD,
// case-folded and duplicate keys, null, other value types, bytes after the object) stays
// exactly as it was.
//
// The field values are copied, never aliased: the caller may reuse its buffer.
func scanUsage(raw []byte) (f usageFields, ok bool) {
	var spans [usageFieldCount]struct{ start, end int }
	i := skipJSONSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return f, false
	}
	i = skipJSONSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		i++
	} else {
		for {
			if i == len(raw) || raw[i] != '"' {
				return f, false
			}
			keyStart := i + 1
			i = skipJSONPlain(raw, keyStart)
			if i == len(raw) || raw[i] != '"' {
				return f, false // an escape, a control or non-ASCII byte, or the end
			}
			k := usageFieldIndex(raw[keyStart:i])
			if k < 0 || f.present&(1<<k) != 0 {
				return f, false // unknown (maybe case-folded) or duplicate key
			}
			i = skipJSONSpace(raw, i+1)
			if i == len(raw) || raw[i] != ':' {
				return f, false
			}
			i = skipJSONSpace(raw, i+1)
			if i == len(raw) || raw[i] != '"' {
				return f, false // null, a number, an object...
			}
			valueStart, ascii := i+1, true
			for i = skipJSONPlain(raw, valueStart); i < len(raw) && raw[i] >= utf8.RuneSelf; i = skipJSONPlain(raw, i+1) {
				ascii = false
			}
			if i == len(raw) || raw[i] != '"' || !ascii && !utf8.Valid(raw[valueStart:i]) {
				return f, false // an escape, a control byte, invalid UTF-8 or the end
			}
			spans[k].start, spans[k].end = valueStart, i
			f.present |= 1 << k
			i = skipJSONSpace(raw, i+1)
			if i == len(raw) {
				return f, false
			}
			if raw[i] == '}' {
				i++
				break
			}
			if raw[i] != ',' {
				return f, false
			}
			i = skipJSONSpace(raw, i+1)
		}
	}
	if skipJSONSpace(raw, i) != len(raw) {
		return f, false
	}

	// The ids get their own strings: the writer keeps them for a long time as keys of its
	// usage cache, where a substring would pin every field of the usage. The other fields
	// share one string, one allocation.
	n := 0
	for k := range spans {
		if k != usageFieldUsageID && k != usageFieldAccountID {
			n += spans[k].end - spans[k].start
		}
	}
	var b strings.Builder
	b.Grow(n)
	for k := range spans {
		if k != usageFieldUsageID && k != usageFieldAccountID {
			b.Write(raw[spans[k].start:spans[k].end])
		}
	}
	rest, off := b.String(), 0
	for k := range spans {
		v := raw[spans[k].start:spans[k].end]
		if k == usageFieldUsageID || k == usageFieldAccountID {
			f.v[k] = string(v)
			continue
		}
		f.v[k], off = rest[off:off+len(v)], off+len(v)
	}
	return f, true
}

// skipJSONSpace returns the index of the first byte at or after i that is not JSON
// whitespace (space, tab, newline, carriage return), or len(b).
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonPlain marks the bytes that stand for themselves inside a JSON string and need no
// further look: printable ASCII other than the quote and the backslash.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// skipJSONPlain returns the index of the first byte at or after i that jsonPlain does not
// mark, or len(b). A table lookup per byte is the cheapest loop the compiler gives us here.
func skipJSONPlain(b []byte, i int) int {
	for i < len(b) && jsonPlain[b[i]] {
		i++
	}
	return i
}
