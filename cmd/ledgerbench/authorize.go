package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/telephony/creditledger/api"
	"github.com/telephony/creditledger/ledger"
)

// authorizeResult compares ledger.authorize with a bare NATS request-reply echo on the
// same server, with the same clients, concurrency and request bodies.
type authorizeResult struct {
	Requests int      `json:"requests"`
	Clients  int      `json:"clients"`
	RawP50   float64  `json:"raw_p50_us"`
	RawP99   float64  `json:"raw_p99_us"`
	P50      float64  `json:"p50_us"`
	P99      float64  `json:"p99_us"`
	P50Ratio float64  `json:"p50_ratio"`
	P99Ratio float64  `json:"p99_ratio"`
	Rate     float64  `json:"requests_per_s"`
	RawRate  float64  `json:"raw_requests_per_s"`
	RawCPU   cpuUsage `json:"raw_cpu"`
	CPU      cpuUsage `json:"cpu"`
}

const echoSubject = "ledgerbench.echo"

// authorizeBodies builds requests for random accounts of the workload (and some
// unknown ones), every direction and number type.
func authorizeBodies(accounts []string, n int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	dirs := []string{ledger.DirectionOutbound, ledger.DirectionInbound}
	types := []string{ledger.NumberTypeStandard, ledger.NumberTypeTollFree}
	bodies := make([][]byte, n)
	for i := range bodies {
		id := accounts[rng.IntN(len(accounts))]
		if rng.IntN(100) == 0 {
			id = "unknown-" + id
		}
		b, _ := json.Marshal(ledger.AuthorizeRequest{AccountID: id, Direction: dirs[rng.IntN(2)], NumberType: types[rng.IntN(2)]})
		bodies[i] = b
	}
	return bodies
}

// measureAuthorize runs the echo and then ledger.authorize, each warmed up first.
func measureAuthorize(ctx context.Context, sys *system, accounts []string, requests, clients int, out io.Writer) (authorizeResult, error) {
	res := authorizeResult{Requests: requests, Clients: clients}
	// The echo answers on the ledger's own connection, as the authorize responder does,
	// in a queue group like it.
	echo, err := sys.nc.QueueSubscribe(echoSubject, "ledger", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		return res, err
	}
	defer echo.Unsubscribe()
	if err := sys.nc.Flush(); err != nil {
		return res, err
	}
	bodies := authorizeBodies(accounts, requests, 3)
	warm := bodies[:min(len(bodies), 2000)]
	for _, s := range []struct {
		subject    string
		p50, p99   *float64
		throughput *float64
		cpu        *cpuUsage
	}{
		{echoSubject, &res.RawP50, &res.RawP99, &res.RawRate, &res.RawCPU},
		{api.AuthorizeSubject, &res.P50, &res.P99, &res.Rate, &res.CPU},
	} {
		if _, _, err := requestLatencies(ctx, sys, s.subject, warm, clients, nil); err != nil {
			return res, err
		}
		meter := startCPU()
		lat, el, err := requestLatencies(ctx, sys, s.subject, bodies, clients, out)
		*s.cpu = meter.stop()
		if err != nil {
			return res, err
		}
		*s.p50, *s.p99 = micros(percentile(lat, 0.50)), micros(percentile(lat, 0.99))
		*s.throughput = rate(len(lat), el)
	}
	res.P50Ratio, res.P99Ratio = res.P50/res.RawP50, res.P99/res.RawP99
	return res, nil
}

// requestLatencies sends every body as a request from clients connections at once, each
// waiting for its reply before the next, and returns the round-trip times.
func requestLatencies(ctx context.Context, sys *system, subject string, bodies [][]byte, clients int, out io.Writer) ([]time.Duration, time.Duration, error) {
	conns := make([]*nats.Conn, clients)
	for i := range conns {
		nc, err := connect(sys.srv.ClientURL(), fmt.Sprintf("ledgerbench-caller-%d", i))
		if err != nil {
			return nil, 0, err
		}
		defer nc.Close()
		conns[i] = nc
	}
	lat := make([]time.Duration, len(bodies))
	var next, done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	if out != nil {
		p := startProgress(out, func() string {
			return fmt.Sprintf("  %-22s %6.1fs  %s/%s requests", subject, time.Since(start).Seconds(), thousands(float64(done.Load())), thousands(float64(len(bodies))))
		})
		defer p.stop()
	}
	var wg sync.WaitGroup
	for _, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				t := time.Now()
				m, err := nc.Request(subject, bodies[i], 5*time.Second)
				lat[i] = time.Since(t)
				if err == nil && len(m.Data) == 0 {
					err = fmt.Errorf("empty reply")
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("request %s: %w", subject, err) })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return nil, 0, firstErr
	}
	return lat, elapsed, ctx.Err()
}

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
