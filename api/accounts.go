package api

import (
	"net/http"

	"github.com/telephony/creditledger/ledger"
)

type putAccountBody struct {
	Currency            *string `json:"currency"`
	LowBalanceThreshold *string `json:"low_balance_threshold"`
}

// putAccount opens an account: 201 when opened, 200 when it exists with the same
// currency, 409 when it exists with another.
func (s *Server) putAccount(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "account_id", "account_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var body putAccountBody
	if err := decodeBody(w, r, bodyBytesMax, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	cmd, err := body.command()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	evs, err := s.writer.Execute(r.Context(), id, cmd)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.waitForReadModels(r.Context(), evs)
	status := http.StatusOK
	if len(evs) > 0 {
		status = http.StatusCreated
	}
	s.writeAccount(w, r, id, status)
}

func (b putAccountBody) command() (ledger.OpenAccount, error) {
	if b.Currency == nil {
		return ledger.OpenAccount{}, missing("currency")
	}
	currency, err := ledger.ParseCurrency(*b.Currency)
	if err != nil {
		return ledger.OpenAccount{}, err
	}
	threshold, err := amountField("low_balance_threshold", b.LowBalanceThreshold, ledger.DefaultLowBalanceThreshold, ledger.ParseNonNegative)
	return ledger.OpenAccount{Currency: currency, LowBalanceThreshold: threshold}, err
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "account_id", "account_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeAccount(w, r, id, http.StatusOK)
}

type alertSettingsBody struct {
	LowBalanceThreshold *string `json:"low_balance_threshold"`
}

func (s *Server) putAlertSettings(w http.ResponseWriter, r *http.Request) {
	var body alertSettingsBody
	s.executeAndShowAccount(w, r, &body, func() (ledger.Command, error) {
		t, err := requiredAmount("low_balance_threshold", body.LowBalanceThreshold, ledger.ParseNonNegative)
		return ledger.ChangeAlertSettings{LowBalanceThreshold: t}, err
	})
}

type autoTopUpBody struct {
	Enabled   *bool   `json:"enabled"`
	Threshold *string `json:"threshold"`
	Amount    *string `json:"amount"`
}

func (s *Server) putAutoTopUp(w http.ResponseWriter, r *http.Request) {
	var body autoTopUpBody
	s.executeAndShowAccount(w, r, &body, func() (ledger.Command, error) {
		if body.Enabled == nil {
			return nil, missing("enabled")
		}
		cmd := ledger.ConfigureAutoTopUp{Enabled: *body.Enabled}
		var err error
		if cmd.Threshold, err = requiredAmount("threshold", body.Threshold, ledger.ParseNonNegative); err != nil {
			return nil, err
		}
		if cmd.Amount, err = requiredAmount("amount", body.Amount, ledger.ParseNonNegative); err != nil {
			return nil, err
		}
		return cmd, nil
	})
}

// executeAndShowAccount is the shape of the settings endpoints: decode the body, build
// the command, execute it, answer the account as the read models show it afterwards.
func (s *Server) executeAndShowAccount(w http.ResponseWriter, r *http.Request, body any, command func() (ledger.Command, error)) {
	id, err := pathID(r, "account_id", "account_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := decodeBody(w, r, bodyBytesMax, body); err != nil {
		s.writeError(w, r, err)
		return
	}
	cmd, err := command()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	evs, err := s.writer.Execute(r.Context(), id, cmd)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.waitForReadModels(r.Context(), evs)
	s.writeAccount(w, r, id, http.StatusOK)
}

type adjustmentBody struct {
	AdjustmentID *string `json:"adjustment_id"`
	Amount       *string `json:"amount"`
	Reason       *string `json:"reason"`
	UsageID      *string `json:"usage_id"`
}

// adjustmentReasonMax bounds the free-text reason of an adjustment.
const adjustmentReasonMax = 500

func (b adjustmentBody) command() (ledger.ApplyAdjustment, error) {
	var cmd ledger.ApplyAdjustment
	if b.AdjustmentID == nil {
		return cmd, missing("adjustment_id")
	}
	if err := ledger.CheckID("adjustment_id", *b.AdjustmentID); err != nil {
		return cmd, err
	}
	amount, err := requiredAmount("amount", b.Amount, ledger.ParseAmount)
	if err != nil {
		return cmd, err
	}
	if b.Reason == nil || *b.Reason == "" {
		return cmd, missing("reason")
	}
	if len(*b.Reason) > adjustmentReasonMax {
		return cmd, ledger.Errorf(ledger.EINVALID, "invalid_reason", "reason is longer than %d bytes", adjustmentReasonMax)
	}
	cmd.Adjustment.AdjustmentID, cmd.Adjustment.Amount, cmd.Adjustment.Reason = *b.AdjustmentID, amount, *b.Reason
	if b.UsageID != nil {
		if err := ledger.CheckID("usage_id", *b.UsageID); err != nil {
			return cmd, err
		}
		cmd.Adjustment.UsageID = *b.UsageID
	}
	return cmd, nil
}

// postAdjustment appends a compensating credit or debit; 201 when applied, 200 when
// the same adjustment was applied before.
func (s *Server) postAdjustment(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "account_id", "account_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var body adjustmentBody
	if err := decodeBody(w, r, bodyBytesMax, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	cmd, err := body.command()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	evs, err := s.writer.Execute(r.Context(), id, cmd)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.waitForReadModels(r.Context(), evs)
	status := http.StatusOK
	if len(evs) > 0 {
		status = http.StatusCreated
	}
	a := cmd.Adjustment
	writeJSON(w, status, map[string]any{
		"adjustment_id": a.AdjustmentID, "account_id": id, "amount": a.Amount.String(),
		"reason": a.Reason, "usage_id": a.UsageID,
	})
}
