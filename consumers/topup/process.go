package topup

import (
	"context"
	"errors"
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/telephony/creditledger/ledger"
)

// errAbandoned marks a payment attempt cut off by shutdown: it has no outcome to record.
var errAbandoned = errors.New("payment attempt abandoned")

func (m *Manager) runWorker(ctx context.Context) {
	for {
		id, ok := m.next(ctx)
		if !ok {
			return
		}
		m.process(ctx, id)
		m.done(id)
	}
}

// process is one pass over an account: start an auto top-up if one is due, then pay the
// pending top-up if its attempt is due, or set a wake-up for when it will be.
func (m *Manager) process(ctx context.Context, id string) {
	acc, err := m.current(ctx, id)
	if err == nil && acc != nil {
		acc, err = m.startAutoTopUp(ctx, acc)
	}
	if err == nil && acc != nil {
		err = m.pay(ctx, acc)
	}
	if err != nil && ctx.Err() == nil {
		m.log.Error("top-up work failed; trying again", zap.String("account_id", id), zap.Error(err),
			zap.Duration("delay", m.opts.ErrorRetryDelay))
		m.wakeAt(id, m.opts.Now().Add(m.opts.ErrorRetryDelay))
	}
}

// current returns the writer's state of the account, first catching the writer up when
// the store holds events it has not seen (appended by another process). nil: no account.
func (m *Manager) current(ctx context.Context, id string) (*ledger.Account, error) {
	acc, ok := m.writer.Account(id)
	if seen := m.seenVersion(id); (!ok && seen > 0) || (ok && acc.Version < seen) {
		if err := m.writer.CatchUp(ctx, id); err != nil {
			return nil, err
		}
		acc, ok = m.writer.Account(id)
	}
	if !ok {
		return nil, nil
	}
	return acc, nil
}

// startAutoTopUp starts an auto top-up when one is due and returns the state after it.
// Two managers may both find it due: the stream's expected version lets only one
// TopUpRequested in; the other writer reloads, decides again and finds one pending.
func (m *Manager) startAutoTopUp(ctx context.Context, acc *ledger.Account) (*ledger.Account, error) {
	now := m.opts.Now()
	if !ledger.AutoTopUpDue(acc, now, m.opts.AutoTopUpDailyMax) {
		if at, capped := dailyCapEnds(acc, now, m.opts.AutoTopUpDailyMax); capped {
			m.wakeAt(acc.ID, at)
		}
		return acc, nil
	}
	evs, err := m.writer.Execute(ctx, acc.ID, ledger.StartAutoTopUp{DailyMax: m.opts.AutoTopUpDailyMax})
	if err != nil {
		return nil, err
	}
	if len(evs) > 0 {
		m.Stats.AutoTopUpsStarted.Add(1)
		m.log.Info("auto top-up started", zap.String("account_id", acc.ID), zap.Uint64("version", evs[0].Version))
	}
	acc, _ = m.writer.Account(acc.ID)
	return acc, nil
}

// dailyCapEnds tells when an auto top-up that is held back only by the daily cap may
// start: when the oldest counted one leaves the 24 h window. No event marks that moment,
// so the manager sets a wake-up for it.
func dailyCapEnds(acc *ledger.Account, now time.Time, dailyMax int) (time.Time, bool) {
	if ledger.AutoTopUpDue(acc, now, dailyMax) || !ledger.AutoTopUpDue(acc, now, math.MaxInt) {
		return time.Time{}, false // due now, or held back by something else, or not wanted
	}
	// The count of starts in the 24 h before t only falls as t grows: search the first
	// second at which it is under the cap.
	lo, hi := now, now.Add(24*time.Hour)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if acc.AutoTopUpsSince(mid.Add(-24*time.Hour)) < dailyMax {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, true
}

// pay makes the due payment attempt of the account's pending top-up, if this manager
// pays it, and records the outcome.
func (m *Manager) pay(ctx context.Context, acc *ledger.Account) error {
	p := acc.Pending
	if p == nil {
		return nil
	}
	now := m.opts.Now()
	mine, err := m.mayPay(ctx, acc.ID, p)
	if err != nil {
		return err
	}
	if !mine {
		m.watchOrphan(acc.ID, p, now)
		return nil
	}
	if now.Before(p.NextAttemptAt) {
		m.wakeAt(acc.ID, p.NextAttemptAt)
		return nil
	}
	payment := Payment{TopUpID: p.ID, AccountID: acc.ID, Amount: p.Amount, Currency: acc.Currency, Kind: p.Kind, Attempt: p.Attempts + 1}
	res, err := m.charge(ctx, payment)
	if err != nil {
		return nil // abandoned by shutdown; logged in charge
	}
	if err := m.record(ctx, payment, res); err != nil {
		return err
	}
	m.enqueue(acc.ID) // the next step: a retry's wake-up, or the next auto top-up
	return nil
}

// mayPay reports whether this manager pays the pending top-up, checking an unverified
// claim against the store first.
func (m *Manager) mayPay(ctx context.Context, id string, p *ledger.PendingTopUp) (bool, error) {
	c, ok := m.claimOf(id, p.ID)
	if !ok || c.verified {
		return ok, nil
	}
	evs, err := m.store.ReadStream(ctx, id, c.version-1)
	if err != nil {
		return false, err
	}
	if len(evs) > 0 && evs[0].Version == c.version && evs[0].RecordedAt.Equal(c.recordedAt) {
		m.own(id, p.ID, claim{verified: true})
		return true, nil
	}
	m.log.Info("another process requested the same top-up at the same time and pays it",
		zap.String("account_id", id), zap.String("top_up_id", p.ID))
	m.disown(id, p.ID)
	return false, nil
}

// watchOrphan takes over a top-up that another process requested but nobody has paid
// for OrphanAfter past its due attempt, and otherwise looks again at that time.
func (m *Manager) watchOrphan(id string, p *ledger.PendingTopUp, now time.Time) {
	orphanAt := p.NextAttemptAt.Add(m.opts.OrphanAfter)
	if now.Before(orphanAt) {
		m.wakeAt(id, orphanAt)
		return
	}
	m.log.Warn("taking over an orphaned top-up", zap.String("account_id", id), zap.String("top_up_id", p.ID),
		zap.Time("next_attempt_at", p.NextAttemptAt))
	m.own(id, p.ID, claim{verified: true})
	m.enqueue(id)
}

// charge calls the gateway. A call cut off by shutdown returns errAbandoned; any other
// failure to get an answer is the attempt failing as gateway_unavailable.
func (m *Manager) charge(ctx context.Context, p Payment) (Result, error) {
	m.Stats.Charges.Add(1)
	m.Stats.InFlight.Add(1)
	res, err := m.gateway.Charge(ctx, p)
	m.Stats.InFlight.Add(-1)
	if ctx.Err() != nil {
		m.Stats.Abandoned.Add(1)
		m.log.Info("payment attempt abandoned at shutdown; it is attempted again with the same top_up_id after restart",
			zap.String("account_id", p.AccountID), zap.String("top_up_id", p.TopUpID), zap.Int("attempt", p.Attempt))
		return Result{}, errAbandoned
	}
	if err != nil {
		m.log.Warn("payment gateway failed", zap.String("top_up_id", p.TopUpID), zap.Error(err))
		return Result{Reason: ReasonGatewayUnavailable}, nil
	}
	if !res.Succeeded && res.Reason == "" {
		res.Reason = ReasonPaymentDeclined
	}
	return res, nil
}

// record appends the outcome of the attempt. Deciding it again after a lost race, or
// recording an attempt that is already recorded, appends nothing (see ledger.Decide).
func (m *Manager) record(ctx context.Context, p Payment, res Result) error {
	evs, err := m.writer.Execute(ctx, p.AccountID, ledger.RecordPaymentAttempt{
		TopUpID: p.TopUpID, Attempt: p.Attempt, Succeeded: res.Succeeded, PaymentID: res.PaymentID,
		Reason: res.Reason, MaxAttempts: m.opts.MaxAttempts, RetryDelayBase: m.opts.RetryDelayBase,
	})
	if err != nil {
		// The gateway's answer is lost with this error; the attempt is made again with
		// the same top_up_id, and the gateway answers with the same payment.
		return err
	}
	outcome := "already recorded"
	if len(evs) > 0 {
		outcome = evs[0].Type()
	}
	m.log.Info("payment attempt recorded", zap.String("account_id", p.AccountID), zap.String("top_up_id", p.TopUpID),
		zap.Int("attempt", p.Attempt), zap.Bool("succeeded", res.Succeeded), zap.String("reason", res.Reason),
		zap.String("outcome", outcome))
	return nil
}
