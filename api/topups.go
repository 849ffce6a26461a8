package api

import (
	"net/http"

	"github.com/telephony/creditledger/ledger"
)

type topUpBody struct {
	TopUpID *string `json:"top_up_id"`
	Amount  *string `json:"amount"`
}

// postTopUp requests a one-time top-up: 202 with the new pending top-up; the same
// top_up_id and amount again answers the existing top-up (200); another amount is 409.
func (s *Server) postTopUp(w http.ResponseWriter, r *http.Request) {
	var body topUpBody
	if id, created, ok := s.execute(w, r, &body, body.command); ok {
		s.writeTopUp(w, r, id, *body.TopUpID, statusFor(created, http.StatusAccepted))
	}
}

func (b *topUpBody) command() (ledger.Command, error) {
	if b.TopUpID == nil {
		return nil, missing("top_up_id")
	}
	if err := ledger.CheckID("top_up_id", *b.TopUpID); err != nil {
		return nil, err
	}
	amount, err := requiredAmount("amount", b.Amount, ledger.ParsePositive)
	return ledger.RequestTopUp{TopUpID: *b.TopUpID, Amount: amount}, err
}

func (s *Server) getTopUp(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "account_id", "account_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	topUpID, err := pathID(r, "top_up_id", "top_up_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeTopUp(w, r, id, topUpID, http.StatusOK)
}

func (s *Server) writeTopUp(w http.ResponseWriter, r *http.Request, accountID, topUpID string, status int) {
	t, ok, err := s.reads.TopUp(r.Context(), accountID, topUpID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok {
		s.writeError(w, r, ledger.Errorf(ledger.ENOTFOUND, "top_up_not_found", "top-up %q of account %q does not exist", topUpID, accountID))
		return
	}
	writeJSON(w, status, t)
}

func (s *Server) getTopUps(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "account_id", "account_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.accountExists(w, r, id) {
		return
	}
	ts, err := s.reads.TopUps(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"top_ups": ts})
}
