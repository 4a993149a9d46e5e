package bench

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// No two series of a chart share a colour, however many there are.
func TestColour_DistinctForEverySeries(t *testing.T) {
	for n := 1; n <= 40; n++ {
		seen := map[string]bool{}
		for i := range n {
			c := colour(i, n)
			assert.False(t, seen[c], "%d series: %s twice", n, c)
			seen[c] = true
		}
	}
}

// Both axes carry ticks with their units, and each series is drawn in its
// own colour with a legend entry.
func TestLineChart_TicksWithUnitsAndAColourPerSeries(t *testing.T) {
	var ss []series
	for i := range 12 {
		ss = append(ss, series{name: "s" + string(rune('a'+i)), xs: []float64{0, 30, 65}, ys: []float64{0, 12345, float64(1000 * i)}})
	}
	svg := lineChart("Records per second", "rec/s", ss)
	for _, tick := range []string{">0 rec/s<", ">10k rec/s<", ">0 s<", ">60 s<"} {
		assert.Contains(t, svg, tick)
	}
	strokes := regexp.MustCompile(`<polyline fill="none" stroke="([^"]+)"`).FindAllStringSubmatch(svg, -1)
	require.Len(t, strokes, len(ss))
	seen := map[string]bool{}
	for _, m := range strokes {
		assert.False(t, seen[m[1]], "colour %s twice", m[1])
		seen[m[1]] = true
	}
	legend := regexp.MustCompile(`<rect [^>]*width="10" height="10" fill="([^"]+)"`).FindAllStringSubmatch(svg, -1)
	require.Len(t, legend, len(ss), "a legend entry per series")
	for i, m := range legend {
		assert.Equal(t, strokes[i][1], m[1], "the legend's colour is its line's")
	}
}

// CPU per record is each group's CPU over the records the scenario
// persisted; server sums the system's processes, the load generator apart.
// The table gives rows per commit where the scenario measured it.
func TestComputeCPUPerRecord(t *testing.T) {
	persisted, rowsPerCommit := int64(100_000), 148.9
	res := &Results{Scenarios: []*ScenarioResult{{Name: ScenarioSidecar, Accepted: 100_000, Persisted: &persisted, RowsPerCommit: &rowsPerCommit, Procs: []ProcStat{
		{Name: "bench", CPUSeconds: 1}, {Name: "postgres", CPUSeconds: 2}, {Name: "central", CPUSeconds: 1},
		{Name: "agent-0", CPUSeconds: 0.5}, {Name: "agent-1", CPUSeconds: 0.5},
	}}, {Name: ScenarioBareHTTP, Accepted: 50_000, Procs: []ProcStat{{Name: "bench", CPUSeconds: 1}}}}}
	computeCPUPerRecord(res)
	assert.InDeltaMapValues(t, map[string]float64{"bench": 10, "agents": 10, "central": 10, "postgres": 20, "server": 40},
		res.Scenarios[0].CPUPerRecordUs, 1e-9)
	assert.InDeltaMapValues(t, map[string]float64{"bench": 20}, res.Scenarios[1].CPUPerRecordUs, 1e-9,
		"nothing persisted: per accepted record")
	tbl := res.cpuTable()
	require.Len(t, tbl.rows, 2)
	assert.Equal(t, []string{"sidecar", "100000", "148.9", "10.0", "10.0", "10.0", "20.0", "40.0"}, tbl.rows[0][:8])
	assert.Equal(t, "-", tbl.rows[1][2], "bare-http stores nothing: no commits")
	assert.Equal(t, "-", tbl.rows[1][4], "no agents in bare-http")
}

// Issue 16's targets: direct vs raw COPY, the sidecar's server CPU per
// record, and the vector lag at half peak, met only without samples still
// waiting (the p99 is then only a lower bound).
func TestCheckTargets_CostPerRecordAndVectorLag(t *testing.T) {
	rate := func(v float64) *float64 { return &v }
	res := &Results{Scenarios: []*ScenarioResult{
		{Name: ScenarioCopy, PersistedPerSec: rate(10_000)},
		{Name: ScenarioDirect, PersistedPerSec: rate(3_100)},
		{Name: ScenarioSidecar, PersistedPerSec: rate(3_000), CPUPerRecordUs: map[string]float64{"server": 71, "agents": 30, "central": 20, "postgres": 21}},
		{Name: ScenarioSidecarHalf, PersistedPerSec: rate(1_500), Latency: &Percentiles{P99: 5},
			VectorLag: &Percentiles{P99: 1_500}, VectorLagWaiting: 1},
	}}
	computeRatios(res)
	met := map[string]bool{}
	for _, tg := range checkTargets(res) {
		met[tg.Name] = tg.Met
	}
	assert.True(t, met["direct persisted vs raw COPY"], "0.31 >= 0.30")
	assert.Contains(t, met, "sidecar CPU per record (agents + central + postgres)")
	assert.False(t, met["sidecar CPU per record (agents + central + postgres)"], "71 µs > 70")
	assert.Contains(t, met, "sidecar vector lag p99 at half peak")
	assert.False(t, met["sidecar vector lag p99 at half peak"], "a sample still waiting: not shown met")
	res.Scenarios[3].VectorLagWaiting = 0
	for _, tg := range checkTargets(res) {
		met[tg.Name] = tg.Met
	}
	assert.True(t, met["sidecar vector lag p99 at half peak"])
}
