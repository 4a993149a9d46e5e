package bench

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

func computeRatios(res *Results) {
	ref := func(name string, get func(*ScenarioResult) *float64) *float64 {
		if s := res.scenario(name); s != nil {
			return get(s)
		}
		return nil
	}
	persisted := func(s *ScenarioResult) *float64 { return s.PersistedPerSec }
	accepted := func(s *ScenarioResult) *float64 { return &s.AcceptedPerSec }
	embedded := func(s *ScenarioResult) *float64 { return s.EmbeddedPerSec }
	p99 := func(s *ScenarioResult) *float64 {
		if s.Latency == nil {
			return nil
		}
		return &s.Latency.P99
	}
	copyRate, naiveRate := ref(ScenarioCopy, persisted), ref(ScenarioNaive, persisted)
	bare, vec := ref(ScenarioBareHTTP, accepted), ref(ScenarioVectorCopy, embedded)
	sideAccepted, sidePersisted := ref(ScenarioSidecar, accepted), ref(ScenarioSidecar, persisted)
	for _, s := range res.Scenarios {
		switch s.Name {
		case ScenarioBareHTTP, ScenarioCopy, ScenarioVectorCopy:
			continue
		}
		s.Ratios = map[string]float64{}
		put := func(key string, num, den *float64) {
			if num != nil && den != nil && *den > 0 {
				s.Ratios[key] = *num / *den
			}
		}
		put("persisted_vs_copy", s.PersistedPerSec, copyRate)
		if s.Name != ScenarioNaive {
			put("persisted_vs_naive", s.PersistedPerSec, naiveRate)
		}
		put("accepted_vs_bare_http", &s.AcceptedPerSec, bare)
		put("embedded_vs_vector_copy", s.EmbeddedPerSec, vec)
		if s.Name == ScenarioSidecarReads {
			// The same deployment and load without the reader.
			put("accepted_vs_sidecar", &s.AcceptedPerSec, sideAccepted)
			put("persisted_vs_sidecar", s.PersistedPerSec, sidePersisted)
		}
		if twin, ok := noLedgerTwin[s.Name]; ok {
			// The same deployment and load, right after, without the ledger.
			put("persisted_vs_noledger", s.PersistedPerSec, ref(twin, persisted))
			put("p99_vs_noledger", p99(s), ref(twin, p99))
		}
	}
}

func checkTargets(res *Results) []Target {
	var out []Target
	side, half := res.scenario(ScenarioSidecar), res.scenario(ScenarioSidecarHalf)
	if side != nil && side.Ratios != nil {
		if r, ok := side.Ratios["persisted_vs_naive"]; ok {
			out = append(out, Target{Name: "sidecar persisted vs naive persisted", Want: ">= 10x", Got: r, Met: r >= 10,
				Detail: fmt.Sprintf("%.0f/s vs %.0f/s", *side.PersistedPerSec, *res.scenario(ScenarioNaive).PersistedPerSec)})
		}
		if r, ok := side.Ratios["persisted_vs_copy"]; ok {
			out = append(out, Target{Name: "sidecar persisted vs raw COPY", Want: ">= 0.5", Got: r, Met: r >= 0.5,
				Detail: fmt.Sprintf("%.0f/s vs %.0f/s", *side.PersistedPerSec, *res.scenario(ScenarioCopy).PersistedPerSec)})
		}
	}
	if reads := res.scenario(ScenarioSidecarReads); reads != nil {
		if r, ok := reads.Ratios["accepted_vs_sidecar"]; ok {
			rr := 0.0
			if reads.Reads != nil {
				rr = reads.Reads.ReadsPerSec
			}
			out = append(out, Target{Name: "sidecar write rate with reads vs without", Want: ">= 0.90", Got: r, Met: r >= 0.9,
				Detail: fmt.Sprintf("%.0f/s accepted with %.1f reads/s vs %.0f/s without", reads.AcceptedPerSec, rr, side.AcceptedPerSec)})
		}
		if rs := reads.Reads; rs != nil {
			out = append(out, Target{Name: "sidecar-reads failed reads", Want: "= 0", Got: float64(rs.Errors), Met: rs.Errors == 0,
				Detail: fmt.Sprintf("%d of %d reads answered other than 200", rs.Errors, rs.Reads)})
		}
	}
	if half != nil && half.Latency != nil {
		out = append(out, Target{Name: "sidecar p99 accept latency at half peak", Want: "<= 10 ms", Got: half.Latency.P99,
			Met: half.Latency.P99 <= 10, Detail: fmt.Sprintf("paced at %.0f/s, achieved %.0f/s", half.TargetRate, half.AcceptedPerSec)})
	}
	// Issue 16's: the cost of a record end to end, and how far embeddings trail.
	if direct := res.scenario(ScenarioDirect); direct != nil {
		if r, ok := direct.Ratios["persisted_vs_copy"]; ok {
			out = append(out, Target{Name: "direct persisted vs raw COPY", Want: ">= 0.30", Got: r, Met: r >= 0.3,
				Detail: fmt.Sprintf("%.0f/s vs %.0f/s", *direct.PersistedPerSec, *res.scenario(ScenarioCopy).PersistedPerSec)})
		}
	}
	if side != nil {
		if us, ok := side.CPUPerRecordUs["server"]; ok {
			out = append(out, Target{Name: "sidecar CPU per record (agents + central + postgres)", Want: "<= 70 µs", Got: us, Met: us <= 70,
				Detail: fmt.Sprintf("agents %.0f, central %.0f, postgres %.0f µs", side.CPUPerRecordUs["agents"], side.CPUPerRecordUs["central"], side.CPUPerRecordUs["postgres"])})
		}
	}
	if half != nil && half.VectorLag != nil {
		out = append(out, Target{Name: "sidecar vector lag p99 at half peak", Want: "<= 2000 ms", Got: half.VectorLag.P99,
			Met:    half.VectorLag.P99 <= 2000 && half.VectorLagWaiting == 0,
			Detail: fmt.Sprintf("%d samples still waiting at the end (the p99 is then a lower bound)", half.VectorLagWaiting)})
	}
	for _, s := range res.Scenarios {
		twin := res.scenario(noLedgerTwin[s.Name])
		if twin == nil {
			continue
		}
		if r, ok := s.Ratios["persisted_vs_noledger"]; ok {
			out = append(out, Target{Name: s.Name + " persisted with ledger vs without", Want: ">= 0.90", Got: r, Met: r >= 0.9,
				Detail: fmt.Sprintf("%.0f/s vs %.0f/s", *s.PersistedPerSec, *twin.PersistedPerSec)})
		}
		if r, ok := s.Ratios["p99_vs_noledger"]; ok {
			out = append(out, Target{Name: s.Name + " p99 latency with ledger vs without", Want: "<= 1.20", Got: r, Met: r <= 1.2,
				Detail: fmt.Sprintf("%.1f ms vs %.1f ms", s.Latency.P99, twin.Latency.P99)})
		}
	}
	return out
}

func rateStr(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", *v)
}

func msStr(p *Percentiles, f func(*Percentiles) float64) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", f(p))
}

// summaryTable is the summary's header and one row per scenario: what
// WriteTable prints as Markdown and WriteHTML as an HTML table.
func (res *Results) summaryTable() (t table) {
	t.header = []string{"scenario", "accepted/s", "persisted/s", "embedded/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
		"lag p50 ms", "lag p99 ms", "vec lag p50 ms", "vec lag p99 ms", "vs COPY", "vs naive", "lost", "dup"}
	for _, s := range res.Scenarios {
		ratio := func(k string) string {
			if v, ok := s.Ratios[k]; ok {
				return fmt.Sprintf("%.2f", v)
			}
			return "-"
		}
		lost, dup := "-", "-"
		if s.Verify != nil {
			lost, dup = fmt.Sprint(s.Verify.Lost), fmt.Sprint(s.Verify.Duplicated)
		}
		acc := fmt.Sprintf("%.0f", s.AcceptedPerSec)
		if s.Name == ScenarioCopy || s.Name == ScenarioVectorCopy {
			acc = "-"
		}
		// A vector lag with samples still waiting is a lower bound.
		vecLag := func(q func(*Percentiles) float64) string {
			v := msStr(s.VectorLag, q)
			if s.VectorLagWaiting > 0 && s.VectorLag != nil {
				v = "≥" + v
			}
			return v
		}
		p50 := func(p *Percentiles) float64 { return p.P50 }
		p95 := func(p *Percentiles) float64 { return p.P95 }
		p99 := func(p *Percentiles) float64 { return p.P99 }
		pMax := func(p *Percentiles) float64 { return p.Max }
		t.rows = append(t.rows, []string{s.Name, acc, rateStr(s.PersistedPerSec), rateStr(s.EmbeddedPerSec),
			msStr(s.Latency, p50), msStr(s.Latency, p95), msStr(s.Latency, p99), msStr(s.Latency, pMax),
			msStr(s.Lag, p50), msStr(s.Lag, p99), vecLag(p50), vecLag(p99),
			ratio("persisted_vs_copy"), ratio("persisted_vs_naive"), lost, dup})
	}
	return t
}

// cpuGroups are the columns of the CPU-per-record table: the processes of a
// scenario, the agents summed.
var cpuGroups = []string{"bench", "agents", "central", "postgres"}

// cpuGroup is the column of process name.
func cpuGroup(name string) string {
	if strings.HasPrefix(name, "agent") {
		return "agents"
	}
	return name
}

// computeCPUPerRecord sets each scenario's CPU per record: µs of CPU each
// group of processes spent per record (persisted, or accepted where nothing
// is persisted), and "server", the sum over agents, central and postgres:
// what the system costs, the load generator apart.
func computeCPUPerRecord(res *Results) {
	for _, s := range res.Scenarios {
		records := s.Accepted
		if s.Persisted != nil {
			records = *s.Persisted
		}
		if records <= 0 || len(s.Procs) == 0 {
			continue
		}
		s.CPUPerRecordUs = map[string]float64{}
		for _, p := range s.Procs {
			us := p.CPUSeconds * 1e6 / float64(records)
			s.CPUPerRecordUs[cpuGroup(p.Name)] += us
			if cpuGroup(p.Name) != "bench" {
				s.CPUPerRecordUs["server"] += us
			}
		}
	}
}

// cpuTable is the CPU-per-record table: the rows each writing transaction
// stored, µs per record by group of processes, their sum without the load
// generator, and each process's CPU (% of one core) and peak RSS.
func (res *Results) cpuTable() (t table) {
	t.header = []string{"scenario", "records", "rows/commit"}
	for _, g := range cpuGroups {
		t.header = append(t.header, g+" µs")
	}
	t.header = append(t.header, "server µs", "CPU % and peak RSS per process")
	for _, s := range res.Scenarios {
		if s.CPUPerRecordUs == nil {
			continue
		}
		records := s.Accepted
		if s.Persisted != nil {
			records = *s.Persisted
		}
		row := []string{s.Name, fmt.Sprint(records), "-"}
		if s.RowsPerCommit != nil {
			row[2] = fmt.Sprintf("%.1f", *s.RowsPerCommit)
		}
		for _, g := range append(slices.Clone(cpuGroups), "server") {
			if v, ok := s.CPUPerRecordUs[g]; ok {
				row = append(row, fmt.Sprintf("%.1f", v))
			} else {
				row = append(row, "-")
			}
		}
		var parts []string
		for _, p := range s.Procs {
			parts = append(parts, fmt.Sprintf("%s %.0f%% %.0fMB", p.Name, p.CPUPercent, p.PeakRSSMB))
		}
		t.rows = append(t.rows, append(row, strings.Join(parts, ", ")))
	}
	return t
}

// targetTable is the targets' table.
func (res *Results) targetTable() (t table) {
	t.header = []string{"target", "want", "got", "", "detail"}
	for _, tg := range res.Targets {
		met := "MET"
		if !tg.Met {
			met = "NOT MET"
		}
		t.rows = append(t.rows, []string{tg.Name, tg.Want, fmt.Sprintf("%.2f", tg.Got), met, tg.Detail})
	}
	return t
}

// table is a header and rows of cells, printed as Markdown (writeMarkdown)
// or HTML (htmlTable).
type table struct {
	header []string
	rows   [][]string
}

// writeMarkdown prints t as a Markdown table.
func writeMarkdown(w io.Writer, t table) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	line := func(cells []string) { fmt.Fprintln(tw, "| "+strings.Join(cells, "\t ")+"\t") }
	line(t.header)
	sep := make([]string, len(t.header))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	_ = tw.Flush()
}

// WriteTable prints the summary (Markdown tables, so the README can take
// them).
func (res *Results) WriteTable(w io.Writer) {
	fmt.Fprintln(w, res.machineLine())
	fmt.Fprintln(w)
	writeMarkdown(w, res.summaryTable())
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CPU per record (µs of CPU per persisted record; server = agents + central + postgres, the load generator apart):")
	fmt.Fprintln(w)
	writeMarkdown(w, res.cpuTable())
	for _, s := range res.Scenarios {
		if len(s.Errors) > 0 {
			fmt.Fprintf(w, "  %s errors %v\n", s.Name, s.Errors)
		}
	}
	for _, s := range res.Scenarios {
		if s.Reads != nil {
			s.writeReads(w)
		}
	}
	res.writeLedgerCost(w)
	if len(res.Targets) > 0 {
		fmt.Fprintln(w, "\nTargets:")
		fmt.Fprintln(w)
		writeMarkdown(w, res.targetTable())
	}
	fmt.Fprintf(w, "\nWall time %.0fs.\n", res.WallTime)
}

func (res *Results) machineLine() string {
	return fmt.Sprintf("Machine: %d CPUs (%s), %d GB RAM, %s, %s, %s", res.Machine.CPUs, res.Machine.CPUModel,
		res.Machine.MemoryGB, res.Machine.OS, res.Machine.GoVersion, res.Machine.Postgres)
}

// writeReads prints what s's reader did: reads, failures, latency by read
// type, and the write rate against the sidecar scenario's.
func (s *ScenarioResult) writeReads(w io.Writer) {
	rs := s.Reads
	fmt.Fprintf(w, "\nReads during %s (%d readers as %s, paced at %g reads/s in all):\n", s.Name, rs.Readers, rs.ServiceAccount, rs.TargetRate)
	fmt.Fprintf(w, "  %d reads in %.1fs (%.1f/s), %d failed%s, %d rows, empty first pages %d\n",
		rs.Reads, rs.Seconds, rs.ReadsPerSec, rs.Errors, classes(rs.ErrorClasses), rs.Rows, rs.EmptyPages)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  read\treads\tfailed\trows\tp50 ms\tp95 ms\tp99 ms\tmax ms")
	for _, typ := range readTypes {
		t := rs.ByType[typ]
		if t == nil {
			continue
		}
		q := func(f func(*Percentiles) float64) string { return msStr(t.Latency, f) }
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", typ, t.Reads, t.Errors, t.Rows,
			q(func(p *Percentiles) float64 { return p.P50 }), q(func(p *Percentiles) float64 { return p.P95 }),
			q(func(p *Percentiles) float64 { return p.P99 }), q(func(p *Percentiles) float64 { return p.Max }))
	}
	_ = tw.Flush()
	var filters []string
	for _, f := range readFilters {
		filters = append(filters, fmt.Sprintf("%s %d", f.name, rs.Filters[f.name]))
	}
	fmt.Fprintf(w, "  first pages by filter: %s\n", strings.Join(filters, ", "))
	if r, ok := s.Ratios["accepted_vs_sidecar"]; ok {
		fmt.Fprintf(w, "  write rate vs sidecar (no reads): accepted %.2f", r)
		if p, ok := s.Ratios["persisted_vs_sidecar"]; ok {
			fmt.Fprintf(w, ", persisted %.2f", p)
		}
		fmt.Fprintln(w, " (target: accepted >= 0.90)")
	} else {
		fmt.Fprintln(w, "  write rate vs sidecar: n/a (the sidecar scenario did not run)")
	}
}

// writeLedgerCost prints, for each write path that ran, its rates with the
// ledger over those of its -noledger twin.
func (res *Results) writeLedgerCost(w io.Writer) {
	header := false
	for _, s := range res.Scenarios {
		twin, ok := noLedgerTwin[s.Name]
		if !ok {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nLedger cost (with the ledger ÷ without, the same load run back to back):")
			header = true
		}
		if res.scenario(twin) == nil {
			fmt.Fprintf(w, "  %-16s n/a (%s did not run)\n", s.Name, twin)
			continue
		}
		ratio := func(k string) string {
			if v, ok := s.Ratios[k]; ok {
				return fmt.Sprintf("%.2f", v)
			}
			return "n/a"
		}
		fmt.Fprintf(w, "  %-16s persisted/s %s (target >= 0.90), p99 accept latency %s (target <= 1.20)\n",
			s.Name, ratio("persisted_vs_noledger"), ratio("p99_vs_noledger"))
	}
}

func classes(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// WriteJSON writes the results to path.
func (res *Results) WriteJSON(path string) error {
	b, err := json.Marshal(res, jsontext.WithIndent("  "))
	if err != nil {
		return fmt.Errorf("results json: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("results json: %w", err)
	}
	return nil
}
