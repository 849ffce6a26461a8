package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// binDir holds the ledgerd binary built for this test run.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildLedgerd compiles ledgerd once per test binary run: ledgerctl's tests drive the real
// daemon as a child process, as an operator would (package main cannot be imported).
var buildLedgerd = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ledgerctl-test-ledgerd")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "ledgerd")
	out, err := exec.Command("go", "build", "-o", bin, "../ledgerd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ledgerd: %v\n%s", err, out)
	}
	return bin, nil
})

// daemon is a ledgerd child process on its own data dir and ports.
type daemon struct {
	t        *testing.T
	dataDir  string
	httpAddr string
	natsAddr string
	token    string
	cmd      *exec.Cmd
	done     chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newDaemon prepares a ledgerd on a fresh data dir; start runs it.
func newDaemon(t *testing.T) *daemon {
	return &daemon{t: t, dataDir: t.TempDir(), httpAddr: freeAddr(t), natsAddr: freeAddr(t), token: "admin-secret"}
}

// start runs ledgerd and waits until /readyz answers 200.
func (d *daemon) start() {
	d.t.Helper()
	bin, err := buildLedgerd()
	if err != nil {
		d.t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "--data-dir", d.dataDir, "--http-addr", d.httpAddr, "--nats-listen", d.natsAddr,
		"--admin-token", d.token, "--top-up-retry-base", "50ms", "--log-level", "warn")
	d.cmd.Stderr = &testLog{t: d.t}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(d.cmd, d.done)
	d.t.Cleanup(d.kill)
	d.waitReady()
}

func (d *daemon) waitReady() {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			d.t.Fatalf("ledgerd exited while starting: %v", err)
		default:
		}
		if resp, err := http.Get("http://" + d.httpAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatal("ledgerd not ready within 30 s")
}

// stop stops ledgerd gracefully (SIGTERM) and checks it exited 0.
func (d *daemon) stop() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			d.t.Errorf("ledgerd exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		d.t.Error("ledgerd did not stop within 15 s")
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd = nil
}

func (d *daemon) kill() {
	if d.cmd != nil {
		_ = d.cmd.Process.Kill()
		<-d.done
		d.cmd = nil
	}
}

// testLog forwards a child's log lines to the test log (shown on failure).
type testLog struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *testLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("ledgerd: %s", bytes.TrimSpace(b))
	return len(b), nil
}

// result is one ledgerctl run.
type result struct {
	code           int
	stdout, stderr string
}

// lines are stdout's lines without the final newline.
func (r result) lines() []string { return strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") }

func (r result) lastLine() string {
	l := r.lines()
	return l[len(l)-1]
}

// ctl runs ledgerctl in-process with args.
func ctl(args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// ctl runs ledgerctl against this daemon: the global flags go after the command's own
// arguments, as an operator may type them.
func (d *daemon) ctl(args ...string) result {
	return ctl(append(args, "--nats-url", "nats://"+d.natsAddr, "--api-url", "http://"+d.httpAddr,
		"--data-dir", d.dataDir, "--token", d.token)...)
}

// mustCtl is ctl that fails the test unless ledgerctl exits 0.
func (d *daemon) mustCtl(args ...string) result {
	d.t.Helper()
	r := d.ctl(args...)
	if r.code != 0 {
		d.t.Fatalf("ledgerctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// publishUsage publishes usage as the telephony platform does, over JetStream.
func (d *daemon) publishUsage(account, usageID, typ, reason, amount, user string) {
	d.t.Helper()
	nc, err := nats.Connect("nats://" + d.natsAddr)
	if err != nil {
		d.t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		d.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"usage_id": usageID, "account_id": account, "type": typ, "reason": reason,
		"occurred_at": "2026-11-24T10:15:00Z", "amount": amount, "currency": "USD", "user_id": user,
		"quantity": "21", "unit": "minute", "destination": "+447911123456"})
	if _, err := js.Publish("usage."+account, body); err != nil {
		d.t.Fatalf("publish usage: %v", err)
	}
}

// account reads the account through ledgerctl balance --json.
func (d *daemon) account(id string) accountView {
	d.t.Helper()
	var a accountView
	if err := json.Unmarshal([]byte(d.mustCtl("balance", id, "--json").stdout), &a); err != nil {
		d.t.Fatal(err)
	}
	return a
}

// waitVersion waits until the read models show the account at version v.
func (d *daemon) waitVersion(id string, v uint64) {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := d.account(id)
		if a.Version >= v {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("account %s at version %d, want %d", id, a.Version, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}
