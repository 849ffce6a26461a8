package api

import (
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/ledger"
)

type rejectionJSON struct {
	RejectionID string    `json:"rejection_id"`
	ReceivedAt  time.Time `json:"received_at"`
	Subject     string    `json:"subject"`
	AccountID   string    `json:"account_id"`
	Reason      string    `json:"reason"`
	Message     string    `json:"message"`
	// Payload is the raw payload as text; PayloadBase64 replaces it when the bytes are
	// not valid UTF-8, so nothing of the original is lost.
	Payload       string    `json:"payload"`
	PayloadBase64 []byte    `json:"payload_base64,omitempty"`
	Status        string    `json:"status"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func toRejectionJSON(r intake.Rejection) rejectionJSON {
	j := rejectionJSON{RejectionID: r.ID, ReceivedAt: r.ReceivedAt.UTC(), Subject: r.Subject, AccountID: r.AccountID,
		Reason: r.Reason, Message: r.Message, Status: r.Status, UpdatedAt: r.UpdatedAt.UTC()}
	if utf8.Valid(r.Payload) {
		j.Payload = string(r.Payload)
	} else {
		j.PayloadBase64 = r.Payload
	}
	return j
}

// rejectionsPageDefault is the listing size when no limit is given.
const rejectionsPageDefault = 100

func (s *Server) getRejections(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	account := q.Get("account_id")
	if account != "" {
		if err := ledger.CheckID("account_id", account); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	limit, err := limitParam(q.Get("limit"), rejectionsPageDefault, intake.RejectionsPageMax)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rs, err := s.intake.Rejections(r.Context(), account, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]rejectionJSON, 0, len(rs))
	for _, rj := range rs {
		out = append(out, toRejectionJSON(rj))
	}
	writeJSON(w, http.StatusOK, map[string]any{"rejections": out})
}

// postRejectionRetry charges a rejected usage again and answers the rejection as it now
// stands: status "resolved" when charged, "open" with the new reason otherwise.
func (s *Server) postRejectionRetry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("rejection_id")
	if len(id) > 80 {
		s.writeError(w, r, ledger.Errorf(ledger.EINVALID, "invalid_rejection_id", "rejection id is too long"))
		return
	}
	rj, err := s.ingest.Retry(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toRejectionJSON(rj))
}

// limitParam parses a page size: default when empty, 1..max otherwise.
func limitParam(s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, ledger.Errorf(ledger.EINVALID, "invalid_limit", "limit must be an integer in 1..%d, got %q", max, s)
	}
	return n, nil
}
