package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"
)

// buildLedgerd compiles this command once per test binary run.
var buildLedgerd = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ledgerd-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ledgerd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// process is ledgerd running as a child process.
type process struct {
	cmd  *exec.Cmd
	done chan error
}

func startProcess(t *testing.T, cfg config, extra ...string) *process {
	t.Helper()
	bin, err := buildLedgerd()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--data-dir", cfg.DataDir, "--http-addr", cfg.HTTPAddr, "--nats-listen", cfg.NATSListen, "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &testWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { p.kill() })
	waitReady(t, "http://"+cfg.HTTPAddr, p.done)
	return p
}

func (p *process) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// testWriter forwards a child's log lines to the test log (shown on failure).
type testWriter struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("ledgerd: %s", b)
	return len(b), nil
}

// TestCrashWhileUsageStreamsIn SIGKILLs ledgerd again and again while the platform
// publishes usage (and re-publishes, as a platform does when it is not sure), restarts it
// on the same data dir each time, and checks at the end that every balance is exactly
// the sum of its unique usages and every stream holds each usage once.
func TestCrashWhileUsageStreamsIn(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: several restarts of a child process")
	}
	cfg := testConfig(t, t.TempDir())
	p := startProcess(t, cfg)
	base := "http://" + cfg.HTTPAddr
	const accounts, usagesPerAccount, kills = 8, 1000, 4
	for a := 0; a < accounts; a++ {
		if r := doHTTP(t, "PUT", fmt.Sprintf("%s/v1/accounts/acct-%d", base, a), `{"currency":"USD"}`, ""); r.Status != http.StatusCreated {
			t.Fatalf("open account: %d %s", r.Status, r.Body)
		}
	}

	expected := make([]decimal.Decimal, accounts)
	var plan []publishJob
	rng := rand.New(rand.NewPCG(1, 2))
	for u := 0; u < usagesPerAccount; u++ {
		for a := 0; a < accounts; a++ {
			amount := decimal.New(rng.Int64N(100000), -4) // up to 9.9999, four decimals
			expected[a] = expected[a].Add(amount)
			job := publishJob{account: fmt.Sprintf("acct-%d", a), body: usageJSON(fmt.Sprintf("acct-%d", a), fmt.Sprintf("u-%d", u), amount.StringFixed(4))}
			plan = append(plan, job)
			if rng.IntN(10) == 0 {
				plan = append(plan, job) // a duplicate, as a retrying platform sends
			}
		}
	}

	published := make(chan struct{})
	var interrupted int
	go func() { defer close(published); interrupted = publishAll(t, "nats://"+cfg.NATSListen, plan) }()

	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(150+rng.IntN(250)) * time.Millisecond)
		p.kill()
		p = startProcess(t, cfg)
	}
	select {
	case <-published:
	case <-time.After(2 * time.Minute):
		t.Fatal("publisher did not finish")
	}
	for a := 0; a < accounts; a++ {
		want := expected[a].Neg()
		account := fmt.Sprintf("acct-%d", a)
		eventually(t, 30*time.Second, func() string {
			r := doHTTP(t, "GET", base+"/v1/accounts/"+account, "", "")
			m := r.JSON(t)
			got := decimal.RequireFromString(m["balance"].(string))
			if !got.Equal(want) || m["version"] != float64(1+usagesPerAccount) {
				return fmt.Sprintf("%s: balance %s version %v, want %s and %d", account, got, m["version"], want, 1+usagesPerAccount)
			}
			return ""
		})
	}
	if interrupted == 0 {
		t.Error("no publish was interrupted by a kill: the test did not crash ledgerd during ingest")
	}
	t.Logf("%d kills survived, %d usages (%d publishes, %d interrupted and retried) checked", kills, accounts*usagesPerAccount, len(plan), interrupted)
}

type publishJob struct{ account, body string }

// publishAll publishes every job until JetStream acknowledges it, riding out the
// restarts of the server, as the telephony platform does. It returns how many publishes
// failed and were retried.
func publishAll(t *testing.T, url string, jobs []publishJob) (retries int) {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Error(err)
		return 0
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.MaxWait(time.Second))
	if err != nil {
		t.Error(err)
		return 0
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, j := range jobs {
		for {
			if _, err := js.Publish("usage."+j.account, []byte(j.body)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Error("publishing did not get through within 90 s")
				return retries
			}
			retries++
			time.Sleep(20 * time.Millisecond)
		}
	}
	return retries
}

// TestGracefulStop: SIGTERM makes ledgerd finish and exit 0 within 10 s (API.md section 1).
func TestGracefulStop(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	p := startProcess(t, cfg)
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ledgerd did not stop within 10 s of SIGTERM")
	}
	t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
}
