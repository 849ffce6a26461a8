package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/ledger"
)

// Limits of POST /v1/usage.
const (
	usageBatchEventsMax = 1000
	usageBodyBytesMax   = usageBatchEventsMax * ledger.UsagePayloadMax
)

type usageItemError struct {
	Index   int    `json:"index"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// postUsage accepts one usage event or an array of them. Each is validated first: if any
// is malformed the whole request is refused with 400 and the list of problems, and
// nothing is accepted (the caller still holds every event). Otherwise the events are
// published to the USAGE stream, the same path as the platform's NATS publishes, and
// 202 means they are durably accepted. Checks that need the ledger (unknown account,
// currency, conflicting duplicate) happen in the consumer and end up in the rejections.
func (s *Server) postUsage(w http.ResponseWriter, r *http.Request) {
	raws, err := readUsageBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	usages := make([]ledger.Usage, len(raws))
	var problems []usageItemError
	for i, raw := range raws {
		if usages[i], err = ledger.ParseUsage(raw); err != nil {
			problems = append(problems, usageItemError{Index: i, Code: ledger.ErrorReason(err), Message: err.Error()})
		}
	}
	if len(problems) > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":  errorDetail{Code: "invalid_usage", Message: fmt.Sprintf("%d of %d usage events are invalid; none was accepted", len(problems), len(raws))},
			"errors": problems,
		})
		return
	}
	if err := s.publishUsages(r.Context(), usages, raws); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"accepted": len(raws)})
}

// readUsageBody returns the raw JSON of each event of a single object or an array.
func readUsageBody(w http.ResponseWriter, r *http.Request) ([]json.RawMessage, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, usageBodyBytesMax))
	if err != nil {
		return nil, ledger.Errorf(ledger.EINVALID, "payload_too_large", "request body is larger than %d bytes", usageBodyBytesMax)
	}
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] != '[' {
		return []json.RawMessage{body}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, ledger.Errorf(ledger.EINVALID, "malformed_json", "body must be a usage object or an array of them: %v", err)
	}
	if len(raws) == 0 || len(raws) > usageBatchEventsMax {
		return nil, ledger.Errorf(ledger.EINVALID, "invalid_batch", "an array must hold 1..%d usage events, got %d", usageBatchEventsMax, len(raws))
	}
	return raws, nil
}

// publishUsages publishes validated usages to USAGE and waits for every acknowledgement.
// The message id carries the content hash: an identical resend inside JetStream's
// duplicate window is dropped by the server, while a resend with other content still
// reaches the ledger and becomes a conflicting_duplicate rejection.
func (s *Server) publishUsages(ctx context.Context, usages []ledger.Usage, raws []json.RawMessage) error {
	acks := make([]jetstream.PubAckFuture, len(usages))
	for i, u := range usages {
		msg := &nats.Msg{Subject: ingest.Subject(u.AccountID), Data: raws[i], Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, u.AccountID+"/"+u.Charge.UsageID+"/"+u.Charge.ContentHash)
		f, err := s.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("publish usage: %w", err)
		}
		acks[i] = f
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish usage: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
