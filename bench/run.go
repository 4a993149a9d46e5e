package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/kubernaut/datastorage/bench/loadgen"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
)

// ErrLossOrDuplicate is returned by Run when a scenario lost an
// acknowledged record or stored one twice.
var ErrLossOrDuplicate = loadgen.ErrLossOrDuplicate

// Verification is the exactly-once check of one scenario.
type Verification = loadgen.Verification

// Results is one run: what ran where, and each scenario's numbers.
type Results struct {
	StartedAt time.Time         `json:"started_at"`
	WallTime  float64           `json:"wall_time_s"`
	Machine   Machine           `json:"machine"`
	Settings  map[string]any    `json:"settings"`
	Scenarios []*ScenarioResult `json:"scenarios"`
	Targets   []Target          `json:"targets"`
}

// Machine describes where it ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryGB  int    `json:"memory_gb"`
	OS        string `json:"os"`
	GoVersion string `json:"go_version"`
	Postgres  string `json:"postgres"`
}

// ScenarioResult is one scenario's measurements. Rates are per second; a
// nil pointer means "not applicable" (n/a in the table).
type ScenarioResult struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Seconds     float64 `json:"load_seconds"`
	TargetRate  float64 `json:"target_rate,omitempty"`

	Accepted        int64    `json:"accepted"`
	AcceptedPerSec  float64  `json:"accepted_per_s"`
	Persisted       *int64   `json:"persisted,omitempty"`
	PersistedPerSec *float64 `json:"persisted_per_s,omitempty"`
	Embedded        *int64   `json:"embedded,omitempty"`
	EmbeddedPerSec  *float64 `json:"embedded_per_s,omitempty"`
	DrainSeconds    float64  `json:"drain_seconds,omitempty"`
	// RowsPerCommit is the audit rows stored per transaction that stored
	// them (rowsPerCommit): how well writes share commits.
	RowsPerCommit *float64 `json:"rows_per_commit,omitempty"`

	Latency *Percentiles `json:"accept_latency,omitempty"`
	Lag     *Percentiles `json:"accept_to_row_lag,omitempty"`
	// VectorLag is from acceptance to the stored embedding link (checked
	// when the row appears, then every 500 ms).
	// Samples still waiting when the scenario ended (VectorLagWaiting) count
	// with the time they had waited, so with any waiting the percentiles are
	// lower bounds.
	VectorLag        *Percentiles   `json:"accept_to_vector_lag,omitempty"`
	VectorLagWaiting int            `json:"accept_to_vector_lag_waiting,omitempty"`
	Errors           map[string]int `json:"errors,omitempty"`
	Procs            []ProcStat     `json:"processes,omitempty"`
	// CPUPerRecordUs is µs of CPU per record by group of processes (bench,
	// agents, central, postgres) and "server", the sum without bench
	// (computeCPUPerRecord).
	CPUPerRecordUs map[string]float64 `json:"cpu_us_per_record,omitempty"`
	Verify         *Verification      `json:"verification,omitempty"`
	Ratios         map[string]float64 `json:"ratios,omitempty"`

	// Reads is what the reader did during the load (sidecar-reads only).
	Reads *ReadStats `json:"reads,omitempty"`

	Timeline []TimePoint `json:"timeline,omitempty"`
}

// ProcStat is one process's CPU during the scenario and its peak RSS.
type ProcStat struct {
	Name       string  `json:"name"`
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"` // of one core, over load+drain
	PeakRSSMB  float64 `json:"peak_rss_mb"`
}

// TimePoint is one second of a load scenario.
type TimePoint struct {
	T            float64  `json:"t"`
	AcceptedPS   float64  `json:"accepted_per_s"`
	PersistedPS  *float64 `json:"persisted_per_s,omitempty"`
	LagP99Ms     *float64 `json:"lag_p99_ms,omitempty"`
	LatencyP99Ms *float64 `json:"latency_p99_ms,omitempty"`
}

// Target is one of the targets, checked against this run.
type Target struct {
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Got    float64 `json:"got"`
	Met    bool    `json:"met"`
	Detail string  `json:"detail"`
}

// env is what scenarios share: binaries, the cluster, the postmaster.
type env struct {
	cfg        Config
	bins       harness.Binaries
	admin      string
	postmaster int
	work       string
}

// Run executes cfg's scenarios and returns their results. The error is
// ErrLossOrDuplicate (with the results) when a verification failed.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	began := time.Now()
	res := &Results{StartedAt: began.UTC(), Settings: map[string]any{
		"controllers": cfg.Controllers, "agents": cfg.Agents, "duration_s": cfg.Duration.Seconds(),
		"repeat_fraction": cfg.RepeatFraction, "alert_texts": cfg.AlertTexts, "copy_rows": cfg.CopyRows,
		"copy_batch": copyBatch, "vector_batch": vectorBatch, "vector_duration_s": cfg.VectorDuration.Seconds(),
		"read_rate": cfg.ReadRate, "readers": readers, "scenarios": cfg.Scenarios}}
	ws, err := loadgen.NewWorkspace(ctx, "bench", cfg.RepoRoot, cfg.BinDir, cfg.Progress)
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	cfg.RepoRoot = ws.Root
	e := &env{cfg: cfg, bins: ws.Bins, admin: cfg.DatabaseURL, work: ws.Dir}
	if e.admin == "" {
		fmt.Fprintln(cfg.Progress, "bench: starting a throwaway PostgreSQL with pgvector (scripts/pg-cluster.sh)")
		cl, err := loadgen.StartCluster(ctx, cfg.RepoRoot)
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		e.admin = cl.AdminURL
	}
	e.postmaster = postmasterPID(ctx, e.admin)
	res.Machine = machine(ctx, e.admin)

	steps := []struct {
		name string
		fn   scenarioFunc
	}{
		{ScenarioBareHTTP, e.bareHTTP}, {ScenarioCopy, e.copy}, {ScenarioVectorCopy, e.vectorCopy},
		{ScenarioNaive, e.naive}, {ScenarioDirect, e.direct(ledgerOn)}, {ScenarioDirectNoLedger, e.direct(ledgerOff)},
		{ScenarioSidecar, e.sidecar(ledgerOn)}, {ScenarioSidecarNoLedger, e.sidecar(ledgerOff)},
		{ScenarioSidecarReads, e.sidecarReads}, {ScenarioSidecarHalf, e.sidecarHalf},
	}
	failed := false
	for _, s := range steps {
		if !cfg.wants(s.name) {
			continue
		}
		r, err := s.fn(ctx, res)
		if err != nil {
			res.WallTime = time.Since(began).Seconds()
			return res, fmt.Errorf("scenario %s: %w", s.name, err)
		}
		if r == nil {
			continue
		}
		res.Scenarios = append(res.Scenarios, r)
		if r.Verify != nil {
			v := r.Verify
			fmt.Fprintf(cfg.Progress, "%-16s verify: acked=%d lost=%d duplicated=%d unacked=%d\n",
				r.Name, v.Acked, v.Lost, v.Duplicated, v.Unacked)
			if !v.OK() {
				failed = true
			}
		}
	}
	computeRatios(res)
	computeCPUPerRecord(res)
	res.Targets = checkTargets(res)
	res.WallTime = time.Since(began).Seconds()
	if failed {
		return res, ErrLossOrDuplicate
	}
	return res, nil
}

func (r *Results) scenario(name string) *ScenarioResult {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func machine(ctx context.Context, admin string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	m.MemoryGB = int((statusMemTotalKB() + 512*1024) / (1024 * 1024))
	m.Postgres = postgresVersion(ctx, admin)
	return m
}

func statusMemTotalKB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int64
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			_, _ = fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &kb)
		}
	}
	return kb
}

// procWatch measures CPU of processes between begin and end.
type procWatch struct {
	names []string
	pids  []int // 0: PostgreSQL (the cluster), -1: this process
	pm    int
	t0    []uint64
	start time.Time
}

func newProcWatch(pm int, children []*harness.Process) *procWatch {
	w := &procWatch{pm: pm}
	w.names = append(w.names, "bench")
	w.pids = append(w.pids, -1)
	if pm > 0 {
		w.names = append(w.names, "postgres")
		w.pids = append(w.pids, 0)
	}
	for _, c := range children {
		w.names = append(w.names, c.Name())
		w.pids = append(w.pids, c.Pid())
	}
	w.t0 = w.ticks()
	w.start = time.Now()
	return w
}

func (w *procWatch) ticks() []uint64 {
	out := make([]uint64, len(w.pids))
	for i, pid := range w.pids {
		switch pid {
		case 0:
			out[i] = postgresTicks(w.pm)
		case -1:
			st, _ := readStat(os.Getpid())
			out[i] = st.self
		default:
			st, _ := readStat(pid)
			out[i] = st.self
		}
	}
	return out
}

func (w *procWatch) end() []ProcStat {
	t1 := w.ticks()
	wall := time.Since(w.start).Seconds()
	out := make([]ProcStat, len(w.pids))
	for i, pid := range w.pids {
		cpu := float64(t1[i]-w.t0[i]) / clockTicks
		var rss int64
		switch pid {
		case 0:
			rss = postgresPeakRSS(w.pm)
		case -1:
			rss = statusKB(os.Getpid(), "VmHWM")
		default:
			rss = statusKB(pid, "VmHWM")
		}
		out[i] = ProcStat{Name: w.names[i], CPUSeconds: cpu, CPUPercent: 100 * cpu / wall, PeakRSSMB: float64(rss) / 1024}
	}
	return out
}
