// Command ledgerbench measures the ledger against the raw engine it runs on, in one run
// on one embedded JetStream server (file storage), as DESIGN.md section 4 asks:
//
//  1. ingest: usage events/s from the first publish until every account's balance read
//     model is exact, divided by raw JetStream async publishes (with message ids) of the
//     same payloads on the same server;
//  2. rebuild: read-model rebuild events/s from the store, divided by a raw ordered
//     consumer reading the same stream;
//  3. authorize: p50/p99 latency of ledger.authorize under concurrent requests, divided
//     by a raw NATS request-reply echo on the same server;
//  4. memory: bytes per account after writer.Load of 1,000,000 accounts (in a child
//     process, so earlier phases do not inflate its resident set).
//
// It starts ledgerd's components in-process, wired as cmd/ledgerd wires them. See
// BENCHMARKS.md for how to run it and the figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // -pprof
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

type config struct {
	Dir            string
	Keep           bool
	Accounts       int
	Usages         int
	AuthRequests   int
	AuthClients    int
	MemoryAccounts int
	Runs           int
	Phases         string
	PendingMax     int
	ProfileDir     string
	Quick          bool
	MemoryChild    bool
	JSON           bool
	PprofAddr      string
	GCPercent      int
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("ledgerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Dir, "dir", "", "working directory for the embedded server and databases (default: a temporary directory, removed at the end)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the working directory")
	fs.IntVar(&c.Accounts, "accounts", 10_000, "accounts the usage is spread over")
	fs.IntVar(&c.Usages, "usages", 1_000_000, "usage events published per run")
	fs.IntVar(&c.AuthRequests, "auth-requests", 200_000, "authorization requests per side (raw echo, ledger)")
	fs.IntVar(&c.AuthClients, "auth-clients", 4, "concurrent authorization callers, one connection each")
	fs.IntVar(&c.MemoryAccounts, "memory-accounts", 1_000_000, "accounts for the memory phase")
	fs.IntVar(&c.Runs, "runs", 1, "runs of ingest, rebuild and authorize, each on a fresh server; figures are medians")
	fs.StringVar(&c.Phases, "phases", "ingest,floor,rebuild,authorize,memory", "phases to run (rebuild and floor need ingest)")
	fs.IntVar(&c.PendingMax, "publish-pending", 4000, "unacknowledged async publishes the publisher keeps in flight (raw and ledger alike)")
	fs.StringVar(&c.ProfileDir, "profile", "", "write CPU profiles of each phase (ledger side) and a heap profile after the memory load into this directory")
	fs.BoolVar(&c.Quick, "quick", false, "tiny sizes for a smoke run of a few seconds (CI)")
	fs.BoolVar(&c.MemoryChild, "memory-child", false, "internal: run the memory phase in this process and print its result")
	fs.BoolVar(&c.JSON, "json", false, "also print the results as one JSON object")
	fs.StringVar(&c.PprofAddr, "pprof", "", "serve net/http/pprof on this address while running (for example 127.0.0.1:6061)")
	fs.IntVar(&c.GCPercent, "gc-percent", 400, "garbage collector target, as ledgerd's --gc-percent and with the same default; GOGC wins when set")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.Quick {
		c.Accounts, c.Usages, c.AuthRequests, c.MemoryAccounts = 200, 5_000, 2_000, 5_000
	}
	if c.Accounts < 1 || c.Usages < 1 || c.AuthRequests < 1 || c.AuthClients < 1 || c.MemoryAccounts < 1 || c.Runs < 1 {
		return c, fmt.Errorf("sizes must be positive")
	}
	return c, nil
}

func (c config) phase(name string) bool { return slices.Contains(strings.Split(c.Phases, ","), name) }

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	// Run the ledger's components under the collector setting ledgerd uses.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.PprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, "ledgerbench: pprof:", http.ListenAndServe(cfg.PprofAddr, nil)) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if _, err := bench(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ledgerbench:", err)
		os.Exit(1)
	}
}

// runResult is one run of the ingest, rebuild and authorize phases.
type runResult struct {
	Ingest    *ingestResult    `json:"ingest,omitempty"`
	Rebuild   *rebuildResult   `json:"rebuild,omitempty"`
	Authorize *authorizeResult `json:"authorize,omitempty"`
}

// results is everything a ledgerbench invocation measured.
type results struct {
	Machine string        `json:"machine"`
	Runs    []runResult   `json:"runs"`
	Memory  *memoryResult `json:"memory,omitempty"`
}

// bench runs the phases and writes the report to out and the progress lines to progressOut.
func bench(ctx context.Context, cfg config, out, progressOut io.Writer) (*results, error) {
	log := zap.NewNop()
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "ledgerbench-")
		if err != nil {
			return nil, err
		}
		cfg.Dir = dir
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o750); err != nil {
			return nil, err
		}
	}
	if cfg.MemoryChild {
		m, err := measureMemory(ctx, cfg.Dir, cfg.MemoryAccounts, cfg.ProfileDir, log, progressOut)
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(m)
		fmt.Fprintf(out, "%s%s\n", memoryResultPrefix, b)
		return &results{Memory: &m}, nil
	}
	res := &results{Machine: machine()}
	fmt.Fprintf(progressOut, "ledgerbench: %s; %d accounts, %d usages, %d authorize requests x %d clients, %d runs\n",
		res.Machine, cfg.Accounts, cfg.Usages, cfg.AuthRequests, cfg.AuthClients, cfg.Runs)
	if cfg.phase("ingest") || cfg.phase("authorize") {
		w := newWorkload("acct", cfg.Accounts, cfg.Usages, 1)
		for run := 1; run <= cfg.Runs; run++ {
			fmt.Fprintf(progressOut, "run %d of %d\n", run, cfg.Runs)
			r, err := benchRun(ctx, cfg, filepath.Join(cfg.Dir, fmt.Sprintf("run-%d", run)), w, log, progressOut)
			if err != nil {
				return res, fmt.Errorf("run %d: %w", run, err)
			}
			res.Runs = append(res.Runs, r)
		}
	}
	if cfg.phase("memory") {
		var m memoryResult
		var err error
		if cfg.Quick {
			// In-process: the CI smoke run checks the code path, not the resident set.
			m, err = measureMemory(ctx, filepath.Join(cfg.Dir, "memory"), cfg.MemoryAccounts, cfg.ProfileDir, log, progressOut)
		} else {
			m, err = measureMemoryChild(ctx, cfg, progressOut)
		}
		if err != nil {
			return res, fmt.Errorf("memory: %w", err)
		}
		res.Memory = &m
	}
	report(out, cfg, res)
	if cfg.JSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintf(out, "%s\n", b)
	}
	return res, nil
}

// benchRun is one run on a fresh server and fresh databases.
func benchRun(ctx context.Context, cfg config, dir string, w *workload, log *zap.Logger, progressOut io.Writer) (runResult, error) {
	var r runResult
	sys, err := startSystem(ctx, dir, log)
	if err != nil {
		return r, err
	}
	defer func() {
		sys.stop()
		if !cfg.Keep {
			os.RemoveAll(dir)
		}
	}()
	start := time.Now()
	if err := openAccounts(ctx, sys, w.accounts); err != nil {
		return r, err
	}
	head, err := sys.store.Head(ctx)
	if err != nil {
		return r, err
	}
	if err := sys.projector.WaitFor(ctx, head); err != nil {
		return r, err
	}
	fmt.Fprintf(progressOut, "  opened %s accounts in %.1fs\n", thousands(float64(len(w.accounts))), time.Since(start).Seconds())

	if cfg.phase("ingest") {
		raw, rawCPU, err := measureRawPublish(ctx, sys, w, cfg.PendingMax, progressOut)
		if err != nil {
			return r, err
		}
		stopProfile, err := startCPUProfile(cfg.ProfileDir, "ingest")
		if err != nil {
			return r, err
		}
		in, err := measureIngest(ctx, sys, w, cfg.PendingMax, progressOut)
		stopProfile()
		if err != nil {
			return r, fmt.Errorf("ingest: %w", err)
		}
		in.RawRate, in.Ratio, in.RawCPU = raw, in.Rate/raw, rawCPU
		if cfg.phase("floor") {
			stopProfile, err := startCPUProfile(cfg.ProfileDir, "floor")
			if err != nil {
				return r, err
			}
			in.FloorRate, in.FloorCPU, err = measureEngineFloor(ctx, sys, w, cfg.PendingMax, progressOut)
			stopProfile()
			if err != nil {
				return r, fmt.Errorf("engine floor: %w", err)
			}
			in.FloorRatio = in.FloorRate / raw
		}
		r.Ingest = &in
	}
	if cfg.phase("rebuild") && r.Ingest != nil {
		total, err := sys.store.Head(ctx)
		if err != nil {
			return r, err
		}
		rb := rebuildResult{Events: int(total)}
		if rb.RawRate, rb.RawCPU, err = measureRawRead(ctx, sys, total, progressOut); err != nil {
			return r, fmt.Errorf("raw read: %w", err)
		}
		if rb.ReadRate, err = measureReadAll(ctx, sys, total); err != nil {
			return r, fmt.Errorf("read all: %w", err)
		}
		stopProfile, err := startCPUProfile(cfg.ProfileDir, "rebuild")
		if err != nil {
			return r, err
		}
		rb.Rate, rb.CPU, err = measureRebuild(ctx, sys, w, total, progressOut)
		stopProfile()
		if err != nil {
			return r, fmt.Errorf("rebuild: %w", err)
		}
		rb.Ratio = rb.Rate / rb.RawRate
		if rb.MemoryRate, rb.MemoryCPU, err = measureRebuildFromMemory(ctx, sys, w, total); err != nil {
			return r, fmt.Errorf("rebuild from memory: %w", err)
		}
		rb.MemoryRatio = rb.MemoryRate / rb.RawRate
		r.Rebuild = &rb
	}
	if cfg.phase("authorize") {
		stopProfile, err := startCPUProfile(cfg.ProfileDir, "authorize")
		if err != nil {
			return r, err
		}
		a, err := measureAuthorize(ctx, sys, w.accounts, cfg.AuthRequests, cfg.AuthClients, progressOut)
		stopProfile()
		if err != nil {
			return r, fmt.Errorf("authorize: %w", err)
		}
		r.Authorize = &a
	}
	// Last: the Load re-indexes every usage, and the index's compactions go on in the
	// background for a while after it, which must not overlap the authorize phase.
	if r.Rebuild != nil {
		stopProfile, err := startCPUProfile(cfg.ProfileDir, "restart")
		if err != nil {
			return r, err
		}
		r.Rebuild.RestartSeconds, err = measureRestartLoad(ctx, sys, w)
		stopProfile()
		if err != nil {
			return r, fmt.Errorf("restart load: %w", err)
		}
	}
	return r, sys.failed()
}

// startCPUProfile profiles the process (ledger and the embedded server alike) into
// dir/phase.cpu.pprof until the returned func is called; a no-op without dir.
func startCPUProfile(dir, phase string) (func(), error) {
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(dir, phase+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s/%s, %d CPUs (GOMAXPROCS %d) %s, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), cpu, runtime.Version())
}

// median of the values f picks from the runs that have them.
func median(runs []runResult, f func(runResult) (float64, bool)) float64 {
	var vs []float64
	for _, r := range runs {
		if v, ok := f(r); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// report prints the figures table: medians over the runs, with every run's values.
func report(out io.Writer, cfg config, res *results) {
	fmt.Fprintf(out, "\nledgerbench on %s\n", res.Machine)
	fmt.Fprintf(out, "%d accounts, %d usage events per run, %d runs (medians; per run in brackets)\n\n", cfg.Accounts, cfg.Usages, len(res.Runs))
	fmt.Fprintf(out, "%-10s %-34s %-34s %-10s %s\n", "figure", "ledger", "raw engine", "ratio", "target")
	each := func(f func(runResult) (float64, bool), format string) string {
		var parts []string
		for _, r := range res.Runs {
			if v, ok := f(r); ok {
				parts = append(parts, fmt.Sprintf(format, v))
			}
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	line := func(name string, f, raw, ratio func(runResult) (float64, bool), unit, target string, ratioFormat string) {
		fmt.Fprintf(out, "%-10s %-34s %-34s %-10s %s\n", name,
			fmt.Sprintf("%s %s", thousands(median(res.Runs, f)), unit),
			fmt.Sprintf("%s %s", thousands(median(res.Runs, raw)), unit),
			fmt.Sprintf(ratioFormat, median(res.Runs, ratio)), target)
		if len(res.Runs) > 1 {
			fmt.Fprintf(out, "%-10s %-34s %-34s %s\n", "", each(f, "%.0f"), each(raw, "%.0f"), each(ratio, ratioFormat))
		}
	}
	if res.Runs != nil && res.Runs[0].Ingest != nil {
		line("ingest",
			func(r runResult) (float64, bool) { return r.Ingest.Rate, r.Ingest != nil },
			func(r runResult) (float64, bool) { return r.Ingest.RawRate, r.Ingest != nil },
			func(r runResult) (float64, bool) { return r.Ingest.Ratio, r.Ingest != nil },
			"ev/s", ">= 0.45", "%.2f")
		fmt.Fprintf(out, "%-10s command side alone (every usage charged, read models still behind): %s ev/s\n", "",
			thousands(median(res.Runs, func(r runResult) (float64, bool) { return r.Ingest.ChargedRate, r.Ingest != nil })))
		cpuLine(out, res.Runs, func(r runResult) (cpuUsage, cpuUsage, float64, float64, bool) {
			if r.Ingest == nil {
				return cpuUsage{}, cpuUsage{}, 0, 0, false
			}
			return r.Ingest.CPU, r.Ingest.RawCPU, float64(r.Ingest.Events), float64(r.Ingest.Events), true
		})
		if res.Runs[0].Ingest.FloorRate > 0 {
			floor := func(r runResult) bool { return r.Ingest != nil && r.Ingest.FloorRate > 0 }
			line("floor",
				func(r runResult) (float64, bool) { return r.Ingest.FloorRate, floor(r) },
				func(r runResult) (float64, bool) { return r.Ingest.RawRate, floor(r) },
				func(r runResult) (float64, bool) { return r.Ingest.FloorRatio, floor(r) },
				"ev/s", "(ingest's ceiling)", "%.2f")
			fmt.Fprintf(out, "%-10s the design's JetStream work per usage with none of the ledger's code (see floor.go); ingest / floor %.2f\n", "",
				median(res.Runs, func(r runResult) (float64, bool) { return r.Ingest.Rate / r.Ingest.FloorRate, floor(r) }))
			cpuLine(out, res.Runs, func(r runResult) (cpuUsage, cpuUsage, float64, float64, bool) {
				if !floor(r) {
					return cpuUsage{}, cpuUsage{}, 0, 0, false
				}
				return r.Ingest.FloorCPU, r.Ingest.RawCPU, float64(r.Ingest.Events), float64(r.Ingest.Events), true
			})
		}
	}
	if res.Runs != nil && res.Runs[0].Rebuild != nil {
		line("rebuild",
			func(r runResult) (float64, bool) { return r.Rebuild.Rate, r.Rebuild != nil },
			func(r runResult) (float64, bool) { return r.Rebuild.RawRate, r.Rebuild != nil },
			func(r runResult) (float64, bool) { return r.Rebuild.Ratio, r.Rebuild != nil },
			"ev/s", ">= 0.7", "%.2f")
		cpuLine(out, res.Runs, func(r runResult) (cpuUsage, cpuUsage, float64, float64, bool) {
			if r.Rebuild == nil {
				return cpuUsage{}, cpuUsage{}, 0, 0, false
			}
			return r.Rebuild.CPU, r.Rebuild.RawCPU, float64(r.Rebuild.Events), float64(r.Rebuild.Events), true
		})
		fmt.Fprintf(out, "%-10s store ReadAll alone (decode, no writes): %s ev/s\n", "", thousands(median(res.Runs, func(r runResult) (float64, bool) { return r.Rebuild.ReadRate, r.Rebuild != nil })))
		line("from mem",
			func(r runResult) (float64, bool) { return r.Rebuild.MemoryRate, r.Rebuild != nil },
			func(r runResult) (float64, bool) { return r.Rebuild.RawRate, r.Rebuild != nil },
			func(r runResult) (float64, bool) { return r.Rebuild.MemoryRatio, r.Rebuild != nil },
			"ev/s", "(rebuild's ceiling)", "%.2f")
		fmt.Fprintf(out, "%-10s Rebuild from the events already decoded in memory: the read models' writes alone\n", "")
		cpuLine(out, res.Runs, func(r runResult) (cpuUsage, cpuUsage, float64, float64, bool) {
			if r.Rebuild == nil {
				return cpuUsage{}, cpuUsage{}, 0, 0, false
			}
			return r.Rebuild.MemoryCPU, r.Rebuild.RawCPU, float64(r.Rebuild.Events), float64(r.Rebuild.Events), true
		})
		restart := median(res.Runs, func(r runResult) (float64, bool) { return r.Rebuild.RestartSeconds, r.Rebuild != nil })
		events := float64(res.Runs[0].Rebuild.Events)
		fmt.Fprintf(out, "%-10s %.2f s to Load %s events (%s ev/s)\n", "restart", restart, thousands(events), thousands(events/restart))
		fmt.Fprintf(out, "%-10s a new writer's Load over the whole store (accounts, usage filter, re-index since the last start): what ledgerd reads before it takes intake\n", "")
	}
	if res.Runs != nil && res.Runs[0].Authorize != nil {
		a := func(r runResult) bool { return r.Authorize != nil }
		line("auth p50",
			func(r runResult) (float64, bool) { return r.Authorize.P50, a(r) },
			func(r runResult) (float64, bool) { return r.Authorize.RawP50, a(r) },
			func(r runResult) (float64, bool) { return r.Authorize.P50Ratio, a(r) },
			"µs", "<= 2x raw", "%.2fx")
		line("auth p99",
			func(r runResult) (float64, bool) { return r.Authorize.P99, a(r) },
			func(r runResult) (float64, bool) { return r.Authorize.RawP99, a(r) },
			func(r runResult) (float64, bool) { return r.Authorize.P99Ratio, a(r) },
			"µs", "<= 1,000 µs", "%.2fx")
		fmt.Fprintf(out, "%-10s %d clients; %s req/s ledger, %s req/s raw\n", "",
			cfg.AuthClients, thousands(median(res.Runs, func(r runResult) (float64, bool) { return r.Authorize.Rate, a(r) })),
			thousands(median(res.Runs, func(r runResult) (float64, bool) { return r.Authorize.RawRate, a(r) })))
		cpuLine(out, res.Runs, func(r runResult) (cpuUsage, cpuUsage, float64, float64, bool) {
			if r.Authorize == nil {
				return cpuUsage{}, cpuUsage{}, 0, 0, false
			}
			return r.Authorize.CPU, r.Authorize.RawCPU, float64(r.Authorize.Requests), float64(r.Authorize.Requests), true
		})
	}
	if m := res.Memory; m != nil {
		fmt.Fprintf(out, "%-10s %-34s %-34s %-10s %s\n", "memory",
			fmt.Sprintf("%s B/account writer heap", thousands(m.WriterHeapPerAccount)),
			fmt.Sprintf("%s B/account process RSS", thousands(m.RSSPerAccount)), "", "<= 1,024 B")
		fmt.Fprintf(out, "%-10s %s accounts; RSS grew %s B/account during Load; fill %s ev/s, Load %s ev/s\n", "",
			thousands(float64(m.Accounts)), thousands(m.RSSDeltaPerAccount), thousands(m.AppendRate), thousands(m.LoadRate))
	}
}

// cpuLine prints the CPU cost per event of both sides (this process: ledger and server),
// their cost ratio (raw CPU per message / ledger CPU per event: the throughput ratio if
// both were bound by the same cores, which other load on the machine changes least) and
// how busy the rest of the machine was, medians over the runs.
func cpuLine(out io.Writer, runs []runResult, f func(runResult) (ledger, raw cpuUsage, n, rawN float64, ok bool)) {
	pick := func(g func(ledger, raw cpuUsage, n, rawN float64) float64) float64 {
		return median(runs, func(r runResult) (float64, bool) {
			l, raw, n, rawN, ok := f(r)
			if !ok {
				return 0, false
			}
			return g(l, raw, n, rawN), true
		})
	}
	ledgerCost := pick(func(l, _ cpuUsage, n, _ float64) float64 { return l.SelfSeconds / n * 1e6 })
	rawCost := pick(func(_, r cpuUsage, _, rn float64) float64 { return r.SelfSeconds / rn * 1e6 })
	fmt.Fprintf(out, "%-10s CPU: ledger %.1f µs/event on %.2f cores, raw %.1f µs/msg on %.2f cores (cost ratio %.2f); other processes used %.2f and %.2f cores\n", "",
		ledgerCost, pick(func(l, _ cpuUsage, _, _ float64) float64 { return l.SelfCores }),
		rawCost, pick(func(_, r cpuUsage, _, _ float64) float64 { return r.SelfCores }),
		rawCost/ledgerCost,
		pick(func(l, _ cpuUsage, _, _ float64) float64 { return l.OtherCores }),
		pick(func(_, r cpuUsage, _, _ float64) float64 { return r.OtherCores }))
}
