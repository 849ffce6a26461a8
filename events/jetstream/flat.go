package jetstream

import (
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
)

// The payloads of the ledger are flat structs of strings, ints, bools, decimals and
// times. encoding/json spends most of its time on them in reflection and in scanning
// the bytes several times; a codec built once per type from the same struct tags does
// the same work in one pass. It mirrors encoding/json exactly for the values it
// accepts, calls the decimals' and times' own JSON methods, and declines everything
// else (escapes, non-ASCII text, null, unknown or repeated keys, whitespace), so the
// events codec answers those. Being built by reflection from the struct tags, it
// follows new fields by itself; a field of another kind makes its type decline.

// flatKind is a field kind the fast codec handles.
type flatKind int

const (
	flatString flatKind = iota + 1
	flatInt
	flatBool
	flatDecimal
	flatTime
)

type flatField struct {
	key       string // JSON key
	index     int
	kind      flatKind
	omitEmpty bool
}

// flatType is the fast codec of one payload type.
type flatType struct {
	typ    reflect.Type
	fields []flatField
	byKey  map[string]int // key -> position in fields
}

// flatByName holds the payload types whose current type name the fast codec serves.
// A type name that has become old (has an upcaster) is no longer any struct's
// EventType, so it is never found here and goes through events.UnmarshalData.
var flatByName = buildFlatTypes(
	events.AccountOpened{}, events.UsageCharged{}, events.AdjustmentApplied{},
	events.AlertSettingsChanged{}, events.AutoTopUpConfigured{}, events.TopUpRequested{},
	events.TopUpAttemptFailed{}, events.TopUpSucceeded{}, events.TopUpFailed{},
)

var (
	typeString  = reflect.TypeFor[string]()
	typeInt     = reflect.TypeFor[int]()
	typeBool    = reflect.TypeFor[bool]()
	typeDecimal = reflect.TypeFor[decimal.Decimal]()
	typeTime    = reflect.TypeFor[time.Time]()
)

func buildFlatTypes(samples ...events.Event) map[string]*flatType {
	out := make(map[string]*flatType)
	for _, s := range samples {
		if ft := newFlatType(reflect.TypeOf(s)); ft != nil {
			out[s.EventType()] = ft
		}
	}
	return out
}

// newFlatType returns nil for a type the fast codec cannot mirror exactly.
func newFlatType(t reflect.Type) *flatType {
	if t.Kind() != reflect.Struct || t.NumField() > 64 {
		return nil
	}
	ft := &flatType{typ: t, byKey: make(map[string]int)}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Anonymous {
			return nil
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			return nil
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		ff := flatField{key: name, index: i}
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "":
			case "omitempty":
				ff.omitEmpty = true
			default:
				return nil // ",string", ",omitzero", ...: not mirrored
			}
		}
		switch f.Type {
		case typeString:
			ff.kind = flatString
		case typeInt:
			ff.kind = flatInt
		case typeBool:
			ff.kind = flatBool
		case typeDecimal:
			ff.kind = flatDecimal
		case typeTime:
			ff.kind = flatTime
		default:
			return nil
		}
		if !plainJSONString(name) {
			return nil
		}
		if _, dup := ft.byKey[name]; dup {
			return nil
		}
		ft.byKey[name] = len(ft.fields)
		ft.fields = append(ft.fields, ff)
	}
	return ft
}

// encode appends the JSON encoding/json would write for v, or reports false.
func (ft *flatType) encode(b []byte, v events.Event) ([]byte, bool) {
	rv := reflect.ValueOf(v)
	if rv.Type() != ft.typ {
		return nil, false
	}
	b = append(b, '{')
	first := true
	for _, f := range ft.fields {
		fv := rv.Field(f.index)
		mark := len(b)
		if !first {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f.key...)
		b = append(b, '"', ':')
		switch f.kind {
		case flatString:
			s := fv.String()
			if f.omitEmpty && s == "" {
				b = b[:mark]
				continue
			}
			if !plainJSONString(s) {
				return nil, false
			}
			b = append(b, '"')
			b = append(b, s...)
			b = append(b, '"')
		case flatInt:
			n := fv.Int()
			if f.omitEmpty && n == 0 {
				b = b[:mark]
				continue
			}
			b = strconv.AppendInt(b, n, 10)
		case flatBool:
			t := fv.Bool()
			if f.omitEmpty && !t {
				b = b[:mark]
				continue
			}
			b = strconv.AppendBool(b, t)
		case flatDecimal:
			// omitempty never omits a struct in encoding/json.
			j, err := fv.Interface().(decimal.Decimal).MarshalJSON()
			if err != nil || !plainJSONToken(j) {
				return nil, false
			}
			b = append(b, j...)
		case flatTime:
			j, err := fv.Interface().(time.Time).MarshalJSON()
			if err != nil || !plainJSONToken(j) {
				return nil, false
			}
			b = append(b, j...)
		}
		first = false
	}
	return append(b, '}'), true
}

// plainJSONToken reports whether a Marshaler's output is a plain quoted string that
// encoding/json would copy unchanged (it compacts and HTML-escapes Marshaler output).
func plainJSONToken(j []byte) bool {
	return len(j) >= 2 && j[0] == '"' && j[len(j)-1] == '"' && plainJSONString(string(j[1:len(j)-1]))
}

// decode reads what encode writes (keys in any order, absent keys left zero) and
// returns the payload as a value, like events.UnmarshalData; false for anything else.
func (ft *flatType) decode(raw []byte) (events.Event, bool) {
	p := plainParser{b: raw}
	d, ok := ft.decodeFrom(&p)
	return d, ok && p.i == len(raw)
}

// decodeFrom decodes the object at p's position and leaves p after it.
func (ft *flatType) decodeFrom(p *plainParser) (events.Event, bool) {
	if !p.byte('{') {
		return nil, false
	}
	v := reflect.New(ft.typ).Elem()
	if p.byte('}') {
		return v.Interface().(events.Event), true
	}
	var seen uint64
	next := 0 // the field encode writes next, tried before the map
	for {
		key, ok := p.str()
		if !ok || !p.byte(':') {
			return nil, false
		}
		pos := -1
		for i := next; i < len(ft.fields); i++ {
			if ft.fields[i].key == string(key) {
				pos = i
				break
			}
			if !ft.fields[i].omitEmpty {
				break // encode always writes this one: the key is not a later field
			}
		}
		if pos < 0 {
			if pos, ok = ft.byKey[string(key)]; !ok {
				return nil, false
			}
		}
		if seen&(1<<pos) != 0 {
			return nil, false
		}
		seen |= 1 << pos
		next = pos + 1
		f := ft.fields[pos]
		fv := v.Field(f.index)
		switch f.kind {
		case flatString:
			s, ok := p.text()
			if !ok {
				return nil, false
			}
			fv.SetString(string(s))
		case flatInt:
			n, ok := p.int()
			if !ok {
				return nil, false
			}
			fv.SetInt(n)
		case flatBool:
			switch {
			case p.literal("true"):
				fv.SetBool(true)
			case p.literal("false"):
			default:
				return nil, false
			}
		case flatDecimal:
			q, ok := p.quoted()
			if !ok || fv.Addr().Interface().(*decimal.Decimal).UnmarshalJSON(q) != nil {
				return nil, false
			}
		case flatTime:
			q, ok := p.quoted()
			if !ok || fv.Addr().Interface().(*time.Time).UnmarshalJSON(q) != nil {
				return nil, false
			}
		}
		if p.byte(',') {
			continue
		}
		if !p.byte('}') {
			return nil, false
		}
		return v.Interface().(events.Event), true
	}
}

// text reads a string without escapes or control characters; valid UTF-8 is taken as
// it is, as encoding/json does.
func (p *plainParser) text() ([]byte, bool) {
	b, start := p.b, p.i
	if start >= len(b) || b[start] != '"' {
		return nil, false
	}
	ascii := true
	for i := start + 1; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			s := b[start+1 : i]
			if !ascii && !utf8.Valid(s) {
				return nil, false // encoding/json would substitute U+FFFD
			}
			p.i = i + 1
			return s, true
		}
		if c < 0x20 || c == '\\' {
			return nil, false
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return nil, false
}

// int reads a JSON integer that fits an int.
func (p *plainParser) int() (int64, bool) {
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	if _, ok := p.uint(); !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, strconv.IntSize)
	return n, err == nil
}

func (p *plainParser) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}
