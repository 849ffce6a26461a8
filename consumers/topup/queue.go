package topup

import (
	"context"
	"time"
)

// work is the manager's bookkeeping of one account. An account is either idle, queued
// (waiting for a worker) or running (one worker has it): that is what keeps one payment
// in flight per account. The entry is dropped when there is nothing left to remember.
type work struct {
	queued, running bool
	// again asks for another pass after the running one: something happened meanwhile.
	again bool
	// owned are the pending top-ups of the account that this manager pays, by id.
	owned map[string]claim
	// seenVersion is the highest account version seen in the store; when the writer's
	// state is behind it, the writer catches up before deciding.
	seenVersion uint64
	// timer queues the account again at wakeAt (a due attempt, the end of a pause).
	timer    *time.Timer
	timerSeq uint64
	wakeAt   time.Time
}

func (m *Manager) workLocked(id string) *work {
	w := m.accounts[id]
	if w == nil {
		w = &work{}
		m.accounts[id] = w
	}
	return w
}

func (m *Manager) forgetIfIdleLocked(id string) {
	w := m.accounts[id]
	if w != nil && !w.queued && !w.running && w.timer == nil && len(w.owned) == 0 {
		delete(m.accounts, id)
	}
}

// claim is this manager's title to pay a top-up.
type claim struct {
	// verified: the title is sure (adopted at start-up, taken over as an orphan, or
	// checked against the store). Otherwise it rests on this process's writer having
	// appended the TopUpRequested at version with recordedAt, which verifyClaim checks.
	verified   bool
	version    uint64
	recordedAt time.Time
}

func (m *Manager) ownLocked(id, topUpID string, c claim) {
	w := m.workLocked(id)
	if prior, ok := w.owned[topUpID]; ok {
		if !prior.verified {
			w.owned[topUpID] = c
		}
		return
	}
	if w.owned == nil {
		w.owned = make(map[string]claim, 1)
	}
	w.owned[topUpID] = c
	m.Stats.Paying.Add(1)
}

func (m *Manager) disownLocked(id, topUpID string) {
	w := m.accounts[id]
	if w == nil {
		return
	}
	if _, ok := w.owned[topUpID]; ok {
		delete(w.owned, topUpID)
		m.Stats.Paying.Add(-1)
	}
}

// claimOf returns this manager's claim to pay the top-up, if it has one.
func (m *Manager) claimOf(id, topUpID string) (claim, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.accounts[id]
	if w == nil {
		return claim{}, false
	}
	c, ok := w.owned[topUpID]
	return c, ok
}

// own records a claim to pay the top-up.
func (m *Manager) own(id, topUpID string, c claim) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ownLocked(id, topUpID, c)
}

// disown drops the claim to pay the top-up.
func (m *Manager) disown(id, topUpID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.disownLocked(id, topUpID)
}

// seenVersion is the highest version of the account seen in the store.
func (m *Manager) seenVersion(id string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.accounts[id]; w != nil {
		return w.seenVersion
	}
	return 0
}

// enqueue asks for a pass over the account.
func (m *Manager) enqueue(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enqueueLocked(id)
}

func (m *Manager) enqueueLocked(id string) {
	w := m.workLocked(id)
	switch {
	case w.running:
		w.again = true
	case !w.queued:
		w.queued = true
		m.queue = append(m.queue, id)
		m.signal()
	}
}

// signal wakes one idle worker, if any is waiting.
func (m *Manager) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// next hands a worker the next queued account, marking it running; false once ctx ends.
func (m *Manager) next(ctx context.Context) (string, bool) {
	for ctx.Err() == nil {
		m.mu.Lock()
		if len(m.queue) > 0 {
			id := m.queue[0]
			m.queue[0] = ""
			m.queue = m.queue[1:]
			w := m.accounts[id]
			w.queued, w.running = false, true
			if len(m.queue) > 0 {
				m.signal() // one signal may stand for several queued accounts
			}
			m.mu.Unlock()
			return id, true
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-m.wake:
		}
	}
	return "", false
}

// done ends a worker's pass over the account, queueing it again if asked meanwhile.
func (m *Manager) done(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.accounts[id]
	w.running = false
	if w.again {
		w.again = false
		m.enqueueLocked(id)
		return
	}
	m.forgetIfIdleLocked(id)
}

// wakeAt queues the account again at t (keeping an earlier wake-up already set).
func (m *Manager) wakeAt(id string, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	w := m.workLocked(id)
	if w.timer != nil {
		if !w.wakeAt.After(t) {
			return
		}
		w.timer.Stop()
	}
	// A sequence number tells a stopped timer whose function already started from the
	// current one, so the stale one cannot clear the current one.
	m.timerSeq++
	seq := m.timerSeq
	w.timerSeq, w.wakeAt = seq, t
	w.timer = time.AfterFunc(t.Sub(m.opts.Now()), func() { m.timerFired(id, seq) })
}

func (m *Manager) timerFired(id string, seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.accounts[id]
	if m.stopped || w == nil || w.timerSeq != seq {
		return
	}
	w.timer, w.wakeAt = nil, time.Time{}
	m.enqueueLocked(id)
}

// stopTimers ends every pending wake-up when Run ends.
func (m *Manager) stopTimers() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	for _, w := range m.accounts {
		if w.timer != nil {
			w.timer.Stop()
		}
	}
}
