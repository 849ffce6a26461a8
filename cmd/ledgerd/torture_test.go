package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/consumers/alerts"
	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/jetstream"
	domain "github.com/telephony/creditledger/ledger"
)

// tortureKillPhaseDefault is how long ledgerd is killed again and again in CI; the whole
// test takes about 15-25 s more (start, settling, audit). LEDGER_TORTURE_DURATION runs it
// longer by hand, e.g. LEDGER_TORTURE_DURATION=10m.
const tortureKillPhaseDefault = 45 * time.Second

// Accounts of the torture run: the first tortureAutoAccounts have auto top-up on.
const (
	tortureAccounts     = 10
	tortureAutoAccounts = 5
)

// TestTorture is the crash torture of issue 7. A mixed workload runs against a ledgerd
// child process while the test SIGKILLs it again and again, at moments picked to hurt:
// while usage waits in the USAGE stream (ingest), while the read models lag behind the
// store (a read-model batch), and while the payment gateway holds a top-up payment it
// has already charged; plus kills at random moments. ledgerd is restarted on the same
// data dir each time. The workload: the platform publishing usage over NATS (with
// redeliveries, conflicting duplicates and garbage), usage batches over HTTP, credits and
// debits, one-time top-ups, auto top-ups (a payment gateway that declines some, fails
// some first attempts, and is idempotent by Idempotency-Key like a real one), saving the
// auto top-up settings again.
//
// At the end: `ledgerctl verify` passes; every account's stream, folded, gives the
// balance the workload and the gateway's charges add up to, and the read model shows it;
// every acknowledged usage is charged exactly once; every top-up is credited once if and
// only if the gateway charged it; no account ever had two top-ups pending; the ALERTS
// stream holds exactly the alerts the streams call for, once each, and no subscriber
// saw one twice; every bad message is a rejection.
func TestTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("torture test: many SIGKILLs of a child ledgerd")
	}
	killPhase := tortureKillPhaseDefault
	if v := os.Getenv("LEDGER_TORTURE_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("LEDGER_TORTURE_DURATION: %v", err)
		}
		killPhase = d
	}
	started := time.Now()
	ctlBin := buildLedgerctl(t)
	gw := newTortureGateway()
	gwSrv := httptest.NewServer(gw)
	defer gwSrv.Close()
	defer gw.releaseAll()

	cfg := testConfig(t, t.TempDir())
	args := []string{"--payment-gateway", "webhook", "--payment-webhook-url", gwSrv.URL + "/pay",
		"--top-up-retry-base", "100ms", "--top-up-max-attempts", "3", "--auto-top-up-daily-max", "100000"}
	tr := &torture{t: t, cfg: cfg, args: args, base: "http://" + cfg.HTTPAddr, gw: gw, model: newTortureModel()}
	tr.proc = startProcess(t, cfg, args...)
	tr.setUp()

	sub := tr.subscribeAlerts()
	defer sub.close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, gen := range []func(*rand.Rand, <-chan struct{}){tr.natsUsage, tr.natsUsage, tr.httpUsage, tr.adjustments, tr.oneTimeTopUps, tr.autoTopUpSettings} {
		rng := rand.New(rand.NewPCG(uint64(i), 42))
		wg.Go(func() { gen(rng, stop) })
	}
	tr.killRepeatedly(killPhase)
	close(stop)
	wg.Wait()
	tr.settle()
	sub.close()

	tr.runVerify(ctlBin)
	audit := tr.auditStreams()
	alertsChecked := tr.auditAlerts(audit, sub)
	tr.auditRejections()

	m := tr.model
	t.Logf("kills survived: %d (%s); restarts took %s on average",
		tr.killTotal(), tr.killSummary(), (tr.restartTime / time.Duration(max(1, tr.killTotal()))).Round(time.Millisecond))
	t.Logf("events checked: %d ledger events in %d account streams (%d usages charged once, %d top-ups credited, %d adjustments), %d alerts, %d rejections",
		audit.events, tortureAccounts, audit.usages, audit.topUpsSucceeded, audit.adjustments, alertsChecked, len(m.garbage)+len(m.conflicts))
	t.Logf("payments: %d gateway calls, %d top-ups charged once each, %d declined, %d calls repeated an already charged or declined top-up (%d of them after ledgerd was killed holding the call)",
		gw.calls.Load(), gw.chargedCount(), gw.declinedCount(), gw.replays.Load(), tr.kills["payment"])
	t.Logf("workload: %d NATS usage publishes (%d retried), %d HTTP usage batches, %d one-time top-ups accepted, %d settings saved; run took %s",
		m.natsPublishes.Load(), m.natsRetries.Load(), m.httpBatches.Load(), m.topUpsAccepted.Load(), m.settingsSaved.Load(), time.Since(started).Round(time.Second))
}

// torture is the state of one torture run.
type torture struct {
	t     *testing.T
	cfg   config
	args  []string
	base  string
	gw    *tortureGateway
	model *tortureModel

	proc        *process
	kills       map[string]int
	killTimes   []time.Time
	restartTime time.Duration
}

func account(i int) string { return fmt.Sprintf("acct-%02d", i) }

// setUp opens the accounts, gives each a welcome credit and turns auto top-up on for the
// first ones.
func (tr *torture) setUp() {
	for i := range tortureAccounts {
		tr.mustHTTP("PUT", "/v1/accounts/"+account(i), `{"currency":"USD","low_balance_threshold":"25"}`, http.StatusCreated)
		tr.adjust(account(i), "welcome-"+account(i), decimal.NewFromInt(100))
		if i < tortureAutoAccounts {
			tr.mustHTTP("PUT", "/v1/accounts/"+account(i)+"/auto-top-up", `{"enabled":true,"threshold":"20","amount":"150"}`, http.StatusOK)
		}
	}
}

func (tr *torture) mustHTTP(method, path, body string, want int) {
	tr.t.Helper()
	if r := doHTTP(tr.t, method, tr.base+path, body, ""); r.Status != want {
		tr.t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
	}
}

// tortureModel is what the workload knows it has done: only what ledgerd acknowledged.
type tortureModel struct {
	mu sync.Mutex
	// usages holds every acknowledged usage by account and usage id.
	usages map[string]map[string]decimal.Decimal
	// conflicts holds, by account and usage id, the amount of a second, different
	// version of an acknowledged usage: exactly one of the two must be charged.
	conflictAmounts map[string]map[string]decimal.Decimal
	adjustments     map[string]map[string]decimal.Decimal
	topUps          map[string]map[string]decimal.Decimal // one-time top-ups answered 202/200
	garbage         map[string]string                     // payload -> expected rejection reason
	conflicts       map[string]string                     // second version's payload -> first's

	natsPublishes, natsRetries, httpBatches, topUpsAccepted, settingsSaved atomic.Int64
}

func newTortureModel() *tortureModel {
	m := &tortureModel{usages: map[string]map[string]decimal.Decimal{}, conflictAmounts: map[string]map[string]decimal.Decimal{},
		adjustments: map[string]map[string]decimal.Decimal{}, topUps: map[string]map[string]decimal.Decimal{},
		garbage: map[string]string{}, conflicts: map[string]string{}}
	return m
}

func put2(m map[string]map[string]decimal.Decimal, a, id string, v decimal.Decimal) {
	if m[a] == nil {
		m[a] = map[string]decimal.Decimal{}
	}
	m[a][id] = v
}

func (m *tortureModel) record(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
}

var tortureUsageKinds = []struct{ typ, reason string }{
	{"call", "fup_exceeded"}, {"call", "international"}, {"call", "premium"}, {"forwarded_call", ""},
	{"sms", ""}, {"whatsapp", ""}, {"conversation_intelligence", ""}, {"voice_agent", ""},
}

func tortureUsage(rng *rand.Rand, accountID, usageID string, amount decimal.Decimal) string {
	k := tortureUsageKinds[rng.IntN(len(tortureUsageKinds))]
	reason := ""
	if k.reason != "" {
		reason = fmt.Sprintf(`"reason":%q,`, k.reason)
	}
	return fmt.Sprintf(`{"usage_id":%q,"account_id":%q,"type":%q,%s"occurred_at":"2026-11-24T10:15:00Z","amount":%q,"currency":"USD","user_id":"u-%d"}`,
		usageID, accountID, k.typ, reason, amount.StringFixed(4), rng.IntN(5))
}

// usageIDs are unique across the generators.
var usageSeq atomic.Int64

// natsUsage is the telephony platform: it publishes usage over JetStream, each until it
// is acknowledged, sometimes twice, sometimes a second version with other content, and
// now and then garbage.
func (tr *torture) natsUsage(rng *rand.Rand, stop <-chan struct{}) {
	nc, js := tr.connect()
	defer nc.Close()
	for !stopped(stop) {
		a := account(rng.IntN(tortureAccounts))
		n := usageSeq.Add(1)
		switch p := rng.IntN(100); {
		case p < 2:
			to, payload, reason := tortureGarbage(rng, a, n)
			tr.publish(js, to, payload)
			tr.model.record(func() { tr.model.garbage[payload] = reason })
		default:
			id := fmt.Sprintf("n-%d", n)
			amount := decimal.New(rng.Int64N(30000), -4)
			body := tortureUsage(rng, a, id, amount)
			tr.publish(js, a, body)
			tr.model.record(func() { put2(tr.model.usages, a, id, amount) })
			switch q := rng.IntN(100); {
			case q < 5: // a platform that was not sure it got through
				tr.publish(js, a, body)
			case q < 6: // a buggy platform: same id, other content
				other := amount.Add(decimal.New(1, -2))
				body2 := tortureUsage(rng, a, id, other)
				tr.publish(js, a, body2)
				tr.model.record(func() {
					put2(tr.model.conflictAmounts, a, id, other)
					tr.model.conflicts[body2] = body
				})
			}
		}
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
	}
}

// tortureGarbage is a bad usage message, the account of its subject and the rejection
// reason it must get; each one is unique so that its rejection can be found.
func tortureGarbage(rng *rand.Rand, a string, n int64) (subjectAccount, payload, reason string) {
	switch rng.IntN(5) {
	case 0:
		return a, fmt.Sprintf("not json %d", n), "malformed_json"
	case 1:
		return a, fmt.Sprintf(`{"usage_id":"g-%d","account_id":%q,"type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"-1","currency":"USD"}`, n, a), "invalid_amount"
	case 2:
		return a, fmt.Sprintf(`{"usage_id":"g-%d","account_id":%q,"type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0.00001","currency":"USD"}`, n, a), "invalid_amount"
	case 3:
		return a, fmt.Sprintf(`{"usage_id":"g-%d","account_id":"someone-else","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"1","currency":"USD"}`, n), "subject_mismatch"
	default:
		return "ghost", fmt.Sprintf(`{"usage_id":"g-%d","account_id":"ghost","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"1","currency":"USD"}`, n), "account_not_found"
	}
}

func (tr *torture) connect() (*nats.Conn, natsjs.JetStream) {
	nc, err := nats.Connect("nats://"+tr.cfg.NATSListen, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		tr.t.Fatal(err)
	}
	js, err := natsjs.New(nc)
	if err != nil {
		tr.t.Fatal(err)
	}
	return nc, js
}

// tortureOpDeadline bounds how long one operation may keep failing: ledgerd restarts in
// a second or two, so this only ends a run that is stuck.
const tortureOpDeadline = time.Minute

func (tr *torture) publish(js natsjs.JetStream, a, body string) {
	deadline := time.Now().Add(tortureOpDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.Publish(ctx, ingest.UsageSubjectPrefix+a, []byte(body))
		cancel()
		tr.model.natsPublishes.Add(1)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tr.t.Errorf("a usage publish did not get through within %s: %v", tortureOpDeadline, err)
			return
		}
		tr.model.natsRetries.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
}

// do sends one request until ledgerd answers it with a status other than 503, riding out
// the kills; it returns the answer.
func (tr *torture) do(method, path, body string) response {
	deadline := time.Now().Add(tortureOpDeadline)
	for {
		req, _ := http.NewRequest(method, tr.base+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode != http.StatusServiceUnavailable {
				return response{Status: resp.StatusCode, Body: b}
			}
		}
		if time.Now().After(deadline) {
			tr.t.Errorf("%s %s did not get through within %s: %v", method, path, tortureOpDeadline, err)
			return response{}
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// httpUsage posts usage batches to POST /v1/usage, resending a batch whose answer was
// lost (the ids make the resend harmless).
func (tr *torture) httpUsage(rng *rand.Rand, stop <-chan struct{}) {
	for !stopped(stop) {
		var bodies []string
		type item struct {
			a, id string
			v     decimal.Decimal
		}
		var items []item
		for range 1 + rng.IntN(20) {
			a := account(rng.IntN(tortureAccounts))
			id := fmt.Sprintf("h-%d", usageSeq.Add(1))
			v := decimal.New(rng.Int64N(30000), -4)
			bodies = append(bodies, tortureUsage(rng, a, id, v))
			items = append(items, item{a, id, v})
		}
		r := tr.do("POST", "/v1/usage", "["+strings.Join(bodies, ",")+"]")
		if r.Status != http.StatusAccepted {
			tr.t.Errorf("POST /v1/usage: %d %s", r.Status, r.Body)
			return
		}
		tr.model.httpBatches.Add(1)
		tr.model.record(func() {
			for _, it := range items {
				put2(tr.model.usages, it.a, it.id, it.v)
			}
		})
		time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
	}
}

var adjustmentSeq atomic.Int64

func (tr *torture) adjust(a, id string, amount decimal.Decimal) {
	r := tr.do("POST", "/v1/accounts/"+a+"/adjustments", fmt.Sprintf(`{"adjustment_id":%q,"amount":%q,"reason":"torture"}`, id, amount.String()))
	if r.Status != http.StatusCreated && r.Status != http.StatusOK {
		tr.t.Errorf("adjustment %s: %d %s", id, r.Status, r.Body)
		return
	}
	tr.model.record(func() { put2(tr.model.adjustments, a, id, amount) })
}

// adjustments are an operator's credits and debits.
func (tr *torture) adjustments(rng *rand.Rand, stop <-chan struct{}) {
	for !stopped(stop) {
		amount := decimal.New(rng.Int64N(250000)-50000, -4)
		if amount.IsZero() {
			continue
		}
		tr.adjust(account(rng.IntN(tortureAccounts)), fmt.Sprintf("adj-%d", adjustmentSeq.Add(1)), amount)
		time.Sleep(time.Duration(50+rng.IntN(100)) * time.Millisecond)
	}
}

// oneTimeTopUps are a dashboard's top-ups; 409 top_up_pending (another is being paid)
// is a fine answer too.
func (tr *torture) oneTimeTopUps(rng *rand.Rand, stop <-chan struct{}) {
	for n := 0; !stopped(stop); n++ {
		a := account(rng.IntN(tortureAccounts))
		id := fmt.Sprintf("tu-%d", n)
		amount := decimal.NewFromInt(int64(10 + rng.IntN(50)))
		r := tr.do("POST", "/v1/accounts/"+a+"/top-ups", fmt.Sprintf(`{"top_up_id":%q,"amount":%q}`, id, amount.String()))
		switch {
		case r.Status == http.StatusAccepted || r.Status == http.StatusOK:
			tr.model.topUpsAccepted.Add(1)
			tr.model.record(func() { put2(tr.model.topUps, a, id, amount) })
		case r.Status == http.StatusConflict && strings.Contains(string(r.Body), "top_up_pending"):
		default:
			tr.t.Errorf("top-up %s: %d %s", id, r.Status, r.Body)
			return
		}
		time.Sleep(time.Duration(80+rng.IntN(120)) * time.Millisecond)
	}
}

// autoTopUpSettings saves the auto top-up settings of an account again now and then,
// which lifts a suspension after a declined auto top-up.
func (tr *torture) autoTopUpSettings(rng *rand.Rand, stop <-chan struct{}) {
	for !stopped(stop) {
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		a := account(rng.IntN(tortureAutoAccounts))
		if r := tr.do("PUT", "/v1/accounts/"+a+"/auto-top-up", `{"enabled":true,"threshold":"20","amount":"150"}`); r.Status != http.StatusOK {
			tr.t.Errorf("auto top-up settings of %s: %d %s", a, r.Status, r.Body)
			return
		}
		tr.model.settingsSaved.Add(1)
	}
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// killRepeatedly SIGKILLs and restarts ledgerd until the phase is over, cycling through
// the moments to kill at. A targeted moment that does not come within a few seconds
// becomes a kill at a random moment.
func (tr *torture) killRepeatedly(phase time.Duration) {
	tr.kills = map[string]int{}
	nc, js := tr.connect()
	defer nc.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	modes := []string{"ingest", "read-model batch", "payment", "random"}
	end := time.Now().Add(phase)
	for k := 0; time.Now().Before(end); k++ {
		time.Sleep(time.Duration(200+rng.IntN(700)) * time.Millisecond)
		mode := modes[k%len(modes)]
		var release func()
		switch mode {
		case "ingest":
			if !tr.waitFor(3*time.Second, func() bool { return usageBacklog(js) > 0 }) {
				mode = "random"
			}
		case "read-model batch":
			if !tr.waitFor(3*time.Second, func() bool { return tr.projectionLag() > 0 }) {
				mode = "random"
			}
		case "payment":
			held := tr.gw.arm()
			select {
			case release = <-held:
			case <-time.After(5 * time.Second):
				tr.gw.disarm()
				mode = "random"
			}
		}
		tr.killTimes = append(tr.killTimes, time.Now())
		tr.proc.kill()
		if release != nil {
			release() // the gateway answers a caller that is gone
		}
		tr.kills[mode]++
		restart := time.Now()
		tr.proc = startProcess(tr.t, tr.cfg, tr.args...)
		tr.restartTime += time.Since(restart)
	}
}

func (tr *torture) waitFor(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

func (tr *torture) killTotal() int {
	n := 0
	for _, k := range tr.kills {
		n += k
	}
	return n
}

func (tr *torture) killSummary() string {
	var parts []string
	for _, mode := range []string{"ingest", "read-model batch", "payment", "random"} {
		parts = append(parts, fmt.Sprintf("%d during %s", tr.kills[mode], mode))
	}
	return strings.Join(parts, ", ")
}

// usageBacklog is how many usage messages wait for the ledger or are being charged.
func usageBacklog(js natsjs.JetStream) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, ingest.UsageStream, ingest.DurableName)
	if err != nil {
		return 0
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0
	}
	return info.NumPending + uint64(info.NumAckPending)
}

// projectionLag reads ledger_projection_lag_events from /metrics (-1 when unknown).
func (tr *torture) projectionLag() float64 {
	resp, err := http.Get(tr.base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "ledger_projection_lag_events "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// settle waits until ledgerd has nothing left to do: no usage waiting, no top-up
// pending, the read models caught up, and the store and ALERTS still for a moment.
func (tr *torture) settle() {
	tr.t.Helper()
	nc, js := tr.connect()
	defer nc.Close()
	var last string
	stableSince := time.Now()
	eventually(tr.t, 90*time.Second, func() string {
		state := fmt.Sprintf("backlog %d, LEDGER %d, ALERTS %d", usageBacklog(js), streamLastSeq(js, jetstream.StreamName), streamLastSeq(js, alerts.StreamName))
		if !strings.HasPrefix(state, "backlog 0,") {
			return state
		}
		for i := range tortureAccounts {
			r := doHTTP(tr.t, "GET", tr.base+"/v1/accounts/"+account(i)+"/top-ups", "", "")
			if r.Status != http.StatusOK {
				return fmt.Sprintf("top-ups of %s: %d", account(i), r.Status)
			}
			if strings.Contains(string(r.Body), `"state":"pending"`) {
				return account(i) + " has a top-up pending"
			}
		}
		if lag := tr.projectionLag(); lag != 0 {
			return fmt.Sprintf("projection lag %v", lag)
		}
		if state != last {
			last, stableSince = state, time.Now()
			return "still moving: " + state
		}
		if time.Since(stableSince) < time.Second {
			return "quiet for less than a second: " + state
		}
		return ""
	})
}

func streamLastSeq(js natsjs.JetStream, name string) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0
	}
	return s.CachedInfo().State.LastSeq
}

// buildLedgerctl compiles the auditor's CLI.
func buildLedgerctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ledgerctl")
	if out, err := exec.Command("go", "build", "-o", bin, "../ledgerctl").CombinedOutput(); err != nil {
		t.Fatalf("go build ledgerctl: %v\n%s", err, out)
	}
	return bin
}

// runVerify runs `ledgerctl verify` against the running ledgerd, as an auditor does.
func (tr *torture) runVerify(bin string) {
	tr.t.Helper()
	cmd := exec.Command(bin, "verify", "--data-dir", tr.cfg.DataDir, "--nats-url", "nats://"+tr.cfg.NATSListen)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "ok: ") {
		tr.t.Errorf("ledgerctl verify: %v\n%s\n%s", err, out, stderr.String())
		return
	}
	tr.t.Logf("ledgerctl verify: %s", strings.TrimSpace(string(out)))
}

// streamAudit is what the account streams hold.
type streamAudit struct {
	byAccount                                    map[string][]events.Envelope
	events, usages, topUpsSucceeded, adjustments int
}

// auditStreams reads every event of LEDGER and checks the promises against the workload
// and the gateway.
func (tr *torture) auditStreams() streamAudit {
	t := tr.t
	nc, _ := tr.connect()
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := jetstream.New(ctx, nc, jetstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	audit := streamAudit{byAccount: map[string][]events.Envelope{}}
	if err := store.ReadAll(ctx, 0, func(e events.Envelope) error {
		audit.byAccount[e.AccountID] = append(audit.byAccount[e.AccountID], e)
		audit.events++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m := tr.model
	m.mu.Lock()
	defer m.mu.Unlock()
	charged := tr.gw.charged()
	for i := range tortureAccounts {
		a := account(i)
		acc := domain.NewAccount(a)
		usages := map[string]decimal.Decimal{}
		succeeded := map[string]decimal.Decimal{}
		requested := map[string]bool{}
		adjustments := map[string]decimal.Decimal{}
		for _, e := range audit.byAccount[a] {
			if e.Version != acc.Version+1 {
				t.Errorf("%s: v%d follows v%d", a, e.Version, acc.Version)
			}
			switch d := e.Data.(type) {
			case events.UsageCharged:
				if _, dup := usages[d.UsageID]; dup {
					t.Errorf("%s: usage %s charged twice", a, d.UsageID)
				}
				usages[d.UsageID] = d.Amount
			case events.TopUpRequested:
				if acc.Pending != nil {
					t.Errorf("%s: top-up %s requested while %s is pending", a, d.TopUpID, acc.Pending.ID)
				}
				if requested[d.TopUpID] {
					t.Errorf("%s: top-up %s requested twice", a, d.TopUpID)
				}
				requested[d.TopUpID] = true
			case events.TopUpSucceeded:
				if _, dup := succeeded[d.TopUpID]; dup {
					t.Errorf("%s: top-up %s credited twice", a, d.TopUpID)
				}
				succeeded[d.TopUpID] = d.Amount
			case events.AdjustmentApplied:
				if _, dup := adjustments[d.AdjustmentID]; dup {
					t.Errorf("%s: adjustment %s applied twice", a, d.AdjustmentID)
				}
				adjustments[d.AdjustmentID] = d.Amount
			}
			domain.Evolve(acc, e)
		}
		audit.usages += len(usages)
		audit.topUpsSucceeded += len(succeeded)
		audit.adjustments += len(adjustments)

		// The balance the workload and the gateway add up to.
		want := decimal.Zero
		for id, v := range m.usages[a] {
			got, ok := usages[id]
			switch other, conflicted := m.conflictAmounts[a][id]; {
			case !ok:
				t.Errorf("%s: acknowledged usage %s was never charged", a, id)
			case conflicted && !got.Equal(v) && !got.Equal(other):
				t.Errorf("%s: usage %s charged %s, sent as %s and %s", a, id, got, v, other)
			case !conflicted && !got.Equal(v):
				t.Errorf("%s: usage %s charged %s, sent as %s", a, id, got, v)
			}
			want = want.Sub(got)
		}
		if len(usages) != len(m.usages[a]) {
			t.Errorf("%s: %d usages charged, %d acknowledged", a, len(usages), len(m.usages[a]))
		}
		for id, v := range m.adjustments[a] {
			if got, ok := adjustments[id]; !ok || !got.Equal(v) {
				t.Errorf("%s: acknowledged adjustment %s of %s: applied %v (%s)", a, id, v, ok, got)
			}
			want = want.Add(v)
		}
		if len(adjustments) != len(m.adjustments[a]) {
			t.Errorf("%s: %d adjustments applied, %d acknowledged", a, len(adjustments), len(m.adjustments[a]))
		}
		for id := range m.topUps[a] {
			if !requested[id] {
				t.Errorf("%s: accepted top-up %s is not in the stream", a, id)
			}
		}
		// Credited once if and only if the gateway charged it, for the charged amount.
		for id, c := range charged {
			if c.account != a {
				continue
			}
			if got, ok := succeeded[id]; !ok || !got.Equal(c.amount) {
				t.Errorf("%s: the gateway charged top-up %s %s; credited %v (%s)", a, id, c.amount, ok, got)
			}
			want = want.Add(c.amount)
		}
		for id := range succeeded {
			if c, ok := charged[id]; !ok || c.account != a {
				t.Errorf("%s: top-up %s credited but never charged by the gateway", a, id)
			}
		}
		if !acc.Balance.Equal(want) {
			t.Errorf("%s: the stream's balance is %s, the workload and the gateway add up to %s", a, acc.Balance, want)
		}
		r := doHTTP(t, "GET", tr.base+"/v1/accounts/"+a, "", "").JSON(t)
		if got, _ := decimal.NewFromString(fmt.Sprint(r["balance"])); !got.Equal(want) || r["version"] != float64(acc.Version) {
			t.Errorf("%s: read model shows balance %v version %v, the stream %s and %d", a, r["balance"], r["version"], want, acc.Version)
		}
	}
	return audit
}

// auditAlerts checks that ALERTS holds exactly the alerts the account streams call for,
// each once, and that the live subscriber never saw an alert twice. It returns how many
// alerts it checked.
func (tr *torture) auditAlerts(audit streamAudit, sub *alertSubscriber) int {
	t := tr.t
	var want []string
	for i := range tortureAccounts {
		acc := domain.NewAccount(account(i))
		for _, e := range audit.byAccount[account(i)] {
			for _, al := range alerts.Derive(acc, e) {
				want = append(want, alerts.MsgID(e.ID.String(), al.Alert))
			}
		}
	}
	nc, js := tr.connect()
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := js.Stream(ctx, alerts.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for seq := uint64(1); seq <= stream.CachedInfo().State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("ALERTS seq %d: %v", seq, err)
		}
		stored = append(stored, m.Header.Get(natsjs.MsgIDHeader))
	}
	slices.Sort(want)
	slices.Sort(stored)
	if d := slices.Compact(slices.Clone(stored)); len(d) != len(stored) {
		t.Errorf("ALERTS holds %d alerts, %d of them distinct: an alert was stored twice", len(stored), len(d))
	}
	if !slices.Equal(want, stored) {
		t.Errorf("ALERTS holds %d alerts, the streams call for %d", len(stored), len(want))
	}
	seen, twice, acrossKill := sub.result(tr.killTimes)
	for _, id := range twice {
		t.Errorf("alert %s was published twice to ledger.alerts.> by one running ledgerd", id)
	}
	// A SIGKILL can fall after the embedded server delivered an alert to core subscribers
	// and before it stored it in ALERTS; the restarted publisher then finds it missing and
	// publishes it again. Core NATS is at-most-once per publish: exactly once across
	// crashes is ALERTS (or a subscriber that drops a Nats-Msg-Id it has seen).
	t.Logf("alerts: %d stored once each as the streams call for; the live subscriber received %d of them (it misses those sent while it reconnects), %d twice with ledgerd killed in between %v, none twice otherwise",
		len(stored), seen, len(acrossKill), acrossKill)
	return len(stored)
}

// auditRejections checks that every bad message became a rejection with its reason.
func (tr *torture) auditRejections() {
	t := tr.t
	r := doHTTP(t, "GET", tr.base+"/v1/rejections?limit=1000", "", "")
	var body struct {
		Rejections []struct{ Reason, Payload string }
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("rejections: %d %s", r.Status, r.Body)
	}
	got := map[string]string{}
	for _, rj := range body.Rejections {
		got[rj.Payload] = rj.Reason
	}
	tr.model.mu.Lock()
	defer tr.model.mu.Unlock()
	if len(body.Rejections) == 1000 {
		t.Log("more than 1000 rejections: only the newest 1000 are checked")
		return
	}
	for payload, reason := range tr.model.garbage {
		if got[payload] != reason {
			t.Errorf("bad usage %s: rejection reason %q, want %q", payload, got[payload], reason)
		}
	}
	// Of two versions of one usage, the one charged first wins; the other is rejected.
	for second, first := range tr.model.conflicts {
		if got[second] != "conflicting_duplicate" && got[first] != "conflicting_duplicate" {
			t.Errorf("neither version of a conflicting usage is a conflicting_duplicate rejection: %s / %s", first, second)
		}
	}
}

// alertSubscriber listens on ledger.alerts.> as the platform does, across the restarts.
type alertSubscriber struct {
	nc       *nats.Conn
	mu       sync.Mutex
	received map[string][]time.Time // by Nats-Msg-Id
	once     sync.Once
}

func (tr *torture) subscribeAlerts() *alertSubscriber {
	s := &alertSubscriber{received: map[string][]time.Time{}}
	nc, err := nats.Connect("nats://"+tr.cfg.NATSListen, nats.MaxReconnects(-1), nats.ReconnectWait(10*time.Millisecond))
	if err != nil {
		tr.t.Fatal(err)
	}
	s.nc = nc
	if _, err := nc.Subscribe(alerts.StreamSubjects, func(m *nats.Msg) {
		s.mu.Lock()
		id := m.Header.Get(natsjs.MsgIDHeader)
		s.received[id] = append(s.received[id], time.Now())
		s.mu.Unlock()
	}); err != nil {
		tr.t.Fatal(err)
	}
	return s
}

func (s *alertSubscriber) close() { s.once.Do(func() { _ = s.nc.Drain() }) }

// result returns how many distinct alerts arrived, and those that arrived more than
// once with no kill of ledgerd between the deliveries (twice) or with one (acrossKill).
func (s *alertSubscriber) result(kills []time.Time) (seen int, twice, acrossKill []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, at := range s.received {
		seen++
		if len(at) < 2 {
			continue
		}
		i := slices.IndexFunc(kills, func(k time.Time) bool { return k.After(at[0]) && k.Before(at[len(at)-1]) })
		if i >= 0 {
			acrossKill = append(acrossKill, fmt.Sprintf("%s (first delivered %s before the kill)", id, kills[i].Sub(at[0]).Round(time.Millisecond)))
		} else {
			twice = append(twice, id)
		}
	}
	return seen, twice, acrossKill
}

// tortureGateway is a payment gateway as real ones are: idempotent by Idempotency-Key.
// The first call for a key decides its outcome once (charged, or declined); later calls
// with the key answer the same without charging again. Some keys see one 503 first. When
// armed, it holds the next call after charging it and hands the test a function that
// answers it, so the test can kill ledgerd while the call is in flight.
type tortureGateway struct {
	mu        sync.Mutex
	outcomes  map[string]bool // key -> charged (true) or declined (false)
	charges   map[string]tortureCharge
	failedYet map[string]bool
	armed     chan func()
	held      []func()

	calls, replays atomic.Int64
}

type tortureCharge struct {
	account string
	amount  decimal.Decimal
}

func newTortureGateway() *tortureGateway {
	return &tortureGateway{outcomes: map[string]bool{}, charges: map[string]tortureCharge{}, failedYet: map[string]bool{}}
}

func (g *tortureGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.calls.Add(1)
	var p struct {
		TopUpID   string `json:"top_up_id"`
		AccountID string `json:"account_id"`
		Amount    string `json:"amount"`
		Currency  string `json:"currency"`
		Kind      string `json:"kind"`
		Attempt   int    `json:"attempt"`
	}
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil || r.Header.Get("Idempotency-Key") != p.TopUpID || p.TopUpID == "" || p.Currency != "USD" {
		http.Error(w, "bad payment request", http.StatusBadRequest)
		return
	}
	amount, err := decimal.NewFromString(p.Amount)
	if err != nil {
		http.Error(w, "bad amount", http.StatusBadRequest)
		return
	}
	h := fnv.New32a()
	h.Write([]byte(p.TopUpID))
	roll := h.Sum32() % 100

	g.mu.Lock()
	ok, decided := g.outcomes[p.TopUpID]
	switch {
	case decided:
		g.replays.Add(1)
	case roll >= 6 && roll < 14 && !g.failedYet[p.TopUpID]:
		g.failedYet[p.TopUpID] = true
		g.mu.Unlock()
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	default:
		ok = roll >= 6
		g.outcomes[p.TopUpID] = ok
		if ok {
			g.charges[p.TopUpID] = tortureCharge{account: p.AccountID, amount: amount}
		}
	}
	var hold chan struct{}
	if g.armed != nil {
		hold = make(chan struct{})
		release := sync.OnceFunc(func() { close(hold) })
		g.held = append(g.held, release)
		g.armed <- release
		g.armed = nil
	}
	g.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if ok {
		writeJSONBody(w, map[string]string{"status": "succeeded", "payment_id": "pay-" + p.TopUpID})
	} else {
		writeJSONBody(w, map[string]string{"status": "declined", "reason": "card_declined"})
	}
}

func writeJSONBody(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// arm makes the gateway hold its next decided call; the channel delivers the function
// that lets it answer.
func (g *tortureGateway) arm() <-chan func() {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan func(), 1)
	g.armed = ch
	return ch
}

func (g *tortureGateway) disarm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = nil
}

// releaseAll answers every held call, so the test server can close.
func (g *tortureGateway) releaseAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, release := range g.held {
		release()
	}
	g.held = nil
}

func (g *tortureGateway) charged() map[string]tortureCharge {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]tortureCharge, len(g.charges))
	for k, v := range g.charges {
		out[k] = v
	}
	return out
}

func (g *tortureGateway) chargedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.charges)
}

func (g *tortureGateway) declinedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.outcomes) - len(g.charges)
}

// TestGracefulStopFinishesBatches stops ledgerd (as SIGTERM does) while it charges a
// backlog of usage, then opens its data dir with a bare NATS server and checks that the
// stop left no batch half done: no usage that is charged in LEDGER is still waiting in
// USAGE (charged and acknowledged together), and every published usage is either
// charged or still waiting (nothing lost).
func TestGracefulStopFinishesBatches(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	l := startLedger(t, cfg)
	const accounts, perAccount = 4, 1500
	for a := range accounts {
		l.openAccount(account(a))
	}
	l.publishInterleaved(accounts, perAccount)
	js, err := natsjs.New(l.nc)
	if err != nil {
		t.Fatal(err)
	}
	// Stop as soon as charging is under way.
	eventually(t, 10*time.Second, func() string {
		if n := streamLastSeq(js, jetstream.StreamName); n <= accounts {
			return "nothing charged yet"
		}
		return ""
	})
	start := time.Now()
	l.Stop()
	took := time.Since(start)

	ns, err := jetstream.StartServer(jetstream.ServerConfig{Port: -1, StoreDir: filepath.Join(cfg.DataDir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := jetstream.New(ctx, nc, jetstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	charged := map[string]bool{}
	if err := store.ReadAll(ctx, 0, func(e events.Envelope) error {
		if u, ok := e.Data.(events.UsageCharged); ok {
			charged[e.AccountID+"/"+u.UsageID] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rawJS, _ := natsjs.New(nc)
	usage, err := rawJS.Stream(ctx, ingest.UsageStream)
	if err != nil {
		t.Fatal(err)
	}
	state := usage.CachedInfo().State
	waiting := map[string]bool{}
	for seq := state.FirstSeq; state.Msgs > 0 && seq <= state.LastSeq; seq++ {
		m, err := usage.GetMsg(ctx, seq)
		if err != nil {
			continue // acknowledged and removed
		}
		u, err := ingest.Decode(m.Subject, m.Data)
		if err != nil {
			t.Fatalf("USAGE seq %d: %v", seq, err)
		}
		key := u.AccountID + "/" + u.Charge.UsageID
		if charged[key] {
			t.Errorf("usage %s is charged but still waits in USAGE: its batch was not finished", key)
		}
		waiting[key] = true
	}
	if len(charged)+len(waiting) != accounts*perAccount {
		t.Errorf("%d charged + %d waiting, want %d published", len(charged), len(waiting), accounts*perAccount)
	}
	t.Logf("graceful stop in %s during ingest: %d usages charged and acknowledged, %d waiting untouched, none charged and left unacknowledged",
		took.Round(time.Millisecond), len(charged), len(waiting))
}
