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
	id, err := pathID(r, "account_id", "account_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var body topUpBody
	if err := decodeBody(w, r, bodyBytesMax, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.TopUpID == nil {
		s.writeError(w, r, missing("top_up_id"))
		return
	}
	if err := ledger.CheckID("top_up_id", *body.TopUpID); err != nil {
		s.writeError(w, r, err)
		return
	}
	amount, err := requiredAmount("amount", body.Amount, ledger.ParsePositive)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	evs, err := s.writer.Execute(r.Context(), id, ledger.RequestTopUp{TopUpID: *body.TopUpID, Amount: amount})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.waitForReadModels(r.Context(), evs)
	status := http.StatusOK
	if len(evs) > 0 {
		status = http.StatusAccepted
	}
	s.writeTopUp(w, r, id, *body.TopUpID, status)
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
