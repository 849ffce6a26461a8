package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/ledger"
)

// AuthorizeSubject is the NATS request-reply subject of call authorization.
const AuthorizeSubject = "ledger.authorize"

// authorizeRequestBytesMax bounds an authorization request.
const authorizeRequestBytesMax = 4 << 10

// getAuthorize is call authorization over HTTP; it answers 200 whether the call is
// allowed or denied.
func (s *Server) getAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := ledger.AuthorizeRequest{AccountID: r.PathValue("account_id"), Direction: q.Get("direction"), NumberType: q.Get("number_type")}
	if err := req.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.authorize(req))
}

func (s *Server) authorize(req ledger.AuthorizeRequest) ledger.AuthorizeDecision {
	start := time.Now()
	d := s.writer.Authorize(req)
	if s.metrics != nil {
		s.metrics.observeAuthorize(time.Since(start), d.Allowed)
	}
	return d
}

// ServeAuthorize answers ledger.authorize requests on nc until the subscription is
// drained. Requests are spread over a queue group so several ledgerd instances share them.
// A malformed request gets {"allowed": false, "reason": "invalid_request", "error": ...}:
// the platform must not connect a call it could not ask about.
func (s *Server) ServeAuthorize(nc *nats.Conn) (*nats.Subscription, error) {
	return nc.QueueSubscribe(AuthorizeSubject, "ledger", func(m *nats.Msg) {
		reply, err := json.Marshal(s.authorizeMsg(m.Data))
		if err == nil {
			err = m.Respond(reply)
		}
		if err != nil {
			s.log.Warn("authorize reply", zap.Error(err))
		}
	})
}

type authorizeRefusal struct {
	ledger.AuthorizeDecision
	Error errorDetail `json:"error"`
}

func (s *Server) authorizeMsg(data []byte) any {
	var req ledger.AuthorizeRequest
	err := error(nil)
	if len(data) > authorizeRequestBytesMax {
		err = ledger.Errorf(ledger.EINVALID, "payload_too_large", "authorize request is larger than %d bytes", authorizeRequestBytesMax)
	} else if jerr := json.Unmarshal(data, &req); jerr != nil {
		err = ledger.Errorf(ledger.EINVALID, "malformed_json", "authorize request: %v", jerr)
	} else {
		err = req.Validate()
	}
	if err != nil {
		return authorizeRefusal{
			AuthorizeDecision: ledger.AuthorizeDecision{Allowed: false, Reason: "invalid_request"},
			Error:             errorDetail{Code: ledger.ErrorReason(err), Message: err.Error()},
		}
	}
	return s.authorize(req)
}
