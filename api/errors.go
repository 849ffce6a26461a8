package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/telephony/creditledger/ledger"
)

// statusOf maps a domain error code to its HTTP status, once for the whole API.
var statusOf = map[string]int{
	ledger.EINVALID:       http.StatusBadRequest,
	ledger.ENOTFOUND:      http.StatusNotFound,
	ledger.ECONFLICT:      http.StatusConflict,
	ledger.EUNPROCESSABLE: http.StatusUnprocessableEntity,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers err. A *ledger.Error shows its reason and message; anything else is
// logged and shown as a 503 "unavailable" without internals.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *ledger.Error
	if errors.As(err, &e) {
		writeJSON(w, statusOf[e.Code], errorBody{errorDetail{Code: e.Reason, Message: e.Message}})
		return
	}
	s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path),
		zap.String("account_id", r.PathValue("account_id")), zap.Error(err))
	writeJSON(w, http.StatusServiceUnavailable, errorBody{errorDetail{Code: "unavailable", Message: "the ledger could not complete the request; it is safe to retry"}})
}

func writeErrorCode(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorBody{errorDetail{Code: code, Message: message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away; nothing to do
}
