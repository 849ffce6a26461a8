package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestLedgerbenchQuick runs every phase with tiny sizes, so the tool cannot rot: the
// wiring still starts, every usage is charged and projected exactly (the ingest phase
// fails otherwise), the engine floor relays every usage, both rebuilds match the sums,
// authorize answers, and the report prints every figure.
func TestLedgerbenchQuick(t *testing.T) {
	cfg, err := parseConfig([]string{"-quick", "-dir", t.TempDir(), "-json"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	res, err := bench(ctx, cfg, &out, &progress)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("\n%s", out.String())
	if len(res.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(res.Runs))
	}
	r := res.Runs[0]
	switch {
	case r.Ingest == nil || r.Ingest.Events != cfg.Usages || r.Ingest.Rate <= 0 || r.Ingest.RawRate <= 0 || r.Ingest.FloorRate <= 0:
		t.Errorf("ingest: %+v", r.Ingest)
	case r.Rebuild == nil || r.Rebuild.Events != cfg.Accounts+cfg.Usages || r.Rebuild.Rate <= 0 || r.Rebuild.RawRate <= 0 || r.Rebuild.MemoryRate <= 0 || r.Rebuild.RestartSeconds <= 0:
		t.Errorf("rebuild: %+v", r.Rebuild)
	case r.Authorize == nil || r.Authorize.P50 <= 0 || r.Authorize.RawP99 <= 0:
		t.Errorf("authorize: %+v", r.Authorize)
	case res.Memory == nil || res.Memory.Accounts != cfg.MemoryAccounts || res.Memory.WriterHeapPerAccount <= 0:
		t.Errorf("memory: %+v", res.Memory)
	}
	for _, want := range []string{"ingest", "floor", "rebuild", "from mem", "restart", "auth p50", "auth p99", "memory", "B/account"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestWorkloadSums(t *testing.T) {
	w := newWorkload("t", 3, 100, 9)
	var n uint64
	for _, a := range w.accounts {
		n += w.version[a] - 1
	}
	if n != 100 || len(w.bodies) != 100 {
		t.Fatalf("versions add up to %d usages, bodies %d", n, len(w.bodies))
	}
	seen := map[string]bool{}
	for _, id := range w.ids {
		if seen[id] {
			t.Fatalf("duplicate message id %s", id)
		}
		seen[id] = true
	}
}
