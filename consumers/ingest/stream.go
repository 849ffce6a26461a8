package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	ledgerjs "github.com/telephony/creditledger/events/jetstream"
)

// Names of the platform's inbox.
const (
	UsageStream        = "USAGE"
	UsageSubjectPrefix = "usage."
	UsageSubjects      = "usage.>"
	DurableName        = "ledger-ingest"
)

// Subject is the USAGE subject of an account: usage.{account_id}. An id that starts or
// ends with "." or holds ".." would make an empty subject token, which NATS refuses; such
// empty tokens are written "~" (no id can hold it), as in the LEDGER and ALERTS subjects.
func Subject(accountID string) string {
	return UsageSubjectPrefix + strings.TrimPrefix(ledgerjs.Subject(accountID), ledgerjs.SubjectPrefix)
}

// AccountOf is the account id a USAGE subject stands for (the inverse of Subject).
func AccountOf(subject string) string {
	tokens := strings.Split(strings.TrimPrefix(subject, UsageSubjectPrefix), ".")
	for i, t := range tokens {
		if t == "~" {
			tokens[i] = ""
		}
	}
	return strings.Join(tokens, ".")
}

// usagePayloadStoredMax is the largest message the USAGE stream accepts. Bigger
// publishes are refused by the server, so the publisher learns at once and nothing is
// silently dropped; up to this size a bad payload is kept whole in its rejection.
const usagePayloadStoredMax = 64 << 10

// EnsureUsageStream creates or updates the USAGE stream. It is a work queue: a message
// leaves it once the ledger has acknowledged it (charged, duplicate, or rejected and kept).
func EnsureUsageStream(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	if replicas <= 0 {
		replicas = 1
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        UsageStream,
		Description: "usage events published by the telephony platform; the ledger's inbox",
		Subjects:    []string{UsageSubjects},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxMsgSize:  usagePayloadStoredMax,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", UsageStream, err)
	}
	return s, nil
}
