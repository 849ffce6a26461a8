package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/telephony/creditledger/api"
)

// TestConfigRefusals: API.md section 9 and the security rules of the flags. Without
// tokens ledgerd serves HTTP on loopback only; the embedded NATS beyond loopback needs a
// user and password; a read token alone would leave writes open.
func TestConfigRefusals(t *testing.T) {
	for _, name := range []string{"ADMIN_TOKEN", "READ_TOKEN", "HTTP_ADDR", "NATS_LISTEN", "NATS_URL", "NATS_USER", "NATS_PASSWORD"} {
		if _, ok := os.LookupEnv("LEDGER_" + name); ok {
			t.Setenv("LEDGER_"+name, "") // t.Setenv restores it afterwards
			os.Unsetenv("LEDGER_" + name)
		}
	}
	tests := []struct {
		name    string
		give    []string
		env     map[string]string
		wantErr string // "" = accepted
	}{
		{name: "defaults: loopback, no tokens", give: nil},
		{name: "localhost without tokens", give: []string{"--http-addr", "localhost:8080"}},
		{name: "IPv6 loopback without tokens", give: []string{"--http-addr", "[::1]:8080"}},
		{name: "all interfaces without tokens", give: []string{"--http-addr", "0.0.0.0:8080"}, wantErr: "refusing to serve HTTP on 0.0.0.0:8080"},
		{name: "empty host without tokens", give: []string{"--http-addr", ":8080"}, wantErr: "refusing to serve HTTP"},
		{name: "IPv6 any without tokens", give: []string{"--http-addr", "[::]:8080"}, wantErr: "refusing to serve HTTP"},
		{name: "a LAN address without tokens", give: []string{"--http-addr", "192.168.1.10:8080"}, wantErr: "refusing to serve HTTP"},
		{name: "a host name without tokens", give: []string{"--http-addr", "ledger.internal:8080"}, wantErr: "refusing to serve HTTP"},
		{name: "all interfaces with an admin token", give: []string{"--http-addr", "0.0.0.0:8080", "--admin-token", "a"}},
		{name: "admin token from the environment", give: []string{"--http-addr", "0.0.0.0:8080"}, env: map[string]string{"LEDGER_ADMIN_TOKEN": "a"}},
		{name: "read token alone", give: []string{"--read-token", "r"}, wantErr: "--read-token needs --admin-token"},
		{name: "read token alone, beyond loopback", give: []string{"--http-addr", "0.0.0.0:8080", "--read-token", "r"}, wantErr: "--read-token needs --admin-token"},
		{name: "embedded NATS beyond loopback without a user", give: []string{"--nats-listen", "0.0.0.0:4222"}, wantErr: "refusing to open the embedded NATS"},
		{name: "embedded NATS beyond loopback, HTTP token but no NATS user", give: []string{"--nats-listen", "0.0.0.0:4222", "--admin-token", "a", "--http-addr", "0.0.0.0:8080"}, wantErr: "refusing to open the embedded NATS"},
		{name: "embedded NATS beyond loopback with user and password", give: []string{"--nats-listen", "0.0.0.0:4222", "--nats-user", "u", "--nats-password", "p"}},
		{name: "NATS user without password", give: []string{"--nats-user", "u"}, wantErr: "--nats-user and --nats-password go together"},
		{name: "NATS password without user", give: []string{"--nats-password", "p"}, wantErr: "--nats-user and --nats-password go together"},
		{name: "external NATS: the listen address does not matter", give: []string{"--nats-url", "nats://10.0.0.1:4222", "--nats-listen", "0.0.0.0:4222"}},
		{name: "TLS files without an external NATS", give: []string{"--nats-tls-ca", "ca.pem"}, wantErr: "--nats-tls-* apply to an external NATS"},
		{name: "client certificate without key", give: []string{"--nats-url", "tls://n:4222", "--nats-tls-cert", "c.pem"}, wantErr: "--nats-tls-cert and --nats-tls-key go together"},
		{name: "TLS with CA, certificate and key", give: []string{"--nats-url", "tls://n:4222", "--nats-tls-ca", "ca.pem", "--nats-tls-cert", "c.pem", "--nats-tls-key", "k.pem"}},
		{name: "replicas on the embedded single node", give: []string{"--replicas", "3"}, wantErr: "--replicas above 1 needs --nats-url"},
		{name: "replicas on a cluster", give: []string{"--replicas", "3", "--nats-url", "nats://a:4222,nats://b:4222,nats://c:4222"}},
		{name: "replicas out of range", give: []string{"--replicas", "7", "--nats-url", "nats://a:4222"}, wantErr: "--replicas must be 1..5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := parseConfig(tt.give)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestRefusesToListenBeyondLoopback: the real binary exits 2 at once, before opening any
// port, when asked to serve HTTP beyond loopback without a token.
func TestRefusesToListenBeyondLoopback(t *testing.T) {
	bin, err := buildLedgerd()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--http-addr", "0.0.0.0:0", "--nats-listen", freeAddr(t))
	cmd.Env = withoutLedgerEnv()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2; output %s", err, out)
	}
	if !strings.Contains(string(out), "refusing to serve HTTP on 0.0.0.0:0") {
		t.Fatalf("output %s", out)
	}
}

func withoutLedgerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEDGER_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestHelpShowsNoSecrets: secrets given in the environment (as a container or a unit
// file does) never appear in --help or in the usage printed for a wrong flag.
func TestHelpShowsNoSecrets(t *testing.T) {
	bin, err := buildLedgerd()
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"LEDGER_ADMIN_TOKEN":         "adm-7f3a9c1e-secret",
		"LEDGER_READ_TOKEN":          "rd-52b8e0d4-secret",
		"LEDGER_NATS_PASSWORD":       "natspw-91c2-secret",
		"LEDGER_NATS_URL":            "nats://ledger:urlpw-77aa-secret@10.0.0.1:4222",
		"LEDGER_EVENTSTORE_URL":      "esdb://admin:esdbpw-3c3c-secret@10.0.0.2:2113",
		"LEDGER_PAYMENT_WEBHOOK_URL": "https://pay:hookpw-0e0e-secret@gateway.example/charge",
	}
	for _, args := range [][]string{{"--help"}, {"--no-such-flag"}, {"--replicas", "x"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = withoutLedgerEnv()
		for k, v := range secrets {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "-admin-token") && args[0] != "--replicas" {
			t.Errorf("ledgerd %v printed no usage: %s", args, out)
		}
		for _, v := range secrets {
			for _, part := range []string{v, secretPart(v)} {
				if strings.Contains(string(out), part) {
					t.Errorf("ledgerd %v printed the secret %q:\n%s", args, part, out)
				}
			}
		}
	}
}

// secretPart is the "...-secret" piece of a test secret (the password inside a URL).
func secretPart(v string) string {
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == '@' || r == '/' }) {
		if strings.HasSuffix(f, "-secret") {
			return f
		}
	}
	return v
}

// TestTokens: API.md section 9 end to end. With an admin token every /v1 request needs
// it, the read token is good for GET only, anything else is 401 with the JSON error
// body; the operational endpoints stay open for probes and scrapers.
func TestTokens(t *testing.T) {
	const admin, read = "admin-0123456789abcdef", "read-fedcba9876543210"
	cfg := testConfig(t, t.TempDir())
	cfg.AdminToken, cfg.ReadToken = admin, read
	l := startLedger(t, cfg)
	if r := doHTTP(t, "PUT", l.base+"/v1/accounts/acme", `{"currency":"USD"}`, admin); r.Status != http.StatusCreated {
		t.Fatalf("open with the admin token: %d %s", r.Status, r.Body)
	}
	tests := []struct {
		name, method, path, body string
		header                   string // the whole Authorization header; "" = none
		wantStatus               int
		wantCode                 string
	}{
		{"no token", "GET", "/v1/accounts/acme", "", "", 401, "unauthorized"},
		{"no token, write", "PUT", "/v1/accounts/x", `{"currency":"USD"}`, "", 401, "unauthorized"},
		{"wrong token", "GET", "/v1/accounts/acme", "", "Bearer nope", 401, "unauthorized"},
		{"admin token with a suffix", "GET", "/v1/accounts/acme", "", "Bearer " + admin + "x", 401, "unauthorized"},
		{"prefix of the admin token", "GET", "/v1/accounts/acme", "", "Bearer " + admin[:len(admin)-1], 401, "unauthorized"},
		{"basic auth", "GET", "/v1/accounts/acme", "", "Basic " + admin, 401, "unauthorized"},
		{"empty bearer", "GET", "/v1/accounts/acme", "", "Bearer ", 401, "unauthorized"},
		{"token without scheme", "GET", "/v1/accounts/acme", "", admin, 401, "unauthorized"},
		{"read token reads", "GET", "/v1/accounts/acme", "", "Bearer " + read, 200, ""},
		{"read token reads movements", "GET", "/v1/accounts/acme/movements", "", "Bearer " + read, 200, ""},
		{"read token authorizes", "GET", "/v1/accounts/acme/authorize?direction=outbound&number_type=standard", "", "Bearer " + read, 200, ""},
		{"read token may not write", "POST", "/v1/accounts/acme/adjustments", `{"adjustment_id":"a1","amount":"5","reason":"r"}`, "Bearer " + read, 403, "forbidden"},
		{"read token may not open", "PUT", "/v1/accounts/y", `{"currency":"USD"}`, "Bearer " + read, 403, "forbidden"},
		{"read token may not post usage", "POST", "/v1/usage", usageJSON("acme", "u1", "1"), "Bearer " + read, 403, "forbidden"},
		{"read token may not retry rejections", "POST", "/v1/rejections/r1/retry", "", "Bearer " + read, 403, "forbidden"},
		{"admin token writes", "POST", "/v1/accounts/acme/adjustments", `{"adjustment_id":"a1","amount":"5","reason":"r"}`, "Bearer " + admin, 201, ""},
		{"healthz is open", "GET", "/healthz", "", "", 200, ""},
		{"readyz is open", "GET", "/readyz", "", "", 200, ""},
		{"metrics are open", "GET", "/metrics", "", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, l.base+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error struct{ Code, Message string }
			}
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tt.wantStatus || e.Error.Code != tt.wantCode {
				t.Fatalf("status %d code %q, want %d %q", resp.StatusCode, e.Error.Code, tt.wantStatus, tt.wantCode)
			}
			if tt.wantCode != "" && (e.Error.Message == "" || resp.Header.Get("Content-Type") != "application/json") {
				t.Errorf("error body without message or JSON content type: %+v %q", e, resp.Header.Get("Content-Type"))
			}
			if tt.wantStatus == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") && tt.header == "" {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
		})
	}
}

// TestEmbeddedNATSAuthentication: with --nats-user/--nats-password the embedded server
// admits only that user; the platform connects with it and usage is charged.
func TestEmbeddedNATSAuthentication(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.NATSUser, cfg.NATSPassword = "platform", "s3cret-nats-password"
	l := startLedgerOn(t, cfg)
	url := "nats://" + cfg.NATSListen
	for _, opt := range []nats.Option{nil, nats.UserInfo("platform", "wrong"), nats.UserInfo("someone", cfg.NATSPassword)} {
		opts := []nats.Option{nats.MaxReconnects(0)}
		if opt != nil {
			opts = append(opts, opt)
		}
		if nc, err := nats.Connect(url, opts...); err == nil {
			nc.Close()
			t.Error("the embedded NATS admitted a client without the right user and password")
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("connect: %v, want an authorization error", err)
		}
	}
	nc, err := nats.Connect(url, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	doHTTP(t, "PUT", l.base+"/v1/accounts/acme", `{"currency":"USD"}`, "")
	js, _ := nc.JetStream()
	if _, err := js.Publish("usage.acme", []byte(usageJSON("acme", "call-1", "1.5"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		m := doHTTP(t, "GET", l.base+"/v1/accounts/acme", "", "").JSON(t)
		if m["balance"] != "-1.5" {
			return fmt.Sprintf("balance %v", m["balance"])
		}
		return ""
	})
	reply, err := nc.Request(api.AuthorizeSubject, []byte(`{"account_id":"acme","direction":"outbound","number_type":"standard"}`), 5*time.Second)
	if err != nil || !bytes.Contains(reply.Data, []byte(`"allowed":false`)) {
		t.Fatalf("authorize: %v %s", err, replyData(reply))
	}
}

func replyData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// TestExternalNATSWithTLS: ledgerd reaches an external NATS that requires TLS with
// client certificates through --nats-tls-ca/--nats-tls-cert/--nats-tls-key, and refuses
// to start when it cannot verify the server.
func TestExternalNATSWithTLS(t *testing.T) {
	pki := newTestPKI(t)
	tlsCfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.ca, Verify: true, Timeout: 2})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		TLS: true, TLSVerify: true, TLSConfig: tlsCfg, TLSTimeout: 2, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("TLS NATS not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	url := fmt.Sprintf("tls://127.0.0.1:%d", ns.Addr().(*net.TCPAddr).Port)

	// Without a client certificate the server refuses the platform and ledgerd alike.
	if nc, err := nats.Connect(url, nats.RootCAs(pki.ca), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("the TLS server admitted a client without a certificate")
	}
	cfg := testConfig(t, t.TempDir())
	cfg.NATSURL = url
	if err := run(context.Background(), cfg, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "connect to nats") {
		t.Fatalf("ledgerd without TLS settings: %v, want a connect error", err)
	}

	cfg.NATSTLSCA, cfg.NATSTLSCert, cfg.NATSTLSKey = pki.ca, pki.clientCert, pki.clientKey
	l := startLedgerOn(t, cfg)
	doHTTP(t, "PUT", l.base+"/v1/accounts/acme", `{"currency":"USD"}`, "")
	nc, err := nats.Connect(url, nats.RootCAs(pki.ca), nats.ClientCert(pki.clientCert, pki.clientKey))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	if _, err := js.Publish("usage.acme", []byte(usageJSON("acme", "call-1", "2"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		if m := doHTTP(t, "GET", l.base+"/v1/accounts/acme", "", "").JSON(t); m["balance"] != "-2" {
			return fmt.Sprintf("balance %v", m["balance"])
		}
		return ""
	})
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client certificate, as
// PEM files.
type testPKI struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ledger test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := testPKI{ca: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.ca, "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Sync() error { return nil }

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// debugLogger is ledgerd's production JSON logger at debug level, writing to buf.
func debugLogger(buf *syncBuffer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(logEncoderConfig())
	return zap.New(zapcore.NewCore(enc, buf, zap.DebugLevel))
}

// TestNoSecretsInLogs runs ledgerd at debug level with tokens and NATS credentials
// (embedded, then an external NATS with the credentials inside its URL, restarted under
// it so that the disconnect and reconnect are logged), exercises refused and accepted
// requests, and checks that no secret appears in any log line.
func TestNoSecretsInLogs(t *testing.T) {
	const admin, read, natsPassword, urlPassword = "adm-c0ffee-4242-secret", "rd-beef-1717-secret", "nats-pw-5a5a-secret", "url-pw-6b6b-secret"
	var logs syncBuffer
	exercise := func(l *clusterLedger, natsURL string, opts ...nats.Option) {
		for i, tok := range []string{"", "wrong", read, admin} {
			doHTTP(t, "PUT", l.base+"/v1/accounts/acme", `{"currency":"USD"}`, tok)
			doHTTP(t, "GET", l.base+"/v1/accounts/acme", "", tok)
			doHTTP(t, "POST", l.base+"/v1/accounts/acme/top-ups", fmt.Sprintf(`{"top_up_id":"tu-%d","amount":"5"}`, i), tok)
		}
		doHTTP(t, "POST", l.base+"/v1/usage", usageJSON("acme", "u-1", "1"), admin)
		if nc, err := nats.Connect(natsURL, append(opts, nats.MaxReconnects(0))...); err == nil {
			_, _ = nc.Request(api.AuthorizeSubject, []byte(`{"account_id":"acme","direction":"outbound","number_type":"standard"}`), 5*time.Second)
			if js, err := nc.JetStream(); err == nil {
				_, _ = js.Publish("usage.acme", []byte("not json"))
			}
			nc.Close()
		}
		if nc, err := nats.Connect(natsURL, nats.UserInfo("platform", "wrong-password"), nats.MaxReconnects(0)); err == nil {
			nc.Close()
		}
	}

	// Embedded NATS with a user and password.
	cfg := testConfig(t, t.TempDir())
	cfg.AdminToken, cfg.ReadToken = admin, read
	cfg.NATSUser, cfg.NATSPassword = "platform", natsPassword
	cfg.LogLevel = "debug"
	l := startLedgerLogged(t, cfg, debugLogger(&logs))
	exercise(l, "nats://"+cfg.NATSListen, nats.UserInfo("platform", natsPassword))
	if err := l.halt(); err != nil {
		t.Fatal(err)
	}

	// External NATS, credentials in the URL, restarted while ledgerd runs.
	opts := &server.Options{Host: "127.0.0.1", Port: freePort(t), JetStream: true, StoreDir: t.TempDir(),
		Username: "ledger", Password: urlPassword, NoSigs: true, NoLog: true}
	startExternal := func() *server.Server {
		o := *opts
		ns, err := server.NewServer(&o)
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("external NATS not ready")
		}
		return ns
	}
	ns := startExternal()
	natsURL := fmt.Sprintf("nats://ledger:%s@127.0.0.1:%d", urlPassword, opts.Port)
	cfg2 := testConfig(t, t.TempDir())
	cfg2.AdminToken, cfg2.NATSURL = admin, natsURL
	l2 := startLedgerLogged(t, cfg2, debugLogger(&logs))
	exercise(l2, natsURL)
	ns.Shutdown()
	ns.WaitForShutdown()
	ns = startExternal()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	eventually(t, 20*time.Second, func() string {
		if !strings.Contains(logs.String(), "nats reconnected") {
			return "ledgerd has not reconnected"
		}
		return ""
	})
	exercise(l2, natsURL)
	if err := l2.halt(); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	if !strings.Contains(out, `"msg":"ledgerd ready"`) || !strings.Contains(out, "nats disconnected") {
		t.Fatalf("the log lacks the lines this test is about:\n%s", out)
	}
	for _, secret := range []string{admin, read, natsPassword, urlPassword} {
		if strings.Contains(out, secret) {
			i := strings.Index(out, secret)
			t.Errorf("the log holds the secret %q: ...%q...", secret, out[max(0, i-300):min(len(out), i+100)])
		}
	}
	checkStructuredLogs(t, out)
	t.Logf("%d log lines at debug level, none with a token or password", strings.Count(out, "\n"))
}

// checkStructuredLogs: every line is a JSON object with level, time and message, and the
// lines about one account's usage or payment carry its account id and the id of what
// they are about, so that an operator can follow an account through the log.
func checkStructuredLogs(t *testing.T, out string) {
	t.Helper()
	want := map[string][]string{
		"usage rejected":           {"account_id", "rejection_id", "seq", "reason"},
		"payment attempt recorded": {"account_id", "top_up_id", "attempt"},
	}
	found := map[string]bool{}
	for line := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		if m["level"] == nil || m["time"] == nil || m["msg"] == nil {
			t.Errorf("log line without level, time or msg: %q", line)
		}
		msg, _ := m["msg"].(string)
		if fields, ok := want[msg]; ok {
			found[msg] = true
			for _, f := range fields {
				if v, ok := m[f]; !ok || v == "" {
					t.Errorf("%q without %s: %q", msg, f, line)
				}
			}
		}
	}
	for msg := range want {
		if !found[msg] {
			t.Errorf("no %q line in the log", msg)
		}
	}
}

// TestHostileInputOverNATS: what the platform's side of NATS may send. Usage bigger than
// a usage may be, but within the stream's limit, becomes a rejection that keeps the whole
// payload; bigger than the stream's limit is refused at publish, so the publisher knows;
// bytes that are not UTF-8 are kept as base64; malformed authorization requests get a
// denial with an error. The ledger keeps charging throughout.
func TestHostileInputOverNATS(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	l.openAccount("acme")
	js, err := l.nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	big := `{"usage_id":"big","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"1","currency":"USD","destination":"` + strings.Repeat("9", 20<<10) + `"}`
	if _, err := js.Publish("usage.acme", []byte(big)); err != nil {
		t.Fatalf("a 20 KiB usage: %v", err)
	}
	if _, err := js.Publish("usage.acme", bytes.Repeat([]byte("x"), 70<<10)); err == nil {
		t.Error("a 70 KiB usage was accepted by the USAGE stream")
	}
	binary := []byte{0xff, 0xfe, 0x00, '{', 0x80}
	if _, err := js.Publish("usage.acme", binary); err != nil {
		t.Fatal(err)
	}
	nested := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	for _, p := range []string{nested, `{"usage_id":"n","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"1e400","currency":"USD"}`, "null", `""`} {
		if _, err := js.Publish("usage.acme", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	l.publishUsage("acme", usageJSON("acme", "fine", "0.5"))
	l.waitBalance("acme", "-0.5")

	var rejections []map[string]any
	eventually(t, 10*time.Second, func() string {
		rs := l.mustDo("GET", "/v1/rejections?account_id=acme&limit=1000", "", 200)["rejections"].([]any)
		if len(rs) < 6 {
			return fmt.Sprintf("%d rejections", len(rs))
		}
		rejections = nil
		for _, r := range rs {
			rejections = append(rejections, r.(map[string]any))
		}
		return ""
	})
	var sawBig, sawBinary bool
	for _, r := range rejections {
		switch {
		case r["payload"] == big:
			sawBig = r["reason"] == "payload_too_large"
		case r["payload_base64"] != nil:
			b, _ := json.Marshal(binary) // []byte marshals as base64
			sawBinary = `"`+fmt.Sprint(r["payload_base64"])+`"` == string(b)
		}
	}
	if !sawBig || !sawBinary {
		t.Errorf("big payload kept as payload_too_large: %v; binary payload kept as base64: %v", sawBig, sawBinary)
	}

	for _, req := range [][]byte{nil, []byte("{"), []byte("null"), []byte(`[]`), []byte(`{"account_id":"acme"}`),
		[]byte(`{"account_id":"acme","direction":"sideways","number_type":"standard"}`),
		[]byte(`{"account_id":"` + strings.Repeat("a", 65) + `","direction":"outbound","number_type":"standard"}`),
		bytes.Repeat([]byte(" "), 5<<10)} {
		reply, err := l.nc.Request(api.AuthorizeSubject, req, 5*time.Second)
		if err != nil {
			t.Fatalf("authorize %q: %v", truncateForLog(req), err)
		}
		var d struct {
			Allowed *bool
			Reason  string
			Error   struct{ Code string }
		}
		if err := json.Unmarshal(reply.Data, &d); err != nil || d.Allowed == nil || *d.Allowed || d.Reason != "invalid_request" || d.Error.Code == "" {
			t.Errorf("authorize %q: %s", truncateForLog(req), reply.Data)
		}
	}
	l.publishUsage("acme", usageJSON("acme", "still-fine", "0.25"))
	l.waitBalance("acme", "-0.75")
}

func truncateForLog(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
