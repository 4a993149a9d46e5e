package bench

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/kubernaut/datastorage/bench/loadgen"
)

// Scenario names, in the order Run executes them.
const (
	ScenarioBareHTTP        = "bare-http"        // limit: fasthttp handler answering 201
	ScenarioCopy            = "copy"             // limit: raw COPY of the audit rows
	ScenarioVectorCopy      = "vector-copy"      // limit: raw COPY of 768-d vectors into an HNSW table
	ScenarioNaive           = "naive"            // the spec's design: insert, embed, insert vector, answer
	ScenarioDirect          = "direct"           // controllers → central, single-record API
	ScenarioDirectNoLedger  = "direct-noledger"  // the same, the central with --ledger=false
	ScenarioSidecar         = "sidecar"          // controllers → K agents → central, peak rate
	ScenarioSidecarNoLedger = "sidecar-noledger" // the same, the central with --ledger=false
	ScenarioSidecarReads    = "sidecar-reads"    // the sidecar with a reader reading the history back
	ScenarioSidecarHalf     = "sidecar-half"     // the sidecar at half its peak accepted rate
)

// AllScenarios is every scenario in run order.
var AllScenarios = []string{ScenarioBareHTTP, ScenarioCopy, ScenarioVectorCopy, ScenarioNaive,
	ScenarioDirect, ScenarioDirectNoLedger, ScenarioSidecar, ScenarioSidecarNoLedger,
	ScenarioSidecarReads, ScenarioSidecarHalf}

// noLedgerTwin is, for each write path, its scenario without the ledger,
// run right after it so that the pair prices the ledger on one machine state.
var noLedgerTwin = map[string]string{ScenarioDirect: ScenarioDirectNoLedger, ScenarioSidecar: ScenarioSidecarNoLedger}

// Config configures a run. Zero fields take the defaults noted.
type Config struct {
	// RepoRoot is the module's root (scripts/, cmd/). Empty: found by walking
	// up from the working directory to go.mod.
	RepoRoot string
	// DatabaseURL is an admin URL of an existing PostgreSQL cluster with
	// pgvector (a database per scenario is created and dropped there).
	// Empty: a throwaway cluster is started with scripts/pg-cluster.sh.
	DatabaseURL string
	// BinDir holds prebuilt central and agent binaries. Empty: go build.
	BinDir string
	// Controllers is the number of concurrent writers. Zero: 64.
	Controllers int
	// Agents is the number of agent processes in the sidecar path. Zero: 4.
	Agents int
	// Duration is how long each load scenario drives load. Zero: 20s.
	Duration time.Duration
	// RepeatFraction is the share of records that repeat one of AlertTexts
	// alert texts (an alert storm). Zero: 0.8; negative: none repeat.
	RepeatFraction float64
	// AlertTexts is the number of distinct repeated texts. Zero: 200.
	AlertTexts int
	// CopyRows is the number of rows of the raw COPY limit. Zero: 200000.
	CopyRows int
	// VectorDuration bounds the raw vector COPY limit. Zero: Duration.
	VectorDuration time.Duration
	// DrainTimeout bounds the wait for acknowledged records to reach
	// PostgreSQL after the load stops. Zero: 2m.
	DrainTimeout time.Duration
	// ReadRate is the reads per second (pages and timelines, all readers
	// together) of the sidecar-reads scenario's reader. Zero: 40.
	ReadRate float64
	// Scenarios to run. Empty: AllScenarios.
	Scenarios []string
	// Seed of the record generator. Zero: 1.
	Seed uint64
	// Progress receives the live progress line. Nil: none.
	Progress io.Writer
}

func (c Config) withDefaults() Config {
	c.Controllers = cmp.Or(c.Controllers, 64)
	c.Agents = cmp.Or(c.Agents, 4)
	c.Duration = cmp.Or(c.Duration, 20*time.Second)
	c.RepeatFraction = max(cmp.Or(c.RepeatFraction, 0.8), 0) // negative: none repeat
	c.AlertTexts = cmp.Or(c.AlertTexts, 200)
	c.CopyRows = cmp.Or(c.CopyRows, 200000)
	c.VectorDuration = cmp.Or(c.VectorDuration, c.Duration)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 2*time.Minute)
	c.ReadRate = cmp.Or(c.ReadRate, 40)
	c.Seed = cmp.Or(c.Seed, 1)
	c.Progress = cmp.Or(c.Progress, io.Discard)
	if len(c.Scenarios) == 0 {
		c.Scenarios = AllScenarios
	}
	return c
}

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	switch {
	case c.Controllers < 0:
		return errors.New("bench config: Controllers must not be negative")
	case c.Agents < 0:
		return errors.New("bench config: Agents must not be negative")
	case c.Duration < 0 || c.VectorDuration < 0 || c.DrainTimeout < 0:
		return errors.New("bench config: durations must not be negative")
	case c.RepeatFraction > 1:
		return errors.New("bench config: RepeatFraction must be at most 1")
	case c.AlertTexts < 0 || c.CopyRows < 0:
		return errors.New("bench config: AlertTexts and CopyRows must not be negative")
	case c.ReadRate < 0 || math.IsNaN(c.ReadRate) || math.IsInf(c.ReadRate, 0):
		return errors.New("bench config: ReadRate must be a positive number of reads per second")
	}
	known := map[string]bool{}
	for _, s := range AllScenarios {
		known[s] = true
	}
	for _, s := range c.Scenarios {
		if !known[s] {
			return fmt.Errorf("bench config: unknown scenario %q (want one of %v)", s, AllScenarios)
		}
	}
	return nil
}

// load is the shape of every load scenario's load.
func (c Config) load() loadgen.Config {
	return loadgen.Config{Controllers: c.Controllers, RepeatFraction: c.RepeatFraction, AlertTexts: c.AlertTexts, Seed: c.Seed}
}

func (c Config) wants(name string) bool {
	for _, s := range c.Scenarios {
		if s == name {
			return true
		}
	}
	return false
}
