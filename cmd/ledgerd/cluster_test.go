package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/telephony/creditledger/consumers/alerts"
	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/events/jetstream"
)

// natsCluster is a cluster of real nats-server nodes with JetStream, embedded in the
// test process, each on its own loopback client and route port and its own store
// directory. A stopped node restarts on the same ports and files, as a real node does.
type natsCluster struct {
	t     *testing.T
	mu    sync.Mutex
	opts  []*server.Options
	nodes []*server.Server
}

// startCluster starts n clustered nodes and waits until JetStream has a meta leader.
func startCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, opts: make([]*server.Options, n), nodes: make([]*server.Server, n)}
	clientPorts, routePorts := make([]int, n), make([]int, n)
	var routes []string
	for i := range n {
		clientPorts[i], routePorts[i] = freePort(t), freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
	}
	for i := range n {
		c.opts[i] = &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "ledger", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
			NoSigs:     true,
			NoLog:      true,
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { c.start(i) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for i := range n {
			c.stop(i)
		}
	})
	c.waitJetStream()
	c.waitPlacement()
	return c
}

// waitPlacement waits until a stream of len(nodes) replicas can be placed through
// every node: a meta leader alone is not enough, every peer must have joined the meta
// group and answer JetStream requests promptly.
func (c *natsCluster) waitPlacement() {
	c.t.Helper()
	for i, o := range c.opts {
		nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
		if err != nil {
			c.t.Fatal(err)
		}
		js, err := natsjs.New(nc)
		if err != nil {
			c.t.Fatal(err)
		}
		name := fmt.Sprintf("PROBE%d", i)
		eventually(c.t, 30*time.Second, func() string {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: name, Subjects: []string{"probe." + name}, Replicas: len(c.nodes), Storage: natsjs.MemoryStorage}); err != nil {
				return "placing a probe stream through " + o.ServerName + ": " + err.Error()
			}
			if err := js.DeleteStream(ctx, name); err != nil {
				return "deleting the probe stream: " + err.Error()
			}
			return ""
		})
		nc.Close()
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// start starts node i (again) on its ports and store directory.
func (c *natsCluster) start(i int) {
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Errorf("node %d: %v", i+1, err)
		return
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		c.t.Errorf("node %d not ready", i+1)
		return
	}
	c.mu.Lock()
	c.nodes[i] = s
	c.mu.Unlock()
}

// stop shuts node i down (a no-op when it is down).
func (c *natsCluster) stop(i int) {
	c.mu.Lock()
	s := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// urls lists every node's client URL, as a platform's or ledgerd's connection would.
func (c *natsCluster) urls() string {
	var us []string
	for _, o := range c.opts {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(us, ",")
}

// index returns the node named name.
func (c *natsCluster) index(name string) int {
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	c.t.Fatalf("no node named %q", name)
	return -1
}

// waitJetStream waits until the cluster has elected a JetStream meta leader, so that
// streams can be created.
func (c *natsCluster) waitJetStream() {
	c.t.Helper()
	eventually(c.t, 30*time.Second, func() string {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.nodes {
			if s != nil && s.JetStreamIsLeader() {
				return ""
			}
		}
		return "no JetStream meta leader"
	})
}

// streamLeader returns the index of the node leading stream, once it has one.
func (c *natsCluster) streamLeader(js natsjs.JetStream, stream string) int {
	c.t.Helper()
	var leader string
	eventually(c.t, 30*time.Second, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return fmt.Sprintf("stream %s: %v", stream, err)
		}
		info := s.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return "stream " + stream + " has no leader"
		}
		leader = info.Cluster.Leader
		return ""
	})
	return c.index(leader)
}

// clusterLedger is an in-process ledgerd connected to an external NATS.
type clusterLedger struct {
	base    string
	stop    context.CancelFunc
	stopped chan error
	once    sync.Once
	err     error
}

// halt stops ledgerd gracefully (once) and returns what run returned.
func (l *clusterLedger) halt() error {
	l.once.Do(func() {
		l.stop()
		select {
		case l.err = <-l.stopped:
		case <-time.After(15 * time.Second):
			l.err = errors.New("ledgerd did not stop within 15 s")
		}
	})
	return l.err
}

func startLedgerOn(t *testing.T, cfg config) *clusterLedger {
	t.Helper()
	return startLedgerLogged(t, cfg, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named("ledgerd"))
}

// startLedgerLogged runs ledgerd in-process on cfg, logging to log, and waits until it is
// ready; it needs no NATS connection of its own (external or authenticated NATS).
func startLedgerLogged(t *testing.T, cfg config, log *zap.Logger) *clusterLedger {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &clusterLedger{base: "http://" + cfg.HTTPAddr, stop: cancel, stopped: make(chan error, 1)}
	go func() { l.stopped <- run(ctx, cfg, log) }()
	waitReady(t, l.base, l.stopped)
	t.Cleanup(func() {
		if err := l.halt(); err != nil {
			t.Errorf("ledgerd stopped with %v", err)
		}
	})
	return l
}

// TestClusterLeaderLoss runs ledgerd against a three-node NATS cluster with the LEDGER,
// USAGE and ALERTS streams at three replicas. While the platform publishes usage, the node
// leading LEDGER is stopped, later restarted, then the node leading USAGE is stopped and
// restarted. ledgerd must ride it out on its own (never stop) and at the end every
// balance and every account's version must be exact: nothing lost, nothing charged twice.
func TestClusterLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: three NATS nodes and leader elections")
	}
	started := time.Now()
	cl := startCluster(t, 3)
	cfg := testConfig(t, t.TempDir())
	cfg.NATSURL, cfg.Replicas = cl.urls(), 3
	cfg.NATSAckWait = 5 * time.Second // an ack lost with its leader holds charging up to this long
	l := startLedgerOn(t, cfg)

	admin, err := nats.Connect(cl.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	js, err := natsjs.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{jetstream.StreamName, ingest.UsageStream, alerts.StreamName} {
		// ALERTS is created by the alert publisher as it starts: wait for it and its leader.
		eventually(t, 20*time.Second, func() string {
			s, err := js.Stream(context.Background(), name)
			if err != nil {
				return err.Error()
			}
			if info := s.CachedInfo(); info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
				return fmt.Sprintf("stream %s: replicas %d, cluster %+v; want 3 replicas and a leader", name, info.Config.Replicas, info.Cluster)
			}
			return ""
		})
	}

	const accounts, usagesPerAccount = 6, 250
	for a := range accounts {
		if r := doHTTP(t, "PUT", fmt.Sprintf("%s/v1/accounts/acct-%d", l.base, a), `{"currency":"USD"}`, ""); r.Status != http.StatusCreated {
			t.Fatalf("open account: %d %s", r.Status, r.Body)
		}
	}
	plan, expected := usagePlan(rand.New(rand.NewPCG(3, 4)), accounts, usagesPerAccount, 10)

	var progress atomic.Int64
	pub := &pacedPublisher{url: cl.urls(), jobs: plan, progress: &progress, pause: time.Millisecond}
	done := make(chan struct{})
	go func() { defer close(done); pub.run(t) }()
	waitProgress := func(n int64) {
		t.Helper()
		eventually(t, 45*time.Second, func() string {
			if got := progress.Load(); got < n {
				return fmt.Sprintf("published %d of %d", got, n)
			}
			return ""
		})
	}

	var outages []string
	failOver := func(stream string, at, resume int64) {
		waitProgress(at)
		leader := cl.streamLeader(js, stream)
		headBefore := ledgerHead(t, js)
		stoppedAt := time.Now()
		cl.stop(leader)
		newLeader := cl.streamLeader(js, stream)
		elected := time.Since(stoppedAt)
		eventually(t, 45*time.Second, func() string {
			if h := ledgerHead(t, js); h <= headBefore {
				return fmt.Sprintf("LEDGER still at %d after the loss of the %s leader", h, stream)
			}
			return ""
		})
		resumed := time.Since(stoppedAt)
		waitProgress(resume)
		cl.start(leader)
		outages = append(outages, fmt.Sprintf("%s leader %s stopped: %s elected in %s, charging resumed in %s, %s restarted after %s",
			stream, cl.opts[leader].ServerName, cl.opts[newLeader].ServerName, elected.Round(time.Millisecond),
			resumed.Round(time.Millisecond), cl.opts[leader].ServerName, time.Since(stoppedAt).Round(time.Millisecond)))
	}
	n := int64(len(plan))
	failOver(jetstream.StreamName, n/4, n/2)
	failOver(ingest.UsageStream, 5*n/8, 7*n/8)

	select {
	case <-done:
	case <-time.After(45 * time.Second):
		t.Fatal("the publisher did not finish")
	}
	for a := range accounts {
		account, want := fmt.Sprintf("acct-%d", a), expected[a].Neg()
		eventually(t, 40*time.Second, func() string {
			m := doHTTP(t, "GET", l.base+"/v1/accounts/"+account, "", "").JSON(t)
			got, _ := decimal.NewFromString(fmt.Sprint(m["balance"]))
			if !got.Equal(want) || m["version"] != float64(1+usagesPerAccount) {
				return fmt.Sprintf("%s: balance %v version %v, want %s and %d", account, m["balance"], m["version"], want, 1+usagesPerAccount)
			}
			return ""
		})
	}
	select {
	case err := <-l.stopped:
		t.Fatalf("ledgerd stopped during the leader changes: %v", err)
	default:
	}
	// The stream itself, not only the read models: one event per account opening and
	// per unique usage, replicated to every node again.
	eventually(t, 30*time.Second, func() string {
		s, err := js.Stream(context.Background(), jetstream.StreamName)
		if err != nil {
			return err.Error()
		}
		info := s.CachedInfo()
		if want := uint64(accounts * (1 + usagesPerAccount)); info.State.Msgs != want {
			return fmt.Sprintf("LEDGER holds %d events, want %d", info.State.Msgs, want)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current {
				return fmt.Sprintf("replica %s is not current", r.Name)
			}
		}
		return ""
	})
	for _, o := range outages {
		t.Log(o)
	}
	t.Logf("%d usages on %d accounts exact after 2 leader losses (%d publishes, %d retried by the platform) in %s",
		accounts*usagesPerAccount, accounts, len(plan), pub.retries.Load(), time.Since(started).Round(time.Millisecond))
}

// ledgerHead is the last sequence of LEDGER, or 0 while it cannot be read.
func ledgerHead(t *testing.T, js natsjs.JetStream) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		return 0
	}
	return s.CachedInfo().State.LastSeq
}

// pacedPublisher publishes jobs in order as the telephony platform does: each until
// JetStream acknowledges it, riding out node losses and restarts, counting progress.
type pacedPublisher struct {
	url      string
	jobs     []publishJob
	progress *atomic.Int64
	pause    time.Duration // between publishes, so the run spans the faults
	retries  atomic.Int64
}

func (p *pacedPublisher) run(t *testing.T) {
	nc, err := nats.Connect(p.url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Error(err)
		return
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		t.Error(err)
		return
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, j := range p.jobs {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := js.Publish(ctx, ingest.UsageSubjectPrefix+j.account, []byte(j.body))
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("publishing did not get through within 90 s: %v", err)
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				time.Sleep(20 * time.Millisecond)
			}
			p.retries.Add(1)
		}
		p.progress.Add(1)
		if p.pause > 0 {
			time.Sleep(p.pause)
		}
	}
}

// TestTwoWritersNeverChargeTwice runs two ledgerd instances on one NATS, sharing the
// usage consumer, so that both charge the same accounts at once: what happens when the
// rule "one writer per account" is broken (a partition handed over while its old owner
// still runs). Optimistic concurrency on every append and the deterministic event ids
// must keep every usage charged exactly once; both instances' read models must show the
// exact balances. (Accounts are opened before the second instance starts: a writer learns
// of accounts opened elsewhere only on restart, see docs/cluster.md.)
func TestTwoWritersNeverChargeTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("two ledgerd instances")
	}
	ns, err := jetstream.StartServer(jetstream.ServerConfig{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	const accounts, usagesPerAccount = 6, 300
	cfgA := testConfig(t, t.TempDir())
	cfgA.NATSURL = ns.ClientURL()
	a := startLedgerOn(t, cfgA)
	for i := range accounts {
		if r := doHTTP(t, "PUT", fmt.Sprintf("%s/v1/accounts/acct-%d", a.base, i), `{"currency":"USD"}`, ""); r.Status != http.StatusCreated {
			t.Fatalf("open account: %d %s", r.Status, r.Body)
		}
	}
	cfgB := testConfig(t, t.TempDir())
	cfgB.NATSURL = ns.ClientURL()
	b := startLedgerOn(t, cfgB)

	plan, expected := usagePlan(rand.New(rand.NewPCG(5, 6)), accounts, usagesPerAccount, 5)
	var progress atomic.Int64
	(&pacedPublisher{url: ns.ClientURL(), jobs: plan, progress: &progress}).run(t)
	for _, l := range []*clusterLedger{a, b} {
		for i := range accounts {
			account, want := fmt.Sprintf("acct-%d", i), expected[i].Neg()
			eventually(t, 30*time.Second, func() string {
				m := doHTTP(t, "GET", l.base+"/v1/accounts/"+account, "", "").JSON(t)
				got, _ := decimal.NewFromString(fmt.Sprint(m["balance"]))
				if !got.Equal(want) || m["version"] != float64(1+usagesPerAccount) {
					return fmt.Sprintf("%s at %s: balance %v version %v, want %s and %d", account, l.base, m["balance"], m["version"], want, 1+usagesPerAccount)
				}
				return ""
			})
		}
	}
	// Both must have done part of the charging, or the test proved nothing.
	var shares []string
	for _, l := range []*clusterLedger{a, b} {
		n := metricValue(t, l.base, "ledger_usage_events_ingested_total")
		if n == 0 {
			t.Errorf("ledgerd at %s charged nothing: the writers did not compete", l.base)
		}
		shares = append(shares, fmt.Sprint(n))
	}
	t.Logf("two writers, %d publishes of %d unique usages, handled %s: every usage charged once, both read models exact",
		len(plan), accounts*usagesPerAccount, strings.Join(shares, " + "))
}

// metricValue reads one unlabelled sample from a ledgerd's /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	r := doHTTP(t, "GET", base+"/metrics", "", "")
	for line := range strings.Lines(string(r.Body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// usagePlan is usagesPerAccount usages of random 4-decimal amounts for each of the accounts
// acct-0 ... acct-N, round-robin, about one in resendOneIn published twice (as the platform
// resends), with each account's expected total charge.
func usagePlan(rng *rand.Rand, accounts, usagesPerAccount, resendOneIn int) ([]publishJob, []decimal.Decimal) {
	expected := make([]decimal.Decimal, accounts)
	var plan []publishJob
	for u := range usagesPerAccount {
		for a := range accounts {
			amount := decimal.New(rng.Int64N(100000), -4)
			expected[a] = expected[a].Add(amount)
			account := fmt.Sprintf("acct-%d", a)
			job := publishJob{account: account, body: usageJSON(account, fmt.Sprintf("u-%d", u), amount.StringFixed(4))}
			plan = append(plan, job)
			if rng.IntN(resendOneIn) == 0 {
				plan = append(plan, job)
			}
		}
	}
	return plan, expected
}
