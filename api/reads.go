package api

import (
	"net/http"
	"time"

	"github.com/telephony/creditledger/ledger"
	"github.com/telephony/creditledger/projections"
)

// writeAccount answers the account's read model.
func (s *Server) writeAccount(w http.ResponseWriter, r *http.Request, id string, status int) {
	a, ok, err := s.reads.Account(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok {
		s.writeError(w, r, ledger.Errorf(ledger.ENOTFOUND, "account_not_found", "account %q does not exist", id))
		return
	}
	writeJSON(w, status, a)
}

func (s *Server) getMovements(w http.ResponseWriter, r *http.Request) {
	id, f, err := movementQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.accountExists(w, r, id) {
		return
	}
	ms, next, err := s.reads.Movements(r.Context(), id, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ms == nil {
		ms = []projections.Movement{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"movements": ms, "next_cursor": next})
}

// getMovementsCSV streams the "Export credit movements" file row by row.
func (s *Server) getMovementsCSV(w http.ResponseWriter, r *http.Request) {
	id, f, err := movementQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.accountExists(w, r, id) {
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+id+`-movements.csv"`)
	out := &sentWriter{w: w}
	if err := s.reads.WriteMovementsCSV(r.Context(), out, id, f); err != nil {
		if !out.sent {
			// Nothing went out yet (an invalid cursor): an ordinary error answer.
			w.Header().Del("Content-Disposition")
			s.writeError(w, r, err)
			return
		}
		// The header is sent; all we can do is cut the stream short so the client sees an
		// incomplete file rather than a silently truncated one that looks whole.
		s.log.Sugar().Warnw("movements export aborted", "account_id", id, "error", err)
		panic(http.ErrAbortHandler)
	}
}

// sentWriter notes whether anything was written, i.e. whether the status is sent.
type sentWriter struct {
	w    http.ResponseWriter
	sent bool
}

func (s *sentWriter) Write(p []byte) (int, error) {
	s.sent = true
	return s.w.Write(p)
}

func (s *Server) getUsageSummary(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "account_id", "account_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	from, err := timeParam("from", q.Get("from"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	to, err := timeParam("to", q.Get("to"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.accountExists(w, r, id) {
		return
	}
	sum, err := s.reads.UsageSummary(r.Context(), id, from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *Server) accountExists(w http.ResponseWriter, r *http.Request, id string) bool {
	_, ok, err := s.reads.Account(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return false
	}
	if !ok {
		s.writeError(w, r, ledger.Errorf(ledger.ENOTFOUND, "account_not_found", "account %q does not exist", id))
	}
	return ok
}

// Page sizes of the movements listing (API.md section 7).
const (
	movementsPageDefault = 100
	movementsPageMax     = 1000
)

// movementQuery reads the account and the filters of the movements endpoints.
func movementQuery(r *http.Request) (string, projections.MovementFilter, error) {
	var f projections.MovementFilter
	id, err := pathID(r, "account_id", "account_id")
	if err != nil {
		return "", f, err
	}
	q := r.URL.Query()
	if f.From, err = timeParam("from", q.Get("from")); err != nil {
		return "", f, err
	}
	if f.To, err = timeParam("to", q.Get("to")); err != nil {
		return "", f, err
	}
	f.Cause, f.Type, f.UserID, f.Cursor = q.Get("cause"), q.Get("type"), q.Get("user_id"), q.Get("cursor")
	if err := checkEnum("type", f.Type, projections.MovementUsage, projections.MovementTopUp, projections.MovementAdjustment); err != nil {
		return "", f, err
	}
	causes := append(append([]string{}, ledger.Causes...), projections.CauseTopUp, projections.CauseAutoTopUp, projections.CauseAdjustment)
	if err := checkEnum("cause", f.Cause, causes...); err != nil {
		return "", f, err
	}
	if f.Limit, err = limitParam(q.Get("limit"), movementsPageDefault, movementsPageMax); err != nil {
		return "", f, err
	}
	return id, f, nil
}

func checkEnum(field, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return ledger.Errorf(ledger.EINVALID, "invalid_"+field, "%s must be one of %v, got %q", field, allowed, v)
}

// timeParam parses an optional RFC 3339 query parameter.
func timeParam(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	return ledger.ParseTime(name, v)
}
