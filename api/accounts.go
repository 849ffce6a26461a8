package api

import (
	"net/http"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// execute is the shape of every write endpoint: read the account id from the path,
// decode the body strictly, build the command from it, execute it, and wait until the
// read models show the result. It answers the error itself and reports ok=false then.
// created is true when the command appended events (false for an idempotent repeat).
func (s *Server) execute(w http.ResponseWriter, r *http.Request, body any, command func() (ledger.Command, error)) (id string, created, ok bool) {
	id, err := pathID(r, "account_id", "account_id")
	if err == nil {
		err = decodeBody(w, r, bodyBytesMax, body)
	}
	var cmd ledger.Command
	if err == nil {
		cmd, err = command()
	}
	var evs []events.Envelope
	if err == nil {
		evs, err = s.writer.Execute(r.Context(), id, cmd)
	}
	if err != nil {
		s.writeError(w, r, err)
		return id, false, false
	}
	s.waitForReadModels(r.Context(), evs)
	return id, len(evs) > 0, true
}

// statusFor is 201 (or accepted) for a write that appended, 200 for a repeat.
func statusFor(created bool, onCreate int) int {
	if created {
		return onCreate
	}
	return http.StatusOK
}

type putAccountBody struct {
	Currency            *string `json:"currency"`
	LowBalanceThreshold *string `json:"low_balance_threshold"`
}

// putAccount opens an account: 201 when opened, 200 when it exists with the same
// currency, 409 when it exists with another.
func (s *Server) putAccount(w http.ResponseWriter, r *http.Request) {
	var body putAccountBody
	if id, created, ok := s.execute(w, r, &body, body.command); ok {
		s.writeAccount(w, r, id, statusFor(created, http.StatusCreated))
	}
}

func (b *putAccountBody) command() (ledger.Command, error) {
	if b.Currency == nil {
		return nil, missing("currency")
	}
	currency, err := ledger.ParseCurrency(*b.Currency)
	if err != nil {
		return nil, err
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
	if id, _, ok := s.execute(w, r, &body, body.command); ok {
		s.writeAccount(w, r, id, http.StatusOK)
	}
}

func (b *alertSettingsBody) command() (ledger.Command, error) {
	t, err := requiredAmount("low_balance_threshold", b.LowBalanceThreshold, ledger.ParseNonNegative)
	return ledger.ChangeAlertSettings{LowBalanceThreshold: t}, err
}

type autoTopUpBody struct {
	Enabled   *bool   `json:"enabled"`
	Threshold *string `json:"threshold"`
	Amount    *string `json:"amount"`
}

func (s *Server) putAutoTopUp(w http.ResponseWriter, r *http.Request) {
	var body autoTopUpBody
	if id, _, ok := s.execute(w, r, &body, body.command); ok {
		s.writeAccount(w, r, id, http.StatusOK)
	}
}

func (b *autoTopUpBody) command() (ledger.Command, error) {
	if b.Enabled == nil {
		return nil, missing("enabled")
	}
	cmd := ledger.ConfigureAutoTopUp{Enabled: *b.Enabled}
	var err error
	if cmd.Threshold, err = requiredAmount("threshold", b.Threshold, ledger.ParseNonNegative); err != nil {
		return nil, err
	}
	if cmd.Amount, err = requiredAmount("amount", b.Amount, ledger.ParseNonNegative); err != nil {
		return nil, err
	}
	return cmd, nil
}

type adjustmentBody struct {
	AdjustmentID *string `json:"adjustment_id"`
	Amount       *string `json:"amount"`
	Reason       *string `json:"reason"`
	UsageID      *string `json:"usage_id"`
	// parsed is the adjustment command() built, for the answer.
	parsed events.AdjustmentApplied
}

// adjustmentReasonMax bounds the free-text reason of an adjustment.
const adjustmentReasonMax = 500

func (b *adjustmentBody) command() (ledger.Command, error) {
	var adj events.AdjustmentApplied
	if b.AdjustmentID == nil {
		return nil, missing("adjustment_id")
	}
	if err := ledger.CheckID("adjustment_id", *b.AdjustmentID); err != nil {
		return nil, err
	}
	amount, err := requiredAmount("amount", b.Amount, ledger.ParseAmount)
	if err != nil {
		return nil, err
	}
	if b.Reason == nil || *b.Reason == "" {
		return nil, missing("reason")
	}
	if len(*b.Reason) > adjustmentReasonMax {
		return nil, ledger.Errorf(ledger.EINVALID, "invalid_reason", "reason is longer than %d bytes", adjustmentReasonMax)
	}
	adj.AdjustmentID, adj.Amount, adj.Reason = *b.AdjustmentID, amount, *b.Reason
	if b.UsageID != nil {
		if err := ledger.CheckID("usage_id", *b.UsageID); err != nil {
			return nil, err
		}
		adj.UsageID = *b.UsageID
	}
	b.parsed = adj
	return ledger.ApplyAdjustment{Adjustment: adj}, nil
}

// postAdjustment appends a compensating credit or debit; 201 when applied, 200 when
// the same adjustment was applied before.
func (s *Server) postAdjustment(w http.ResponseWriter, r *http.Request) {
	var body adjustmentBody
	id, created, ok := s.execute(w, r, &body, body.command)
	if !ok {
		return
	}
	a := body.parsed
	writeJSON(w, statusFor(created, http.StatusCreated), map[string]any{
		"adjustment_id": a.AdjustmentID, "account_id": id, "amount": a.Amount.String(),
		"reason": a.Reason, "usage_id": a.UsageID,
	})
}
