package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/shopspring/decimal"
)

// usageKind is one kind of usage the telephony platform reports, with its weight in the
// mix: mostly calls and messages, a tail of forwarding and AI features.
type usageKind struct {
	typ, reason, unit string
	weight            int
	amountMax         int64 // in ten-thousandths
}

var usageKinds = []usageKind{
	{"call", "fup_exceeded", "minute", 30, 50_000},
	{"call", "international", "minute", 10, 200_000},
	{"call", "premium", "minute", 3, 300_000},
	{"call", "unsupported_destination", "minute", 2, 100_000},
	{"forwarded_call", "", "minute", 10, 30_000},
	{"sms", "", "message", 25, 1_000},
	{"whatsapp", "", "message", 12, 800},
	{"conversation_intelligence", "", "minute", 5, 20_000},
	{"voice_agent", "", "minute", 3, 60_000},
}

var destinations = []string{"+447911123456", "+14155550123", "+4930123456", "+33612345678", "+918012345678", "+61412345678"}

// workload is M usage events over N accounts, ready to publish, and what the ledger must
// show once it has charged them all.
type workload struct {
	accounts []string
	subjects []string // account of each usage (subject suffix)
	ids      []string // Nats-Msg-Id of each usage: account:usage_id, as a careful platform sets it
	bodies   [][]byte
	bytes    int
	// balance and version are what each account must show at the end (opened at 0, v1).
	balance map[string]decimal.Decimal
	version map[string]uint64
}

func accountID(prefix string, i int) string { return fmt.Sprintf("%s-%06d", prefix, i) }

// newWorkload builds m realistic usage events (every type, optional fields set as the
// platform sets them, 4-decimal amounts) spread uniformly over n accounts.
func newWorkload(prefix string, n, m int, seed uint64) *workload {
	rng := rand.New(rand.NewPCG(seed, 42))
	w := &workload{
		accounts: make([]string, n),
		subjects: make([]string, m), ids: make([]string, m), bodies: make([][]byte, m),
		balance: make(map[string]decimal.Decimal, n), version: make(map[string]uint64, n),
	}
	for i := range w.accounts {
		w.accounts[i] = accountID(prefix, i)
		w.version[w.accounts[i]] = 1
	}
	total := 0
	for _, k := range usageKinds {
		total += k.weight
	}
	units := make(map[string]int64, n) // charged per account in ten-thousandths
	start := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := 0; i < m; i++ {
		acct := w.accounts[rng.IntN(n)]
		pick := rng.IntN(total)
		var k usageKind
		for _, k = range usageKinds {
			if pick < k.weight {
				break
			}
			pick -= k.weight
		}
		amount := rng.Int64N(k.amountMax + 1)
		units[acct] += amount
		w.version[acct]++
		usageID := k.typ + "-" + strconv.Itoa(i)
		at := start.Add(time.Duration(i) * 7 * time.Millisecond).Format(time.RFC3339Nano)
		body := fmt.Appendf(nil, `{"usage_id":%q,"account_id":%q,"type":%q,`, usageID, acct, k.typ)
		if k.reason != "" {
			body = fmt.Appendf(body, `"reason":%q,`, k.reason)
		}
		body = fmt.Appendf(body, `"occurred_at":%q,"amount":%q,"currency":"USD","user_id":"u-%d","quantity":"%d","unit":%q`,
			at, decimal.New(amount, -4).StringFixed(4), rng.IntN(50), 1+rng.IntN(60), k.unit)
		if k.unit == "minute" || k.typ == "sms" {
			body = fmt.Appendf(body, `,"destination":%q`, destinations[rng.IntN(len(destinations))])
		}
		body = append(body, '}')
		w.subjects[i], w.ids[i], w.bodies[i] = acct, acct+":"+usageID, body
		w.bytes += len(body)
	}
	for _, a := range w.accounts {
		w.balance[a] = decimal.New(-units[a], -4)
	}
	return w
}
