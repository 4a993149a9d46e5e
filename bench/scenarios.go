package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/time/rate"

	"github.com/kubernaut/datastorage/bench/loadgen"
	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
)

func postgresVersion(ctx context.Context, admin string) string {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "unknown"
	}
	defer conn.Close(ctx)
	var v, vec string
	_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&v)
	_ = conn.QueryRow(ctx, "SELECT coalesce((SELECT default_version FROM pg_available_extensions WHERE name='vector'),'?')").Scan(&vec)
	return "PostgreSQL " + v + ", pgvector " + vec
}

func f64(v float64) *float64 { return &v }
func i64(v int64) *int64     { return &v }

func (e *env) bareHTTP(ctx context.Context, _ *Results) (*ScenarioResult, error) {
	addr, stop, err := bareServer()
	if err != nil {
		return nil, err
	}
	defer stop()
	t := target{Target: loadgen.Target{Name: "bare", URLs: []string{"http://" + addr}}}
	return e.load(ctx, ScenarioBareHTTP, "limit: fasthttp handler answering 201, in the bench process, same client and controllers", t, nil, 0)
}

func (e *env) copy(ctx context.Context, _ *Results) (*ScenarioResult, error) {
	dsn, drop, err := loadgen.CreateDatabase(ctx, e.admin, "copy")
	if err != nil {
		return nil, err
	}
	defer drop()
	fmt.Fprintf(e.cfg.Progress, "%-16s COPY %d rows…\n", ScenarioCopy, e.cfg.CopyRows)
	w := newProcWatch(e.postmaster, nil)
	n, d, err := copyLimit(ctx, e.cfg, e.bins.Central, dsn)
	if err != nil {
		return nil, err
	}
	rate := float64(n) / d.Seconds()
	return &ScenarioResult{Name: ScenarioCopy, Seconds: d.Seconds(),
		Description: fmt.Sprintf("limit: binary COPY of %d rows of the same mix into the migrated audit tables (indexes included), %d rows per transaction, one connection", n, copyBatch),
		Accepted:    int64(n), AcceptedPerSec: rate, Persisted: i64(int64(n)), PersistedPerSec: f64(rate), Procs: w.end()}, nil
}

func (e *env) vectorCopy(ctx context.Context, _ *Results) (*ScenarioResult, error) {
	dsn, drop, err := loadgen.CreateDatabase(ctx, e.admin, "vector")
	if err != nil {
		return nil, err
	}
	defer drop()
	fmt.Fprintf(e.cfg.Progress, "%-16s COPY 768-d vectors into an HNSW table for %s…\n", ScenarioVectorCopy, e.cfg.VectorDuration)
	w := newProcWatch(e.postmaster, nil)
	n, d, err := vectorCopyLimit(ctx, e.cfg, dsn)
	if err != nil {
		return nil, err
	}
	rate := float64(n) / d.Seconds()
	return &ScenarioResult{Name: ScenarioVectorCopy, Seconds: d.Seconds(),
		Description: fmt.Sprintf("limit: binary COPY of %d hash embeddings (768-d) of the same mix into audit_embeddings with its HNSW index, %d per COPY", n, vectorBatch),
		Accepted:    int64(n), AcceptedPerSec: rate, Embedded: i64(int64(n)), EmbeddedPerSec: f64(rate), Procs: w.end()}, nil
}

func (e *env) naive(ctx context.Context, _ *Results) (*ScenarioResult, error) {
	dsn, drop, err := loadgen.CreateDatabase(ctx, e.admin, "naive")
	if err != nil {
		return nil, err
	}
	defer drop()
	if err := migrate(ctx, e.bins.Central, dsn); err != nil {
		return nil, err
	}
	n, err := startNaive(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer n.close()
	t := target{Target: loadgen.Target{Name: "naive", URLs: []string{"http://" + n.addr}}, dsn: dsn, embTable: "naive_audit_embeddings"}
	return e.load(ctx, ScenarioNaive, "the spec's design in the bench process: per request INSERT row, embed, INSERT vector into the HNSW table, then 201 (no auth)", t, nil, 0)
}

// deployment is a central, optionally with agents, on a fresh database.
type deployment struct {
	dsn      string
	central  string
	children []*harness.Process
	drop     func()
	tokens   [4]string // static tokens of the four writers
	agentSA  []string  // agent j forwards as agentSA[j]
	agents   []string  // agent base URLs
}

func (d *deployment) close() {
	harness.StopAll(syscall.SIGTERM, 15*time.Second, d.children...)
	d.drop()
}

// ledgerOn and ledgerOff start a deployment's central with its ledger, as
// deployed, or without (--ledger=false), which exists to price the ledger.
const ledgerOn, ledgerOff = true, false

func (e *env) deploy(ctx context.Context, label string, agents int, ledger bool) (*deployment, error) {
	dsn, drop, err := loadgen.CreateDatabase(ctx, e.admin, label)
	if err != nil {
		return nil, err
	}
	d := &deployment{dsn: dsn, drop: drop}
	dir, err := os.MkdirTemp(e.work, label+"-")
	if err != nil {
		drop()
		return nil, err
	}
	tokens, authzFile, err := loadgen.WriteCredentials(dir, &d.tokens)
	if err != nil {
		d.close()
		return nil, err
	}
	api, _ := freeport.Free()
	metricsAddr, _ := freeport.Free()
	d.central = "http://" + api
	c, err := harness.Start(ctx, harness.Command{Name: "central", Path: e.bins.Central, Env: []string{"DATABASE_URL=" + dsn},
		Args: []string{"serve", "--listen", api, "--metrics-listen", metricsAddr, "--auth", "static", "--token-file", tokens,
			"--authz-file", authzFile, "--rate-limit", "1000000000", "--rate-burst", "100000",
			// A read budget no reader of the bench reaches: sidecar-reads
			// measures the reads' cost to the writes, not the budget.
			"--read-rate", "1000000000", "--read-burst", "100000", "--log-level", "warn",
			// Always given: a DATASTORAGE_LEDGER in this environment must
			// not change what the -noledger pairs compare.
			"--ledger=" + strconv.FormatBool(ledger)},
		Ready: d.central + "/readyz"})
	if err != nil {
		d.close()
		return nil, err
	}
	d.children = append(d.children, c)
	for j := range agents {
		wr := loadgen.Writers[j%4]
		tokFile := filepath.Join(dir, "agent-token-"+strconv.Itoa(j))
		if err := os.WriteFile(tokFile, []byte(loadgen.SAToken(wr.ServiceAccount, j%4)), 0o600); err != nil {
			d.close()
			return nil, err
		}
		listen, _ := freeport.Free()
		am, _ := freeport.Free()
		a, err := harness.Start(ctx, harness.Command{Name: "agent-" + strconv.Itoa(j), Path: e.bins.Agent,
			Args: []string{"--listen", listen, "--metrics-listen", am, "--central-url", d.central, "--insecure",
				"--token-file", tokFile, "--data-dir", filepath.Join(dir, "agent-data-"+strconv.Itoa(j)), "--log-level", "warn"},
			Ready: "http://" + listen + "/readyz"})
		if err != nil {
			d.close()
			return nil, err
		}
		d.children = append(d.children, a)
		d.agents = append(d.agents, "http://"+listen)
		d.agentSA = append(d.agentSA, wr.QualifiedSA())
	}
	return d, nil
}

// scenarioFunc runs one scenario; res holds those that ran before it.
type scenarioFunc func(ctx context.Context, res *Results) (*ScenarioResult, error)

// withLedger is scenario's name and a note for its description, or with
// ledgerOff its -noledger twin's.
func withLedger(scenario string, ledger bool) (name, note string) {
	if ledger {
		return scenario, ""
	}
	return noLedgerTwin[scenario], ", the central with --ledger=false (no ledger entries)"
}

// direct is the direct scenario, with the central's ledger on or off.
func (e *env) direct(ledger bool) scenarioFunc {
	name, note := withLedger(ScenarioDirect, ledger)
	return func(ctx context.Context, _ *Results) (*ScenarioResult, error) {
		d, err := e.deploy(ctx, name, 0, ledger)
		if err != nil {
			return nil, err
		}
		defer d.close()
		t := target{Target: loadgen.Target{Name: "direct", URLs: []string{d.central}, Tokens: d.tokens,
			IDSA: func(i int) string { return loadgen.Writers[i%4].QualifiedSA() }}, dsn: d.dsn}
		return e.load(ctx, name, fmt.Sprintf("%d controllers → central single-record API → PostgreSQL, each writer with its own service-account token%s", e.cfg.Controllers, note), t, d.children, 0)
	}
}

func (e *env) sidecarTarget(d *deployment) target {
	return target{Target: loadgen.Target{Name: "sidecar", URLs: d.agents,
		IDSA: func(i int) string { return d.agentSA[i%len(d.agentSA)] }}, dsn: d.dsn}
}

// sidecar is the sidecar scenario, with the central's ledger on or off.
func (e *env) sidecar(ledger bool) scenarioFunc {
	name, note := withLedger(ScenarioSidecar, ledger)
	return func(ctx context.Context, _ *Results) (*ScenarioResult, error) {
		d, err := e.deploy(ctx, name, e.cfg.Agents, ledger)
		if err != nil {
			return nil, err
		}
		defer d.close()
		return e.load(ctx, name, fmt.Sprintf("%d controllers → %d agents (fsync, batch, forward) → central → PostgreSQL, closed loop%s", e.cfg.Controllers, e.cfg.Agents, note),
			e.sidecarTarget(d), d.children, 0)
	}
}

func (e *env) sidecarReads(ctx context.Context, _ *Results) (*ScenarioResult, error) {
	d, err := e.deploy(ctx, "sidecar_reads", e.cfg.Agents, ledgerOn)
	if err != nil {
		return nil, err
	}
	defer d.close()
	t := e.sidecarTarget(d)
	t.reads = &readTarget{url: d.central, token: loadgen.ReaderToken, rate: e.cfg.ReadRate}
	return e.load(ctx, ScenarioSidecarReads, fmt.Sprintf("as sidecar, while %d readers as %s/%s read the central at %g reads/s in all: "+
		"the newest %d remediation audits under one filter (cluster, namespace, alertName, remediationRequestID, actionType or status, "+
		"values from acknowledged records), sometimes 1–2 more pages by nextCursor, and timelines of remediations those pages named",
		readers, loadgen.Namespace, loadgen.ReaderSA, e.cfg.ReadRate, readPageSize), t, d.children, 0)
}

func (e *env) sidecarHalf(ctx context.Context, res *Results) (*ScenarioResult, error) {
	peak := res.scenario(ScenarioSidecar)
	if peak == nil || peak.AcceptedPerSec == 0 {
		fmt.Fprintf(e.cfg.Progress, "%-16s skipped: needs the sidecar scenario's peak rate\n", ScenarioSidecarHalf)
		return nil, nil
	}
	rate := peak.AcceptedPerSec / 2
	d, err := e.deploy(ctx, "sidecar_half", e.cfg.Agents, ledgerOn)
	if err != nil {
		return nil, err
	}
	defer d.close()
	r, err := e.load(ctx, ScenarioSidecarHalf, fmt.Sprintf("as sidecar, paced to half its peak accepted rate (%.0f/s)", rate), e.sidecarTarget(d), d.children, rate)
	if r != nil {
		r.TargetRate = rate
	}
	return r, err
}

// target is where a load scenario sends its records, and where they land.
type target struct {
	loadgen.Target
	// dsn is the database the records land in; "" when none (bare HTTP).
	dsn string
	// embTable counts embedded records; "": the central's, if any.
	embTable string
	// reads, when set, reads the history back while the load runs.
	reads *readTarget
}

// readTarget is where a reader reads while the load runs.
type readTarget struct {
	url, token string
	rate       float64 // reads per second, all readers together
}

// load drives t, waits for the acknowledged records to reach PostgreSQL,
// verifies them and measures everything.
func (e *env) load(ctx context.Context, name, desc string, t target, children []*harness.Process, limit float64) (*ScenarioResult, error) {
	cfg := e.cfg
	watch := newProcWatch(e.postmaster, children)
	start := time.Now()
	var p *poller
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	pollDone := make(chan error, 1)
	var sample chan loadgen.Ack
	if t.dsn != "" {
		p = newPoller(t.dsn, start)
		p.embTable = t.embTable
		sample = p.samples
		go func() { pollDone <- p.run(pctx) }()
	} else {
		close(pollDone)
	}
	persisted := func() int64 {
		if p == nil {
			return 0
		}
		return p.persisted.Load()
	}
	// The live line while the load runs.
	run := loadgen.NewRun(t.Target)
	done := make(chan struct{})
	progressDone := make(chan struct{})
	go func() { progress(cfg.Progress, name, start, &run.Accepted, persisted, done); close(progressDone) }()
	stopReads := func() *ReadStats { return nil }
	if t.reads != nil {
		run.Recent = loadgen.NewRecent(cfg.Controllers)
		var err error
		if stopReads, err = startReads(ctx, t.reads, run.Recent, cfg.Seed); err != nil {
			return nil, err
		}
	}
	err := loadgen.Drive(ctx, cfg.load(), t.Target, cfg.Duration, limit, sample, run)
	reads := stopReads()
	close(done)
	<-progressDone
	if err != nil {
		return nil, err
	}
	if reads != nil {
		fmt.Fprintf(cfg.Progress, "%-16s reads: %d (%.1f/s), %d rows, errors %d\n", name, reads.Reads, reads.ReadsPerSec, reads.Rows, reads.Errors)
	}
	loadEnd := run.Ended
	r := &ScenarioResult{Name: name, Description: desc, Seconds: loadEnd.Sub(run.Began).Seconds(), Errors: run.Errors(), Reads: reads}
	r.Accepted = run.Accepted.Load()
	r.AcceptedPerSec = float64(r.Accepted) / r.Seconds
	acks := run.Acks()
	r.Latency = percentiles(latencies(acks))

	if p != nil {
		// Drain: wait until the row count covers every acknowledgement.
		deadline := time.Now().Add(cfg.DrainTimeout)
		for persisted() < r.Accepted && time.Now().Before(deadline) && ctx.Err() == nil {
			fmt.Fprintf(cfg.Progress, "\r%-16s draining: persisted %d of %d acknowledged   ", name, persisted(), r.Accepted)
			time.Sleep(100 * time.Millisecond)
		}
		fmt.Fprintln(cfg.Progress)
		drainEnd := time.Now()
		time.Sleep(300 * time.Millisecond) // the last lag samples
		stopPoll()
		if err := <-pollDone; err != nil {
			return nil, err
		}
		r.DrainSeconds = drainEnd.Sub(loadEnd).Seconds()
		v, err := loadgen.Verify(ctx, t.dsn, run)
		if err != nil {
			return nil, err
		}
		r.Verify = v
		rpc, err := rowsPerCommit(ctx, t.dsn)
		if err != nil {
			return nil, err
		}
		r.RowsPerCommit = f64(rpc)
		stored := int64(v.Acked - v.Lost)
		r.Persisted = i64(stored)
		r.PersistedPerSec = f64(float64(stored) / drainEnd.Sub(run.Began).Seconds())
		if emb := p.embedded.Load(); emb >= 0 {
			r.Embedded = i64(emb)
			r.EmbeddedPerSec = f64(float64(emb) / drainEnd.Sub(run.Began).Seconds())
		}
		p.mu.Lock()
		lags := make([]time.Duration, len(p.lags))
		for i, l := range p.lags {
			lags[i] = l.lag
		}
		r.Lag = percentiles(lags)
		vec := make([]time.Duration, 0, len(p.vecLags)+len(p.vecWaiting))
		for _, l := range p.vecLags {
			vec = append(vec, l.lag)
		}
		r.VectorLag, r.VectorLagWaiting = percentiles(append(vec, p.vecWaiting...)), len(p.vecWaiting)
		r.Timeline = timeline(run, acks, p.counts, p.lags)
		p.mu.Unlock()
	} else {
		r.Timeline = timeline(run, acks, nil, nil)
	}
	r.Procs = watch.end()
	return r, nil
}

// startReads starts readers against rt, filtering on what recent holds;
// stop stops them, lets the reads in flight finish and returns the tally.
func startReads(ctx context.Context, rt *readTarget, recent *loadgen.Recent, seed uint64) (stop func() *ReadStats, err error) {
	// No retries: every answer but 200 counts as a failed read.
	c, err := client.New(client.Config{BaseURL: rt.url, Token: rt.token, MaxRetries: -1, MaxIdleConnsPerHost: readers})
	if err != nil {
		return nil, err
	}
	rd := newReader(c, recent, rate.NewLimiter(rate.Limit(rt.rate), 1))
	pctx, cancel := context.WithCancel(ctx)
	began := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); rd.run(pctx, context.WithoutCancel(ctx), readers, seed) }()
	return func() *ReadStats {
		cancel()
		<-done
		_ = c.Close(ctx)
		s := rd.stats(time.Since(began).Seconds())
		s.ServiceAccount, s.Readers, s.TargetRate = loadgen.Namespace+"/"+loadgen.ReaderSA, readers, rt.rate
		return s
	}, nil
}

// timeline buckets acknowledgements, row counts and lag samples by second.
func timeline(run *loadgen.Run, acks []loadgen.Ack, counts []countPoint, lags []lagPoint) []TimePoint {
	secs := int(run.Ended.Sub(run.Began).Seconds()) + 1
	if n := len(counts); n > 0 {
		secs = max(secs, int(counts[n-1].at.Seconds())+1)
	}
	acc := make([]float64, secs)
	latBy := make([][]time.Duration, secs)
	for _, a := range acks {
		s := int(a.At.Sub(run.Began).Seconds())
		if s >= 0 && s < secs {
			acc[s]++
			latBy[s] = append(latBy[s], a.Latency)
		}
	}
	lagBy := make([][]time.Duration, secs)
	for _, l := range lags {
		if s := int(l.accepted.Seconds()); s >= 0 && s < secs {
			lagBy[s] = append(lagBy[s], l.lag)
		}
	}
	out := make([]TimePoint, secs)
	ci := 0
	var prevCount int64
	var prevAt time.Duration
	for s := range secs {
		out[s] = TimePoint{T: float64(s + 1), AcceptedPS: acc[s]}
		if p := percentiles(latBy[s]); p != nil {
			out[s].LatencyP99Ms = f64(p.P99)
		}
		if p := percentiles(lagBy[s]); p != nil {
			out[s].LagP99Ms = f64(p.P99)
		}
		if counts != nil {
			end := time.Duration(s+1) * time.Second
			for ci < len(counts) && counts[ci].at <= end {
				ci++
			}
			if ci > 0 {
				c := counts[ci-1]
				if dt := (c.at - prevAt).Seconds(); dt > 0 {
					out[s].PersistedPS = f64(float64(c.persisted-prevCount) / dt)
				} else {
					out[s].PersistedPS = f64(0)
				}
				prevCount, prevAt = c.persisted, c.at
			}
		}
	}
	return out
}
