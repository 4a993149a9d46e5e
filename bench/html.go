package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"}

type series struct {
	name string
	xs   []float64
	ys   []float64
}

// lineChart is an inline SVG line chart of ss.
func lineChart(title, yLabel string, ss []series) string {
	const w, h, l, r, t, b = 720.0, 260.0, 60.0, 160.0, 30.0, 30.0
	var maxX, maxY float64
	for _, s := range ss {
		for i := range s.xs {
			maxX, maxY = max(maxX, s.xs[i]), max(maxY, s.ys[i])
		}
	}
	if maxX == 0 || maxY == 0 {
		return ""
	}
	maxY *= 1.1
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`, w, h)
	fmt.Fprintf(&sb, `<text x="%.0f" y="16" font-size="13" font-weight="bold">%s</text>`, l, html.EscapeString(title))
	fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, l, h-b, w-r, h-b)
	fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, l, t, l, h-b)
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		y := h - b - (h-t-b)*float64(i)/4
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="end">%.0f</text><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#eee"/>`, l-4, y+4, v, l, y, w-r, y)
	}
	fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle">seconds</text>`, (l+w-r)/2, h-4)
	fmt.Fprintf(&sb, `<text x="12" y="%.0f" transform="rotate(-90 12 %.0f)" text-anchor="middle">%s</text>`, (t+h-b)/2, (t+h-b)/2, html.EscapeString(yLabel))
	for i, s := range ss {
		var pts []string
		for j := range s.xs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", l+(w-l-r)*s.xs[j]/maxX, h-b-(h-t-b)*s.ys[j]/maxY))
		}
		c := palette[i%len(palette)]
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
		return (w - l - 20) * (math.Log10(v) + 1) / (math.Log10(maxV) + 1)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`, w, h)
	fmt.Fprintf(&sb, `<text x="10" y="16" font-size="13" font-weight="bold">%s</text>`, html.EscapeString(title))
	labels := []string{"p50", "p95", "p99", "max"}
	for i, r := range rows {
		y0 := 30 + rowH*float64(i)
		fmt.Fprintf(&sb, `<text x="4" y="%.0f">%s</text>`, y0+30, html.EscapeString(r.name))
		for j, v := range []float64{r.p.P50, r.p.P95, r.p.P99, r.p.Max} {
			y := y0 + float64(j)*14
			fmt.Fprintf(&sb, `<rect x="%.0f" y="%.0f" width="%.1f" height="12" fill="%s"/><text x="%.1f" y="%.0f">%s %.1f</text>`,
				l, y, scale(v), palette[j], l+scale(v)+4, y+10, labels[j], v)
		}
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

// WriteHTML writes a self-contained HTML report (inline SVG, no external
// assets) to path.
func (res *Results) WriteHTML(path string) error {
	var table bytes.Buffer
	res.WriteTable(&table)
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
<style>body{font-family:sans-serif;max-width:1100px;margin:1em auto}pre{background:#f6f6f6;padding:8px;overflow-x:auto}</style></head><body>`)
	fmt.Fprintf(&sb, "<h1>Audit write path: bench report</h1><p>Started %s, wall time %.0f s.</p>", res.StartedAt.Format("2006-01-02 15:04:05 UTC"), res.WallTime)
	sb.WriteString("<h2>Summary</h2><pre>" + html.EscapeString(table.String()) + "</pre>")
	sb.WriteString("<h2>Scenarios</h2><ul>")
	for _, s := range res.Scenarios {
		fmt.Fprintf(&sb, "<li><b>%s</b>: %s</li>", html.EscapeString(s.Name), html.EscapeString(s.Description))
	}
	sb.WriteString("</ul><h2>Throughput over time</h2>")
	sb.WriteString(lineChart("Records per second (accepted, persisted)", "records/s", thr))
	sb.WriteString("<h2>Lag from accept to committed row over time</h2>")
	sb.WriteString(lineChart("p99 lag per second of acceptance (ms)", "ms", lag))
	sb.WriteString("<h2>Latency</h2>")
	sb.WriteString(latencyChart(res))
	for _, s := range res.Scenarios {
		if s.Reads != nil {
			// The counts are in the summary above.
			sb.WriteString("<h2>Reads during the write load (" + html.EscapeString(s.Name) + ")</h2>")
			sb.WriteString(readLatencyChart(s))
		}
	}
	sb.WriteString("</body></html>\n")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	return nil
}
