package projections

import (
	"context"
	"testing"
	"time"

	"github.com/telephony/creditledger/events"
)

// gatherer is a Projector reduced to what gather uses, with a feed the test fills.
type gatherer struct {
	p    *Projector
	feed chan events.Envelope
	sub  *subscription
}

func newGatherer(opts ProjectorOptions) *gatherer {
	return &gatherer{
		p:    NewProjector(nil, nil, nil, opts),
		feed: make(chan events.Envelope, 100_000),
		sub:  &subscription{ended: make(chan struct{})},
	}
}

func (g *gatherer) send(n int) {
	for range n {
		g.feed <- events.Envelope{}
	}
}

// gather runs one gather, failing the test if it needs the safety timeout to return: every
// case below must end on its own (a full batch, a quiet feed, a hurry or the linger).
func (g *gatherer) gather(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	batch, err := g.p.gather(ctx, g.feed, g.sub, nil)
	if err != nil {
		t.Fatalf("gather: %v (after %d events)", err, len(batch))
	}
	return len(batch)
}

// An hour of lingering would time the test out: the batches below must not linger.
const lingerForever = time.Hour

func TestGatherDoesNotLingerOnALoneEvent(t *testing.T) {
	g := newGatherer(ProjectorOptions{FlushDelay: time.Millisecond, BusyLingerMax: lingerForever})
	g.send(busyBatchMin - 1)
	if n := g.gather(t); n != busyBatchMin-1 {
		t.Fatalf("batch of %d events, want %d", n, busyBatchMin-1)
	}
}

func TestBusyBatchGathersAcrossAQuietGap(t *testing.T) {
	const size = 2 * busyBatchMin
	g := newGatherer(ProjectorOptions{BatchSizeMax: size, FlushDelay: time.Millisecond, BusyLingerMax: lingerForever})
	g.send(busyBatchMin)
	go func() {
		time.Sleep(50 * time.Millisecond) // far longer than FlushDelay: a gap between two rounds
		g.send(busyBatchMin)
	}()
	if n := g.gather(t); n != size {
		t.Fatalf("batch of %d events, want both rounds: %d", n, size)
	}
}

func TestBusyBatchEndsWhenItsLingerIsOver(t *testing.T) {
	g := newGatherer(ProjectorOptions{FlushDelay: time.Millisecond, BusyLingerMax: 20 * time.Millisecond})
	g.send(busyBatchMin)
	if n := g.gather(t); n != busyBatchMin {
		t.Fatalf("batch of %d events, want %d", n, busyBatchMin)
	}
}

func TestWaitForCutsTheLingerShort(t *testing.T) {
	g := newGatherer(ProjectorOptions{FlushDelay: time.Millisecond, BusyLingerMax: lingerForever})
	g.send(busyBatchMin)
	waitCtx, stopWaiting := context.WithCancel(context.Background())
	defer stopWaiting()
	go g.p.WaitFor(waitCtx, 1) // nothing is applied: it waits, and hurries the batch
	if n := g.gather(t); n != busyBatchMin {
		t.Fatalf("batch of %d events, want %d", n, busyBatchMin)
	}
}
