package chaos

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/bench/loadgen"
	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/internal/backoff"
	"github.com/kubernaut/datastorage/internal/tstest/faultproxy"
	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
	"github.com/kubernaut/datastorage/internal/tstest/patroni"
	"github.com/kubernaut/datastorage/wire"
)

// Fault kinds, in the order of the chaos table.
const (
	FaultAgentKill    = "agent kill -9"
	FaultCentralKill  = "central kill -9"
	FaultCentralTerm  = "central SIGTERM restart"
	FaultDatabaseStop = "PostgreSQL fast stop"
	FaultDatabaseCut  = "PostgreSQL cut (proxy)"
	FaultDropResponse = "ack dropped after commit"
	FaultResetRequest = "request reset mid-way"
	FaultStall        = "connection stalled"
	FaultDiskFull     = "agent disk full (tmpfs)"
	FaultCorruptEntry = "corrupt buffer entry"
	FaultResend       = "resend in another partition"
	FaultFailover     = "PostgreSQL failover (Patroni)"
	corruptPerRound   = 2     // a truncated and a bad-checksum entry
	tmpfsSize         = "64m" // the agent keeps 2×memtable+4 MiB free: room to refuse before filling
	diskFullHeadroom  = 64 << 10
)

// ErrLossOrDuplicate is returned by Run when an acknowledged record was
// lost or stored twice, or an agent did not drain.
var ErrLossOrDuplicate = loadgen.ErrLossOrDuplicate

// ErrLedger is a run that lost nothing but whose ledger does not verify.
var ErrLedger = errors.New("chaos: the ledger does not verify")

// FaultKinds is every kind, in table order.
var FaultKinds = []string{FaultAgentKill, FaultCentralKill, FaultCentralTerm, FaultDatabaseStop, FaultDatabaseCut,
	FaultDropResponse, FaultResetRequest, FaultStall, FaultDiskFull, FaultCorruptEntry, FaultResend, FaultFailover}

// Config configures a chaos run. Zero fields take the full run's
// defaults (Short gives the in-suite ones).
type Config struct {
	// RepoRoot is the module's root (scripts/, cmd/). Empty: found by walking
	// up from the working directory to go.mod.
	RepoRoot string
	// BinDir holds prebuilt central and agent binaries. Empty: go build.
	BinDir string
	// DatabaseURL is an admin URL of a cluster this run does not own: the
	// database outage is then simulated by cutting a TCP proxy between the
	// central and PostgreSQL. Empty: a throwaway cluster is started and
	// stopped for real (pg_ctl -m fast) for the outage.
	DatabaseURL string
	// HA runs on a throwaway Patroni cluster (failover.go) instead of a
	// single PostgreSQL, with the central given its multi-host URL; the
	// database fault is then the primary's failover, Failovers times (zero:
	// 1). DatabaseURL must be empty.
	HA          bool
	Failovers   int
	Agents      int     // agent processes (agent 0 buffers on a tmpfs). Zero: 3.
	Controllers int     // writers. Zero: 12.
	Rate        float64 // total writes/s (steady load). Zero: 300.
	// Fault counts. Zero: the full run's (20 agent kills, 5 central kills, 1
	// SIGTERM restart, 1 outage, 2 of each proxy fault, 1 disk full, 1
	// corruption, 3 rounds of resends). Negative: none of that kind.
	AgentKills, CentralKills, CentralTerms, ProxyFaults, DiskFulls, Corruptions, Resends int
	// Outage is how long PostgreSQL stays away. Zero: 30s.
	Outage time.Duration
	// StallFor is how long a stall lasts (beyond the agent's 15 s request
	// timeout, it makes the agent give up and resend). Zero: 20s.
	StallFor time.Duration
	// Gap is the maximum pause between faults (a random fraction of it).
	// Zero: 2s.
	Gap time.Duration
	// DrainTimeout bounds the final drain. Zero: 3m.
	DrainTimeout time.Duration
	Seed         uint64
	Progress     io.Writer
}

// Short is the in-suite run: every fault kind at least once, in well
// under a minute.
func Short() Config {
	return Config{Agents: 2, Controllers: 6, Rate: 150, AgentKills: 3, CentralKills: 1, CentralTerms: 1,
		ProxyFaults: 1, DiskFulls: 1, Corruptions: 1, Resends: 1, Outage: 3 * time.Second, StallFor: 2 * time.Second,
		Gap: 300 * time.Millisecond, DrainTimeout: 60 * time.Second}
}

// withDefaults fills zero fields; a negative fault count means none.
func (c Config) withDefaults() Config {
	c.Agents = cmp.Or(c.Agents, 3)
	c.Controllers = max(cmp.Or(c.Controllers, 12), 0)
	c.AgentKills = max(cmp.Or(c.AgentKills, 20), 0)
	c.CentralKills = max(cmp.Or(c.CentralKills, 5), 0)
	c.CentralTerms = max(cmp.Or(c.CentralTerms, 1), 0)
	c.ProxyFaults = max(cmp.Or(c.ProxyFaults, 2), 0)
	c.DiskFulls = max(cmp.Or(c.DiskFulls, 1), 0)
	c.Corruptions = max(cmp.Or(c.Corruptions, 1), 0)
	c.Resends = max(cmp.Or(c.Resends, 3), 0)
	c.Rate = cmp.Or(c.Rate, 300)
	c.Outage = cmp.Or(c.Outage, 30*time.Second)
	c.StallFor = cmp.Or(c.StallFor, 20*time.Second)
	c.Gap = cmp.Or(c.Gap, 2*time.Second)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 3*time.Minute)
	c.Seed = cmp.Or(c.Seed, 1)
	c.Failovers = max(cmp.Or(c.Failovers, 1), 0)
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Agents < 0 || c.Controllers < 0:
		return errors.New("chaos config: Agents and Controllers must not be negative")
	case c.Rate < 0 || c.Outage < 0 || c.StallFor < 0 || c.Gap < 0 || c.DrainTimeout < 0:
		return errors.New("chaos config: Rate and durations must not be negative")
	case c.HA && c.DatabaseURL != "":
		return errors.New("chaos config: HA starts its own cluster: DatabaseURL must be empty")
	case c.Agents == 1 && c.DiskFulls > 0:
		return errors.New("chaos config: the disk-full fault needs at least 2 agents (agent 0 fills up)")
	}
	return nil
}

// Result is what a chaos run did and found.
type Result struct {
	Faults   map[string]int           `json:"faults"`
	Recovery map[string]time.Duration `json:"recovery_ns"` // longest, by kind
	// Observations: what the faults provoked (errors seen, dead letters).
	Notes      []string              `json:"notes"`
	Verify     *loadgen.Verification `json:"verification"`
	Resent     ResendReport          `json:"resent"`
	Partitions *PartitionReport      `json:"partitions"`
	Ledger     *LedgerReport         `json:"ledger"`
	Drained    bool                  `json:"drained"`
	Seconds    float64               `json:"seconds"`
	OwnCluster bool                  `json:"own_cluster"`
}

// LongestRecovery is the longest time from the end of a fault until a
// probe record written through an agent was in PostgreSQL.
func (r *Result) LongestRecovery() (string, time.Duration) {
	var kind string
	var d time.Duration
	for _, k := range FaultKinds {
		if r.Recovery[k] > d {
			kind, d = k, r.Recovery[k]
		}
	}
	return kind, d
}

// OK reports no loss, no duplicate, every agent drained, every resent
// record still stored once and unchanged, and a ledger that verifies.
func (r *Result) OK() bool {
	return r.Verify != nil && r.Verify.OK() && r.Drained && r.Resent.Changed == 0 && r.Ledger != nil && r.Ledger.OK
}

// WriteTable prints the result as a Markdown table.
func (r *Result) WriteTable(w io.Writer) {
	fmt.Fprintln(w, "| fault | injected | longest recovery |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, k := range FaultKinds {
		if n := r.Faults[k]; n > 0 {
			fmt.Fprintf(w, "| %s | %d | %s |\n", k, n, r.Recovery[k].Round(10*time.Millisecond))
		}
	}
	v := r.Verify
	if v == nil {
		v = &loadgen.Verification{}
	}
	kind, d := r.LongestRecovery()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| acknowledged | stored | lost | duplicated | unacknowledged but stored | agents drained | longest recovery |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	fmt.Fprintf(w, "| %d | %d | %d | %d | %d | %v | %s (%s) |\n", v.Acked, v.Acked-v.Lost, v.Lost, v.Duplicated, v.Unacked,
		r.Drained, d.Round(10*time.Millisecond), kind)
	for _, n := range r.Notes {
		fmt.Fprintln(w, "- "+n)
	}
}

// proc is a restartable child process: its command, and its current run.
type proc struct {
	harness.Command
	run *harness.Process
}

func (p *proc) start(ctx context.Context) error {
	run, err := harness.Start(ctx, p.Command)
	if err != nil {
		return err
	}
	p.run = run
	return nil
}

func (p *proc) exited() bool { return p.run == nil || p.run.Exited() }

// signal sends sig and waits for the exit (SIGKILL after 30s).
func (p *proc) signal(sig syscall.Signal) { _ = p.run.Stop(sig, 30*time.Second) }

// env is one chaos run's world.
type env struct {
	cfg            Config
	rng            *rand.Rand
	dsn            string
	cluster        *loadgen.Cluster // nil: not ours (the outage is a proxy cut), or HA
	ha             *patroni.Cluster // Config.HA: the failover is the database fault
	pgProxy        *faultproxy.Proxy
	central        *proc
	agents         []*proc
	agentURL       []string
	agentSA        []string
	metrics        []string // agents' metrics URLs
	centralMetrics string
	proxies        []*faultproxy.Proxy
	tmpfs          string
	res            *Result
	run            *loadgen.Run
	probes         int
	mu             sync.Mutex
	// measureFrom, set by a fault, is when its recovery starts (zero: when
	// the fault returns).
	measureFrom time.Time

	// The ledger's checkpoints (ledger.go).
	checkpointFile string
	checkpointPub  ed25519.PublicKey

	// Partitions and the resend fault (partitions.go, resend.go).
	history, ownEnd time.Time // the history partition's end; the end of the run's own daily ones
	centralURL      string
	agentToken      []string // the token agent j forwards with
	pool            *ackPool
	resent          []resentRecord
	resentIDs       map[string]struct{}
}

// Run runs the fault-injection scenario and verifies exactly-once
// delivery. The error is ErrLossOrDuplicate (with the result) when an
// acknowledged record was lost or stored twice, or an agent did not drain.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	began := time.Now()
	ws, err := loadgen.NewWorkspace(ctx, "chaos", cfg.RepoRoot, cfg.BinDir, cfg.Progress)
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	cfg.RepoRoot = ws.Root
	work, bins := ws.Dir, ws.Bins
	e := &env{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 7)),
		res:  &Result{Faults: map[string]int{}, Recovery: map[string]time.Duration{}},
		pool: newAckPool(keptAcks), resentIDs: map[string]struct{}{}}
	defer e.close()

	if cfg.DiskFulls > 0 {
		e.tmpfs = filepath.Join(work, "tmpfs")
		if err := mountTmpfs(ctx, e.tmpfs); err != nil {
			return nil, err
		}
	}
	admin := cfg.DatabaseURL
	if cfg.HA {
		if admin, err = e.startHA(ctx); err != nil {
			return nil, err
		}
	}
	if admin == "" {
		fmt.Fprintln(cfg.Progress, "chaos: starting a throwaway PostgreSQL (scripts/pg-cluster.sh)")
		cl, err := loadgen.StartCluster(ctx, cfg.RepoRoot)
		if err != nil {
			return nil, err
		}
		e.cluster = cl
		e.res.OwnCluster = true
	}
	if e.cluster != nil {
		admin = e.cluster.AdminURL
	}
	dsn, drop, err := loadgen.CreateDatabase(ctx, admin, "chaos")
	if err != nil {
		return nil, err
	}
	defer drop()
	e.dsn = dsn
	// Daily partitions around now, arranged before the central serves.
	if err := migrate(ctx, bins.Central, dsn); err != nil {
		return nil, err
	}
	if e.history, err = dailyPartitions(ctx, dsn, time.Now()); err != nil {
		return nil, err
	}
	e.ownEnd = e.history.AddDate(0, 0, historyDays+1)
	if err := e.deploy(ctx, work, bins); err != nil {
		return nil, err
	}

	// Steady load through the agents, while the faults run.
	t := loadgen.Target{Name: "chaos", URLs: e.agentURL,
		IDSA: func(i int) string { return e.agentSA[i%len(e.agentSA)] }}
	e.run = loadgen.NewRun(t)
	e.run.OnAck = func(ctrl int, rec wire.Record) { e.pool.put(acked{rec: rec, agent: ctrl % len(e.agentURL)}) }
	loadCfg := loadgen.Config{Controllers: cfg.Controllers, RepeatFraction: 0.8, AlertTexts: 200, Seed: cfg.Seed,
		EventTimeSpread: eventSpread}
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		_ = loadgen.Drive(loadCtx, loadCfg, t, 24*time.Hour, cfg.Rate, nil, e.run)
		close(loadDone)
	}()
	faultErr := e.inject(ctx)
	stopLoad()
	<-loadDone
	if faultErr != nil {
		return e.res, faultErr
	}

	// Drain: every agent empty, then verify.
	fmt.Fprintf(cfg.Progress, "chaos: load stopped (%d acknowledged); draining\n", e.run.Accepted.Load())
	e.res.Drained = e.waitDrained(ctx, cfg.DrainTimeout)
	v, err := loadgen.Verify(ctx, dsn, e.run)
	if err != nil {
		return e.res, err
	}
	e.res.Verify = v
	if e.ha != nil {
		if err := e.rejoined(ctx); err != nil {
			return e.res, fmt.Errorf("chaos: after the failovers: %w", err)
		}
	}
	if err := e.checkResent(ctx); err != nil {
		return e.res, err
	}
	if e.res.Partitions, err = inspectPartitions(ctx, dsn, e.ownEnd); err != nil {
		return e.res, err
	}
	e.note(e.res.Partitions.note())
	if e.res.Ledger, err = checkLedger(ctx, dsn, e.checkpointFile, e.checkpointPub, 30*time.Second); err != nil {
		return e.res, fmt.Errorf("ledger: %w", err)
	}
	e.note(e.res.Ledger.note())
	e.res.Seconds = time.Since(began).Seconds()
	e.observe()
	if !e.res.OK() {
		if e.res.Ledger != nil && !e.res.Ledger.OK && e.res.Verify.OK() && e.res.Drained && e.res.Resent.Changed == 0 {
			return e.res, ErrLedger
		}
		return e.res, ErrLossOrDuplicate
	}
	return e.res, e.res.Partitions.check(e.ownEnd)
}

func mountTmpfs(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "mount", "-t", "tmpfs", "-o", "size="+tmpfsSize, "tmpfs", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chaos: the disk-full fault needs a small tmpfs for an agent's buffer, and "+
			"`mount -t tmpfs -o size=%s tmpfs %s` failed (run as root, or in a container with CAP_SYS_ADMIN; "+
			"or set DiskFulls to -1 to leave that fault out): %w: %s", tmpfsSize, dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (e *env) close() {
	var runs []*harness.Process
	for _, p := range append([]*proc{e.central}, e.agents...) {
		if p != nil {
			runs = append(runs, p.run)
		}
	}
	harness.StopAll(syscall.SIGKILL, 30*time.Second, runs...)
	for _, p := range e.proxies {
		p.Close()
	}
	if e.pgProxy != nil {
		e.pgProxy.Close()
	}
	if e.tmpfs != "" {
		_ = exec.Command("umount", e.tmpfs).Run()
	}
	if e.cluster != nil {
		e.cluster.Close()
	}
	if e.ha != nil {
		e.ha.Close()
	}
}

// deploy starts the central (behind a proxy to PostgreSQL when the cluster
// is not ours) and the agents, each behind its own proxy to the central.
func (e *env) deploy(ctx context.Context, work string, bins harness.Binaries) error {
	dir := filepath.Join(work, "deploy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var tokens [4]string
	tokenFile, authzFile, err := loadgen.WriteCredentials(dir, &tokens)
	if err != nil {
		return err
	}
	centralDSN := e.dsn
	if e.cfg.DatabaseURL != "" {
		if centralDSN, err = e.proxyDatabase(); err != nil {
			return err
		}
	}
	checkpointKey, pub, err := checkpointKey(dir)
	if err != nil {
		return err
	}
	e.checkpointFile, e.checkpointPub = filepath.Join(dir, "checkpoints.jsonl"), pub
	api, _ := freeport.Free()
	metricsAddr, _ := freeport.Free()
	e.central = &proc{Command: harness.Command{Name: "central", Path: bins.Central, Env: []string{"DATABASE_URL=" + centralDSN},
		Args: []string{"serve", "--listen", api, "--metrics-listen", metricsAddr, "--auth", "static", "--token-file", tokenFile,
			"--authz-file", authzFile, "--rate-limit", "1000000000", "--rate-burst", "100000", "--log-level", "warn",
			"--shutdown-timeout", "5s", "--partition-period", "day", "--partitions-ahead", strconv.Itoa(partitionsAhead),
			"--partition-check-interval", partitionInterval.String(),
			"--checkpoint-key-file", checkpointKey, "--checkpoint-file", e.checkpointFile, "--checkpoint-interval", "1s"},
		Ready: "http://" + api + "/readyz"}}
	e.centralURL = "http://" + api
	e.centralMetrics = "http://" + metricsAddr + "/metrics"
	if err := e.central.start(ctx); err != nil {
		return err
	}
	for j := range e.cfg.Agents {
		wr := loadgen.Writers[j%4]
		tokFile := filepath.Join(dir, "agent-token-"+strconv.Itoa(j))
		token := loadgen.SAToken(wr.ServiceAccount, j%4)
		if err := os.WriteFile(tokFile, []byte(token), 0o600); err != nil {
			return err
		}
		e.agentToken = append(e.agentToken, token)
		px, err := faultproxy.Start(api)
		if err != nil {
			return err
		}
		e.proxies = append(e.proxies, px)
		data := filepath.Join(dir, "agent-data-"+strconv.Itoa(j))
		if j == 0 && e.tmpfs != "" {
			data = filepath.Join(e.tmpfs, "agent-data-0")
		}
		listen, _ := freeport.Free()
		am, _ := freeport.Free()
		p := &proc{Command: harness.Command{Name: "agent-" + strconv.Itoa(j), Path: bins.Agent,
			Args: []string{"--listen", listen, "--metrics-listen", am, "--central-url", "http://" + px.Addr(), "--insecure",
				"--token-file", tokFile, "--data-dir", data, "--log-level", "warn", "--linger", "50ms",
				"--max-buffer-bytes", strconv.Itoa(64 << 20), "--shutdown-grace", "3s"},
			Ready: "http://" + listen + "/readyz"}}
		if err := p.start(ctx); err != nil {
			return err
		}
		e.agents = append(e.agents, p)
		e.agentURL = append(e.agentURL, "http://"+listen)
		e.agentSA = append(e.agentSA, wr.QualifiedSA())
		e.metrics = append(e.metrics, "http://"+am+"/metrics")
	}
	return nil
}

// proxyDatabase puts a proxy between the central and PostgreSQL and returns
// the DSN through it.
func (e *env) proxyDatabase() (string, error) {
	cfg, err := pgx.ParseConfig(e.dsn)
	if err != nil {
		return "", err
	}
	hostPort := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	px, err := faultproxy.Start(hostPort)
	if err != nil {
		return "", err
	}
	e.pgProxy = px
	return strings.Replace(e.dsn, hostPort, px.Addr(), 1), nil
}

type fault struct {
	kind string
	do   func(ctx context.Context) (agent int, err error) // inject, heal; returns the agent to probe through
}

// inject runs every fault once per count, shuffled, with random gaps, and
// measures each one's recovery.
func (e *env) inject(ctx context.Context) error {
	cfg := e.cfg
	var plan []fault
	add := func(n int, kind string, do func(context.Context) (int, error)) {
		for range n {
			plan = append(plan, fault{kind, do})
		}
	}
	add(cfg.AgentKills, FaultAgentKill, e.killAgent)
	add(cfg.CentralKills, FaultCentralKill, func(ctx context.Context) (int, error) { return -1, e.restartCentral(ctx, syscall.SIGKILL) })
	add(cfg.CentralTerms, FaultCentralTerm, func(ctx context.Context) (int, error) { return -1, e.restartCentral(ctx, syscall.SIGTERM) })
	switch {
	case e.ha != nil:
		add(cfg.Failovers, FaultFailover, e.failover)
	case e.cluster != nil:
		add(1, FaultDatabaseStop, e.stopDatabase)
	default:
		add(1, FaultDatabaseCut, e.cutDatabase)
	}
	add(cfg.ProxyFaults, FaultDropResponse, func(ctx context.Context) (int, error) { return e.proxyFault(ctx, faultproxy.DropResponse) })
	add(cfg.ProxyFaults, FaultResetRequest, func(ctx context.Context) (int, error) { return e.proxyFault(ctx, faultproxy.ResetRequest) })
	add(cfg.ProxyFaults, FaultStall, func(ctx context.Context) (int, error) { return e.proxyFault(ctx, faultproxy.Stall) })
	add(cfg.DiskFulls, FaultDiskFull, e.diskFull)
	add(cfg.Corruptions, FaultCorruptEntry, e.corrupt)
	add(cfg.Resends, FaultResend, e.resendElsewhere)
	e.rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })

	time.Sleep(cfg.Gap) // load first
	for i, f := range plan {
		if err := ctx.Err(); err != nil {
			return err
		}
		fmt.Fprintf(cfg.Progress, "chaos: [%d/%d] %s (acknowledged so far %d)\n", i+1, len(plan), f.kind, e.run.Accepted.Load())
		agent, err := f.do(ctx)
		if err != nil {
			return fmt.Errorf("chaos: %s: %w", f.kind, err)
		}
		healed := time.Now()
		if !e.measureFrom.IsZero() {
			healed, e.measureFrom = e.measureFrom, time.Time{}
		}
		if agent < 0 {
			agent = e.rng.IntN(len(e.agents))
		}
		if err := e.probe(ctx, agent, 2*time.Minute); err != nil {
			return fmt.Errorf("chaos: no recovery after %s: %w", f.kind, err)
		}
		rec := time.Since(healed)
		e.res.Faults[f.kind]++
		e.res.Recovery[f.kind] = max(e.res.Recovery[f.kind], rec)
		fmt.Fprintf(cfg.Progress, "chaos:        recovered in %s\n", rec.Round(time.Millisecond))
		time.Sleep(time.Duration(e.rng.Int64N(int64(cfg.Gap) + 1)))
	}
	return nil
}

// probe writes a record through agent j (retrying while it refuses) and
// waits until it is in PostgreSQL; it counts as an acknowledged record.
func (e *env) probe(ctx context.Context, j int, within time.Duration) error {
	e.mu.Lock()
	e.probes++
	key := "chaos-probe-" + strconv.Itoa(e.probes)
	e.mu.Unlock()
	c, err := client.New(client.Config{BaseURL: e.agentURL[j], MaxRetries: -1})
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	id := wire.IDForKey(e.agentSA[j], wire.KindWorkflow, key)
	e.run.Expect(id)
	deadline := time.Now().Add(within)
	for {
		wctx, cancel := context.WithTimeout(client.WithIdempotencyKey(ctx, key), 5*time.Second)
		resp, err := c.WriteWorkflowAudit(wctx, &wire.WorkflowAudit{WorkflowID: key, StepName: "probe", StepStatus: "completed"})
		cancel()
		if err == nil {
			e.run.Acked(resp.AuditID, time.Now())
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("probe through %s: %w", e.agents[j].Name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The database may still be away (a failover): connect again until
	// the deadline.
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		if conn == nil {
			conn, _ = pgx.Connect(ctx, e.dsn)
		}
		if conn != nil {
			var n int
			err := conn.QueryRow(ctx, `SELECT count(*) FROM workflow_audit WHERE id = $1`, id).Scan(&n)
			if err == nil && n > 0 {
				return nil
			}
			if err != nil {
				conn.Close(context.WithoutCancel(ctx))
				conn = nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("probe %s not in PostgreSQL after %s", id, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) killAgent(ctx context.Context) (int, error) {
	j := e.rng.IntN(len(e.agents))
	time.Sleep(time.Duration(e.rng.Int64N(int64(200 * time.Millisecond)))) // a random moment
	e.agents[j].signal(syscall.SIGKILL)
	return j, e.agents[j].start(ctx)
}

func (e *env) restartCentral(ctx context.Context, sig syscall.Signal) error {
	e.central.signal(sig)
	return e.central.start(ctx)
}

func (e *env) stopDatabase(ctx context.Context) (int, error) {
	if err := e.cluster.Stop(ctx); err != nil {
		return -1, err
	}
	time.Sleep(e.cfg.Outage)
	return -1, e.cluster.Start(ctx)
}

func (e *env) cutDatabase(ctx context.Context) (int, error) {
	e.pgProxy.SetDown(true)
	backoff.Sleep(ctx, e.cfg.Outage, nil)
	e.pgProxy.SetDown(false)
	return -1, nil
}

// proxyFault applies f between one agent and the central while records flow.
func (e *env) proxyFault(ctx context.Context, f faultproxy.Fault) (int, error) {
	j := e.rng.IntN(len(e.agents))
	px := e.proxies[j]
	before := px.Injected(f)
	px.SetFault(f)
	hold := 3 * time.Second
	if f == faultproxy.Stall {
		hold = e.cfg.StallFor
	}
	// Hold the fault until it acted at least once (the agent forwards
	// every linger), or for hold.
	deadline := time.Now().Add(hold)
	for time.Now().Before(deadline) && (f == faultproxy.Stall || px.Injected(f) == before) {
		backoff.Sleep(ctx, 20*time.Millisecond, nil)
	}
	px.SetFault(faultproxy.None)
	if px.Injected(f) == before {
		return j, fmt.Errorf("%s never acted on %s's traffic", f, e.agents[j].Name)
	}
	return j, nil
}

// diskFull fills agent 0's tmpfs until the agent refuses writes, holds it
// full for a moment, then frees it.
func (e *env) diskFull(ctx context.Context) (int, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(e.tmpfs, &st); err != nil {
		return 0, err
	}
	free := int64(st.Bavail) * st.Bsize
	filler := filepath.Join(e.tmpfs, "filler")
	f, err := os.Create(filler)
	if err != nil {
		return 0, err
	}
	chunk := make([]byte, 64<<10)
	var written int64
	for written < free-diskFullHeadroom {
		n, err := f.Write(chunk[:min(int64(len(chunk)), free-diskFullHeadroom-written)])
		written += int64(n)
		if err != nil {
			break // already full
		}
	}
	_ = f.Close()
	// Write through agent 0 until it refuses (ENOSPC inside), at most 10s.
	c, err := client.New(client.Config{BaseURL: e.agentURL[0], MaxRetries: -1})
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	refused, crashed := "", false
	deadline := time.Now().Add(10 * time.Second)
	pad := strings.Repeat("disk full ", 3000)
	for i := 0; time.Now().Before(deadline); i++ {
		e.mu.Lock()
		e.probes++
		key := "chaos-diskfull-" + strconv.Itoa(e.probes)
		e.mu.Unlock()
		e.run.Expect(wire.IDForKey(e.agentSA[0], wire.KindRemediation, key))
		resp, err := c.WriteRemediationAudit(client.WithIdempotencyKey(ctx, key), &wire.RemediationAudit{RemediationRequestID: key, Reasoning: pad})
		if err != nil {
			refused = loadgen.ErrorClass(err)
			break
		}
		e.run.Acked(resp.AuditID, time.Now())
	}
	backoff.Sleep(ctx, 500*time.Millisecond, nil)
	if e.agents[0].exited() {
		crashed = true
	}
	_ = os.Remove(filler)
	e.note(fmt.Sprintf("disk full: agent-0 answered %q once its tmpfs was full; crashed: %v", refused, crashed))
	if refused == "" {
		return 0, errors.New("agent-0 never refused a write with its disk full")
	}
	if crashed {
		// A full disk must be an explicit 503, never a dead agent.
		return 0, fmt.Errorf("agent-0 died with its disk full: %s", crashCause(e.agents[0].run.Logs()))
	}
	return 0, nil
}

// corrupt stops an agent, writes a truncated and a bad-checksum entry into
// its Badger store after everything it holds, restarts it, and checks that
// both are counted as corrupt dead letters while it keeps running.
func (e *env) corrupt(ctx context.Context) (int, error) {
	j := len(e.agents) - 1
	a := e.agents[j]
	before := e.metric(j, `agent_queue_deadlettered_total{reason="corrupt"}`)
	a.signal(syscall.SIGKILL)
	dir := a.Args[indexOf(a.Args, "--data-dir")+1]
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		return j, fmt.Errorf("open %s's store: %w", a.Name, err)
	}
	seq := uint64(time.Now().UnixNano())
	key := func(s uint64) []byte {
		k := make([]byte, 9)
		k[0] = 'q'
		binary.BigEndian.PutUint64(k[1:], s)
		return k
	}
	err = db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(key(seq), []byte{1, 0xde}); err != nil { // truncated: shorter than its header
			return err
		}
		return txn.Set(key(seq+1), append([]byte{1, 0, 0, 0, 0}, `{"id":"audit-x","kind":"workflow"}`...)) // bad checksum
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return j, fmt.Errorf("write corrupt entries: %w", err)
	}
	if err := a.start(ctx); err != nil {
		return j, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.metric(j, `agent_queue_deadlettered_total{reason="corrupt"}`) < before+corruptPerRound {
		if time.Now().After(deadline) {
			return j, fmt.Errorf("%s did not count its corrupt entries as dead letters", a.Name)
		}
		backoff.Sleep(ctx, 50*time.Millisecond, nil)
	}
	if a.exited() {
		return j, fmt.Errorf("%s stopped after meeting corrupt entries", a.Name)
	}
	return j, nil
}

// crashCause is the first line of a Go crash in a child's log.
func crashCause(log string) string {
	for _, m := range []string{"unexpected fault", "fatal error:", "panic:", "SIGBUS", "\"level\":\"fatal\"", "\"level\":\"error\""} {
		if i := strings.Index(log, m); i >= 0 {
			line := log[i:]
			if k := strings.IndexByte(line, '\n'); k >= 0 {
				line = line[:k]
			}
			return strings.TrimSpace(line)
		}
	}
	return "(no crash message in its log)"
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// metric reads one sample of agent j's /metrics (0 when absent).
func (e *env) metric(j int, name string) float64 {
	return scrape(e.metrics[j], func(sample string) bool { return sample == name })
}

// scrape sums the samples of url's /metrics whose name and labels match.
func scrape(url string, match func(sample string) bool) float64 {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.LastIndexByte(l, ' '); i > 0 && match(l[:i]) {
			v, _ := strconv.ParseFloat(strings.TrimSpace(l[i+1:]), 64)
			sum += v
		}
	}
	return sum
}

// waitDrained waits until every agent's buffer is empty.
func (e *env) waitDrained(ctx context.Context, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		left := 0.0
		for j := range e.agents {
			left += e.metric(j, "agent_queue_buffered_records")
		}
		if left == 0 && e.allReady() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Fprintf(e.cfg.Progress, "chaos: %v records still buffered after %s\n", left, within)
			return false
		}
		backoff.Sleep(ctx, 100*time.Millisecond, nil)
	}
}

func (e *env) allReady() bool {
	for _, a := range e.agents {
		if a.exited() {
			return false
		}
	}
	return true
}

// observe notes what the run provoked: errors the writers saw, and each
// agent's dead letters.
func (e *env) observe() {
	var errs []string
	for k, v := range e.run.Errors() {
		errs = append(errs, fmt.Sprintf("%s ×%d", k, v))
	}
	if len(errs) > 0 {
		e.note("writers' failed attempts (not acknowledged, may be stored): " + strings.Join(sorted(errs), ", "))
	}
	for j := range e.agents {
		if d := e.metric(j, "agent_queue_deadletter_records"); d > 0 {
			e.note(fmt.Sprintf("%s holds %v dead letters (corrupt entries written by the run)", e.agents[j].Name, d))
		}
	}
}

func sorted(s []string) []string {
	for i := 1; i < len(s); i++ {
		for k := i; k > 0 && s[k] < s[k-1]; k-- {
			s[k], s[k-1] = s[k-1], s[k]
		}
	}
	return s
}

func (e *env) note(s string) {
	e.mu.Lock()
	e.res.Notes = append(e.res.Notes, s)
	e.mu.Unlock()
}
