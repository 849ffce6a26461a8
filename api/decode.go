package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/ledger"
)

// bodyBytesMax bounds a JSON request body (a usage batch is allowed more, see usage.go).
const bodyBytesMax = 64 << 10

// decodeBody reads a JSON object strictly: unknown fields, trailing data and oversize
// bodies are errors, so a typo is reported instead of being ignored.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return ledger.Errorf(ledger.EINVALID, "payload_too_large", "request body is larger than %d bytes", limit)
		}
		if errors.Is(err, io.EOF) {
			return ledger.Errorf(ledger.EINVALID, "malformed_json", "request body is empty")
		}
		return ledger.Errorf(ledger.EINVALID, "malformed_json", "request body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ledger.Errorf(ledger.EINVALID, "malformed_json", "request body has data after the JSON object")
	}
	return nil
}

// amountField parses an optional money field given as a JSON string.
func amountField(name string, v *string, def decimal.Decimal, parse func(string, string) (decimal.Decimal, error)) (decimal.Decimal, error) {
	if v == nil {
		return def, nil
	}
	return parse(name, *v)
}

// requiredAmount parses a required money field given as a JSON string.
func requiredAmount(name string, v *string, parse func(string, string) (decimal.Decimal, error)) (decimal.Decimal, error) {
	if v == nil {
		return decimal.Decimal{}, ledger.Errorf(ledger.EINVALID, "missing_field", "%s is required", name)
	}
	return parse(name, *v)
}

// pathID reads and validates an id from the URL path.
func pathID(r *http.Request, name, field string) (string, error) {
	id := r.PathValue(name)
	if err := ledger.CheckID(field, id); err != nil {
		return "", err
	}
	return id, nil
}

func missing(field string) error {
	return ledger.Errorf(ledger.EINVALID, "missing_field", "%s is required", field)
}
