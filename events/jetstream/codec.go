package jetstream

import (
	"strconv"
	"time"

	"github.com/telephony/creditledger/events"
)

// The body of a message is events.Marshal of the envelope. encodeEnvelope and
// decodeEnvelope produce and read exactly those bytes, faster: events.Marshal encodes
// the payload, then re-scans and compacts it inside the outer object, and
// events.Unmarshal validates and scans the payload twice more before decoding it. On
// the ingest and rebuild paths that was most of the store's own CPU time (see
// bench_test.go), so this file writes and reads the outer object by hand, flat.go does
// the payloads, and type names it does not know and upcasting stay with the events
// package.
//
// Both fall back to the events codec for anything outside the plain shape it writes,
// so they can only be faster, never different: tests compare them with the codec
// byte for byte and value for value, fuzz the decoder against it, and fail when
// events.Envelope gains a field this file does not know.

// encodeEnvelope returns the same bytes as events.Marshal(e).
func encodeEnvelope(e events.Envelope) ([]byte, error) {
	if e.Data == nil || !plainJSONString(e.AccountID) {
		return events.Marshal(e)
	}
	typ := e.Data.EventType()
	occurred, recorded := e.OccurredAt.UTC(), e.RecordedAt.UTC()
	if !plainJSONString(typ) || !rfc3339Year(occurred) || !rfc3339Year(recorded) {
		return events.Marshal(e)
	}
	b := make([]byte, 0, 768) // a usage event is about 520 bytes
	b = append(b, `{"id":"`...)
	b = append(b, e.ID.String()...)
	b = append(b, `","account_id":"`...)
	b = append(b, e.AccountID...)
	b = append(b, `","version":`...)
	b = strconv.AppendUint(b, e.Version, 10)
	b = append(b, `,"type":"`...)
	b = append(b, typ...)
	b = append(b, `","occurred_at":"`...)
	b = occurred.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","recorded_at":"`...)
	b = recorded.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":`...)
	if ft := flatByName[typ]; ft != nil {
		if out, ok := ft.encode(b, e.Data); ok {
			return append(out, '}'), nil
		}
	}
	data, err := events.MarshalData(e.Data)
	if err != nil {
		return nil, err
	}
	b = append(b, data...)
	return append(b, '}'), nil
}

// plainJSONString reports whether encoding/json writes s as-is between quotes: printable
// ASCII without the characters it escapes (quote, backslash, and <, >, & for HTML).
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// rfc3339Year reports whether time.Time's MarshalJSON accepts t (it refuses years
// outside 0..9999) so that AppendFormat gives the same text.
func rfc3339Year(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

// envelope keys, as bits of what decodeEnvelope has seen.
const (
	keyID = 1 << iota
	keyAccountID
	keyVersion
	keyType
	keyOccurredAt
	keyRecordedAt
	keyData
	keysAll = keyID | keyAccountID | keyVersion | keyType | keyOccurredAt | keyRecordedAt | keyData
)

// decodeEnvelope returns what events.Unmarshal(b) returns.
func decodeEnvelope(b []byte) (events.Envelope, error) {
	if e, ok := decodePlain(b); ok {
		return e, nil
	}
	return events.Unmarshal(b)
}

// decodePlain reads the shape encodeEnvelope writes (keys in any order, no whitespace,
// no escapes outside the payload). ok is false for anything else, and for any error,
// so that the caller gets the events codec's own answer.
func decodePlain(b []byte) (e events.Envelope, ok bool) {
	p := plainParser{b: b}
	if !p.byte('{') {
		return e, false
	}
	var (
		seen     int
		typ      string
		data     []byte
		occurred []byte
		recorded []byte
	)
	for {
		key, okKey := p.str()
		if !okKey || !p.byte(':') {
			return e, false
		}
		var bit int
		switch string(key) {
		case "id":
			bit = keyID
			v, okV := p.quoted()
			if !okV || e.ID.UnmarshalText(v[1:len(v)-1]) != nil {
				return e, false
			}
		case "account_id":
			bit = keyAccountID
			v, okV := p.str()
			if !okV {
				return e, false
			}
			e.AccountID = string(v)
		case "version":
			bit = keyVersion
			v, okV := p.uint()
			if !okV {
				return e, false
			}
			e.Version = v
		case "type":
			bit = keyType
			v, okV := p.str()
			if !okV {
				return e, false
			}
			typ = string(v)
		case "occurred_at":
			bit = keyOccurredAt
			if occurred, ok = p.quoted(); !ok {
				return e, false
			}
		case "recorded_at":
			bit = keyRecordedAt
			if recorded, ok = p.quoted(); !ok {
				return e, false
			}
		case "data":
			bit = keyData
			// events.Marshal writes the type first: then the payload is decoded in
			// place, in the same pass that finds where it ends.
			if ft := flatByName[typ]; ft != nil && seen&keyType != 0 {
				if payload, okP := ft.decodeFrom(&p); okP {
					e.Data = payload
					break
				}
				return e, false
			}
			if data, ok = p.object(); !ok {
				return e, false
			}
		default:
			return e, false
		}
		if seen&bit != 0 {
			return e, false // duplicate key: leave the tie-break to encoding/json
		}
		seen |= bit
		if p.byte(',') {
			continue
		}
		if !p.byte('}') || p.i != len(b) || seen != keysAll {
			return e, false
		}
		break
	}
	// time.Time's own JSON decoding, so the result (location included) is the codec's.
	if e.OccurredAt.UnmarshalJSON(occurred) != nil || e.RecordedAt.UnmarshalJSON(recorded) != nil {
		return events.Envelope{}, false
	}
	if e.Data == nil {
		d, err := decodePayload(typ, data)
		if err != nil {
			return events.Envelope{}, false
		}
		e.Data = d
	}
	return e, true
}

// decodePayload returns what events.UnmarshalData(typ, raw) returns.
func decodePayload(typ string, raw []byte) (events.Event, error) {
	if ft := flatByName[typ]; ft != nil {
		if d, ok := ft.decode(raw); ok {
			return d, nil
		}
	}
	return events.UnmarshalData(typ, raw)
}

// plainParser walks the outer object of an envelope.
type plainParser struct {
	b []byte
	i int
}

func (p *plainParser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// quoted reads a string of printable ASCII without escapes and returns it with its
// quotes. (The loops here work on locals: the compiler keeps them in registers, which
// it cannot do for fields behind the pointer.)
func (p *plainParser) quoted() ([]byte, bool) {
	b, start := p.b, p.i
	if start >= len(b) || b[start] != '"' {
		return nil, false
	}
	for i := start + 1; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			p.i = i + 1
			return b[start:p.i], true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			return nil, false
		}
	}
	return nil, false
}

// str reads a plain string and returns its content.
func (p *plainParser) str() ([]byte, bool) {
	q, ok := p.quoted()
	if !ok {
		return nil, false
	}
	return q[1 : len(q)-1], true
}

// uint reads a JSON number that is a plain non-negative integer (no leading zero, no
// fraction or exponent), as encoding/json accepts into a uint64.
func (p *plainParser) uint() (uint64, bool) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := p.b[start:p.i]
	if len(digits) == 0 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	v, err := strconv.ParseUint(string(digits), 10, 64)
	return v, err == nil
}

// object returns the bytes of a JSON object by matching braces outside strings. It does
// not validate the object: the payload decoder does, and any error there falls back.
func (p *plainParser) object() ([]byte, bool) {
	b, start := p.b, p.i
	if start >= len(b) || b[start] != '{' {
		return nil, false
	}
	depth, inString := 1, false
	for i := start + 1; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++ // skip the escaped character
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				if c != '}' {
					return nil, false
				}
				p.i = i + 1
				return b[start:p.i], true
			}
		}
	}
	return nil, false
}
