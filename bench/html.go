package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"os"
	"strconv"
	"strings"
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"}

// colour is series i's of n: the palette's while it lasts, else hues a
// golden angle apart (neighbours, such as one scenario's accepted and
// persisted, far apart on the wheel) in two lightnesses, so that no two
// series of a chart share one.
func colour(i, n int) string {
	if n <= len(palette) {
		return palette[i]
	}
	return fmt.Sprintf("hsl(%.1f,75%%,%d%%)", math.Mod(float64(i)*137.508, 360), 36+12*(i%2))
}

// niceStep is a round step (1, 2 or 5 × 10^k) that cuts span into about
// ticks intervals.
func niceStep(span float64, ticks int) float64 {
	raw := span / float64(ticks)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// tickLabel is v with unit, shortened (12k, 1.5M).
func tickLabel(v float64, unit string) string {
	var s string
	switch {
	case v >= 1e6:
		s = strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case v >= 1e3:
		s = strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	default:
		s = strconv.FormatFloat(v, 'g', 3, 64)
	}
	return s + " " + unit
}

type series struct {
	name string
	xs   []float64
	ys   []float64
}

// lineChart is an inline SVG line chart of ss over seconds, its y axis in
// unit: ticks with units on both axes, a colour and a legend entry per
// series.
func lineChart(title, unit string, ss []series) string {
	const w, l, r, t, b = 760.0, 70.0, 190.0, 30.0, 40.0
	h := max(280.0, t+b+16*float64(len(ss)))
	var maxX, maxY float64
	for _, s := range ss {
		for i := range s.xs {
			maxX, maxY = max(maxX, s.xs[i]), max(maxY, s.ys[i])
		}
	}
	if maxX == 0 || maxY == 0 {
		return ""
	}
	stepY, stepX := niceStep(maxY, 5), niceStep(maxX, 8)
	maxY = math.Ceil(maxY/stepY) * stepY
	maxX = math.Ceil(maxX/stepX) * stepX
	px := func(x float64) float64 { return l + (w-l-r)*x/maxX }
	py := func(y float64) float64 { return h - b - (h-t-b)*y/maxY }
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`, w, h)
	fmt.Fprintf(&sb, `<text x="%.0f" y="16" font-size="13" font-weight="bold">%s</text>`, l, html.EscapeString(title))
	for y := 0.0; y <= maxY*1.0001; y += stepY {
		fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#e4e4e4"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>`,
			l, py(y), w-r, py(y), l-4, py(y)+4, html.EscapeString(tickLabel(y, unit)))
	}
	for x := 0.0; x <= maxX*1.0001; x += stepX {
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#333"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`,
			px(x), h-b, px(x), h-b+4, px(x), h-b+16, tickLabel(x, "s"))
	}
	fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, l, h-b, w-r, h-b)
	fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, l, t, l, h-b)
	fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle">time since the load began</text>`, (l+w-r)/2, h-6)
	for i, s := range ss {
		var pts []string
		for j := range s.xs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.xs[j]), py(s.ys[j])))
		}
		c := colour(i, len(ss))
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, c, strings.Join(pts, " "))
		fmt.Fprintf(&sb, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`,
			w-r+10, t+float64(i)*16, c, w-r+24, t+float64(i)*16+9, html.EscapeString(s.name))
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

// latencyRow is one bar group of a latency chart.
type latencyRow struct {
	name string
	p    *Percentiles
}

// latencyChart is an inline SVG grouped bar chart (log scale) of the
// accept latency percentiles per scenario.
func latencyChart(res *Results) string {
	var rows []latencyRow
	for _, s := range res.Scenarios {
		if s.Latency != nil {
			rows = append(rows, latencyRow{s.Name, s.Latency})
		}
	}
	return percentileChart("Accept latency percentiles (ms, log scale)", rows)
}

// readLatencyChart is latencyChart of s's reads, per read type.
func readLatencyChart(s *ScenarioResult) string {
	var rows []latencyRow
	for _, typ := range readTypes {
		if t := s.Reads.ByType[typ]; t != nil && t.Latency != nil {
			rows = append(rows, latencyRow{typ, t.Latency})
		}
	}
	return percentileChart(s.Name+": read latency percentiles (ms, log scale)", rows)
}

// percentileChart is an inline SVG grouped bar chart (log scale) of rows.
func percentileChart(title string, rows []latencyRow) string {
	if len(rows) == 0 {
		return ""
	}
	const w, rowH, l = 720.0, 64.0, 110.0
	h := rowH*float64(len(rows)) + 40
	maxV := 1.0
	for _, r := range rows {
		maxV = max(maxV, r.p.Max)
	}
	scale := func(v float64) float64 { // log10 from 0.1 ms
		if v < 0.1 {
			v = 0.1
		}
		return (w - l - 110) * (math.Log10(v) + 1) / (math.Log10(maxV) + 1)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`, w, h+24)
	fmt.Fprintf(&sb, `<text x="10" y="16" font-size="13" font-weight="bold">%s</text>`, html.EscapeString(title))
	// Decades from 0.1 ms: the log scale's ticks, with their unit.
	for v := 0.1; v <= maxV*1.0001 || v <= 0.1; v *= 10 {
		x := l + scale(v)
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="26" x2="%.1f" y2="%.0f" stroke="#e4e4e4"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`,
			x, x, h, x, h+14, strconv.FormatFloat(v, 'g', 3, 64)+" ms")
	}
	labels := []string{"p50", "p95", "p99", "max"}
	for i, r := range rows {
		y0 := 30 + rowH*float64(i)
		fmt.Fprintf(&sb, `<text x="4" y="%.0f">%s</text>`, y0+30, html.EscapeString(r.name))
		for j, v := range []float64{r.p.P50, r.p.P95, r.p.P99, r.p.Max} {
			y := y0 + float64(j)*14
			fmt.Fprintf(&sb, `<rect x="%.0f" y="%.0f" width="%.1f" height="12" fill="%s"/><text x="%.1f" y="%.0f">%s %.1f ms</text>`,
				l, y, scale(v), palette[j], l+scale(v)+4, y+10, labels[j], v)
		}
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

// htmlTable is t as an HTML table: numbers right-aligned.
func htmlTable(t table) string {
	var sb strings.Builder
	sb.WriteString("<table><thead><tr>")
	for _, h := range t.header {
		sb.WriteString("<th>" + html.EscapeString(h) + "</th>")
	}
	sb.WriteString("</tr></thead><tbody>")
	for _, r := range t.rows {
		sb.WriteString("<tr>")
		for i, c := range r {
			class := ""
			if _, err := strconv.ParseFloat(strings.TrimPrefix(c, "≥"), 64); err == nil || c == "-" || c == "n/a" {
				class = ` class="n"`
			}
			if i == 0 {
				class = ` class="name"`
			}
			sb.WriteString("<td" + class + ">" + html.EscapeString(c) + "</td>")
		}
		sb.WriteString("</tr>")
	}
	sb.WriteString("</tbody></table>")
	return sb.String()
}

// WriteHTML writes a self-contained HTML report (inline SVG, no external
// assets) to path.
func (res *Results) WriteHTML(path string) error {
	var thr, lag []series
	for _, s := range res.Scenarios {
		if len(s.Timeline) == 0 {
			continue
		}
		var a, p, g series
		a.name, p.name, g.name = s.Name+" accepted", s.Name+" persisted", s.Name
		for _, tp := range s.Timeline {
			a.xs, a.ys = append(a.xs, tp.T), append(a.ys, tp.AcceptedPS)
			if tp.PersistedPS != nil {
				p.xs, p.ys = append(p.xs, tp.T), append(p.ys, *tp.PersistedPS)
			}
			if tp.LagP99Ms != nil {
				g.xs, g.ys = append(g.xs, tp.T), append(g.ys, *tp.LagP99Ms)
			}
		}
		if s.Name != ScenarioBareHTTP {
			thr = append(thr, a)
			if len(p.xs) > 0 {
				thr = append(thr, p)
			}
		}
		if len(g.xs) > 0 {
			lag = append(lag, g)
		}
	}
	var sb strings.Builder
	sb.WriteString(`<!doctype html><html><head><meta charset="utf-8"><title>datastorage bench</title>
<style>body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em}pre{background:#f6f6f6;padding:8px;overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 6px}th{background:#f0f0f0;position:sticky;top:0}
td.n{text-align:right;font-variant-numeric:tabular-nums}td.name{font-weight:bold;white-space:nowrap}tbody tr:nth-child(even){background:#fafafa}</style></head><body>`)
	fmt.Fprintf(&sb, "<h1>Audit write path: bench report</h1><p>Started %s, wall time %.0f s. %s.</p>",
		res.StartedAt.Format("2006-01-02 15:04:05 UTC"), res.WallTime, html.EscapeString(res.machineLine()))
	sb.WriteString("<h2>Summary</h2>" + htmlTable(res.summaryTable()))
	if cpu := res.cpuTable(); len(cpu.rows) > 0 {
		sb.WriteString("<h2>CPU per record</h2><p>µs of CPU per persisted record (accepted, where nothing is persisted), by process; server = agents + central + postgres, the load generator (bench) apart.</p>")
		sb.WriteString(htmlTable(cpu))
	}
	if len(res.Targets) > 0 {
		sb.WriteString("<h2>Targets</h2>" + htmlTable(res.targetTable()))
	}
	var details bytes.Buffer
	for _, s := range res.Scenarios {
		if len(s.Errors) > 0 {
			fmt.Fprintf(&details, "%s errors %v\n", s.Name, s.Errors)
		}
		if s.Reads != nil {
			s.writeReads(&details)
		}
	}
	res.writeLedgerCost(&details)
	if details.Len() > 0 {
		sb.WriteString("<h2>Details</h2><pre>" + html.EscapeString(strings.TrimSpace(details.String())) + "</pre>")
	}
	sb.WriteString("<h2>Scenarios</h2><ul>")
	for _, s := range res.Scenarios {
		fmt.Fprintf(&sb, "<li><b>%s</b>: %s</li>", html.EscapeString(s.Name), html.EscapeString(s.Description))
	}
	sb.WriteString("</ul>")
	// A section with nothing measured is left out.
	section := func(heading, body string) {
		if body != "" {
			sb.WriteString("<h2>" + html.EscapeString(heading) + "</h2>" + body)
		}
	}
	section("Throughput over time", lineChart("Records per second (accepted, persisted)", "rec/s", thr))
	section("Lag from accept to committed row over time", lineChart("p99 lag per second of acceptance (ms)", "ms", lag))
	section("Latency", latencyChart(res))
	for _, s := range res.Scenarios {
		if s.Reads != nil { // the counts are in the details above
			section("Reads during the write load ("+s.Name+")", readLatencyChart(s))
		}
	}
	sb.WriteString("</body></html>\n")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	return nil
}
