package writer

import "context"

// CatchUp reads the events that other writers (other processes on the same store)
// appended to an account since this writer last saw it. Execute reloads only after an
// append lost a race, so a command that decides to do nothing (StartAutoTopUp,
// RecordPaymentAttempt) is otherwise decided on a state that misses those events, and an
// account opened by another writer stays unknown here. A caller that learns of such
// events from the store's subscription calls CatchUp before deciding.
func (w *Writer) CatchUp(ctx context.Context, accountID string) error {
	acc := w.accountFor(accountID, true)
	acc.mu.Lock()
	defer acc.mu.Unlock()
	defer w.forgetIfUnopened(accountID, acc)
	return w.reload(ctx, acc)
}
