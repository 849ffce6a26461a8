package projections

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/telephony/creditledger/events"
)

// exportRows is the size of the large-account test: a million movements, fewer under -short
// and under the race detector so that the suite stays quick.
func exportRows() int {
	switch {
	case raceEnabled:
		return 20_000
	case testing.Short():
		return 200_000
	}
	return 1_000_000
}

// lineCounter is an io.Writer that keeps only what the test checks: the number of lines, the
// first line and the last one.
type lineCounter struct {
	lines       int
	first, last []byte
	current     []byte
}

func (c *lineCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b != '\n' {
			c.current = append(c.current, b)
			continue
		}
		if c.lines == 0 {
			c.first = append([]byte(nil), c.current...)
		}
		c.last = append(c.last[:0], c.current...)
		c.current = c.current[:0]
		c.lines++
	}
	return len(p), nil
}

// heapSampler records the largest heap in use seen by its samples.
type heapSampler struct{ max uint64 }

func (s *heapSampler) sample() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s.max = max(s.max, m.HeapInuse)
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func TestLargeAccountExport(t *testing.T) {
	n := exportRows()
	db := openTest(t)
	h := newHistory()
	ctx := context.Background()
	start := time.Now()
	mustApply(t, db, h.open("big", "10"))
	evs := make([]events.Envelope, 0, batchSizeMaxDefault)
	for i := 0; i < n; i++ {
		u := usageOf(fmt.Sprintf("u-%d", i), "call", "fup_exceeded", "0.0100", fmt.Sprintf("user-%d", i%7))
		u.Destination, u.Quantity, u.Unit = "+447911123456", "1", "minute"
		evs = append(evs, h.ev("big", u))
		if len(evs) == cap(evs) {
			mustApply(t, db, evs...)
			evs = evs[:0]
		}
	}
	mustApply(t, db, evs...)
	t.Logf("applied %d movements in %s", n, time.Since(start))

	// Stream every row through EachMovement, checking order and sampling the heap.
	start = time.Now()
	base := heapInUse()
	var heap heapSampler
	var count int
	var prev uint64 = 1 // the opening event is version 1 and no movement
	err := db.EachMovement(ctx, "big", MovementFilter{}, func(m Movement) error {
		if m.Version != prev+1 {
			return fmt.Errorf("movement version %d after %d", m.Version, prev)
		}
		prev = m.Version
		if count++; count%(n/20) == 0 {
			heap.sample()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Fatalf("streamed %d movements, want %d", count, n)
	}
	t.Logf("streamed %d movements in %s; heap in use %d KiB before, at most %d KiB during", n, time.Since(start), base>>10, heap.max>>10)
	// A stream that kept rows would hold n rows of a few hundred bytes (hundreds of MiB for
	// a million); chunks of exportChunkRows keep it to a few MiB over the baseline.
	if grown := int64(heap.max) - int64(base); grown > 16<<20 {
		t.Errorf("heap grew by %d KiB while streaming %d rows", grown>>10, n)
	}

	// The CSV export of the same rows: header plus one line each, ending at the balance.
	start = time.Now()
	var out lineCounter
	if err := db.WriteMovementsCSV(ctx, &out, "big", MovementFilter{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote the CSV in %s", time.Since(start))
	if out.lines != n+1 || !bytes.Equal(out.first, []byte("occurred_at,event_id,type,cause,user_id,reference,description,amount,balance_after,currency")) {
		t.Errorf("csv: %d lines, first %q", out.lines, out.first)
	}
	wantEnd := fmt.Sprintf(",%s,USD", mustAccount(t, db, "big").Balance.String())
	if !bytes.HasSuffix(out.last, []byte(wantEnd)) || !bytes.Contains(out.last, []byte(fmt.Sprintf(",u-%d,", n-1))) {
		t.Errorf("csv last line %q, want usage u-%d ending in %q", out.last, n-1, wantEnd)
	}
}
