package readload

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// DefaultSamples is the zero value of MeasureConfig.Samples.
const DefaultSamples = 1000

// MeasureConfig configures Measure.
type MeasureConfig struct {
	// DatabaseURL is a database Load filled. Required.
	DatabaseURL string
	// Samples is how many timelines, and how many pages under each filter,
	// are timed. Zero: DefaultSamples.
	Samples int
	// Seed chooses the values and positions.
	Seed uint64
	// SkipExport leaves out the export of the whole table.
	SkipExport bool
	// Progress receives a line per measurement. Nil: none.
	Progress io.Writer
}

// Latency summarises the times of one kind of read.
type Latency struct {
	Name          string
	N             int
	Values        int // distinct filter values drawn from
	P50, P99, Max time.Duration
	Rows          int // rows returned, all samples together
}

// ExportRate is the export of the whole table: its rate and this
// process's resident memory, sampled every 500,000 rows.
type ExportRate struct {
	Rows                      int64
	Elapsed                   time.Duration
	RSSFirst, RSSLast, RSSMax int64 // bytes; RSSFirst at the first row
}

// RowsPerSecond is the export's rate.
func (e *ExportRate) RowsPerSecond() float64 { return float64(e.Rows) / e.Elapsed.Seconds() }

// Measurement is what Measure found.
type Measurement struct {
	Reads  []Latency
	Export *ExportRate
}

// filterColumns are the columns behind the read API's filters, to draw
// values from the data.
var filterColumns = map[wire.Kind]map[string]string{
	wire.KindRemediation: {"remediationRequestID": "remediation_request_id", "alertName": "alert_name",
		"cluster": "cluster", "namespace": "namespace", "actionType": "action_type", "status": "status",
		"serviceAccount": "service_account"},
	wire.KindWorkflow: {"workflowID": "workflow_id", "stepName": "step_name", "stepStatus": "step_status",
		"serviceAccount": "service_account"},
}

var tables = map[wire.Kind]string{wire.KindRemediation: "remediation_audit", wire.KindWorkflow: "workflow_audit"}

// Measure times, through package storage, cfg.Samples timelines (of
// remediations drawn from the data, limit 1001 as the API asks), and
// cfg.Samples pages of 100 under each single filter and without one. A
// filter's value is drawn uniformly among the field's distinct values (a
// value seen once in ten thousand rows as often as the commonest); for
// remediation and workflow IDs among a random sample. Each page is, at
// random, newest or oldest first, and the first page, a page after a random
// position in the data's time span, or the first page of a random 7-day
// range. Then it exports both tables whole.
func Measure(ctx context.Context, cfg MeasureConfig) (*Measurement, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("readload: DatabaseURL is required")
	}
	samples := cmp.Or(cfg.Samples, DefaultSamples)
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9a9e))
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("readload: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: cfg.DatabaseURL, MaxConns: 2})
	if err != nil {
		return nil, err
	}
	defer db.Close()

	var first, last time.Time
	if err := conn.QueryRow(ctx, `SELECT min(created_at), max(created_at) FROM remediation_audit`).Scan(&first, &last); err != nil {
		return nil, fmt.Errorf("readload: time span: %w", err)
	}
	m := &Measurement{}

	rrs, err := sample(ctx, conn, "remediation_audit", "remediation_request_id", samples, cfg.Seed)
	if err != nil {
		return nil, err
	}
	tl := Latency{Name: "timeline", Values: len(rrs)}
	times := make([]time.Duration, 0, samples)
	for range samples {
		rr := rrs[rng.IntN(len(rrs))]
		t0 := time.Now()
		got, err := db.Timeline(ctx, rr, 1001)
		times = append(times, time.Since(t0))
		if err != nil {
			return nil, err
		}
		tl.Rows += len(got)
	}
	m.Reads = append(m.Reads, summarize(tl, times))
	fmt.Fprintln(progress, m.Reads[len(m.Reads)-1])

	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		for _, name := range append([]string{""}, storage.FilterFields(kind)...) {
			var values []string
			if name != "" {
				if values, err = fieldValues(ctx, conn, kind, filterColumns[kind][name], samples, cfg.Seed); err != nil {
					return nil, err
				}
			}
			l := Latency{Name: string(kind) + " page, " + cmp.Or(name, "no filter"), Values: len(values)}
			times = times[:0]
			for range samples {
				q := storage.AuditQuery{Kind: kind, Limit: 100, Ascending: rng.IntN(2) == 0}
				if name != "" {
					q.Filters = map[string]string{name: values[rng.IntN(len(values))]}
				}
				at := first.Add(time.Duration(rng.Int64N(int64(last.Sub(first)) + 1)))
				switch rng.IntN(3) {
				case 1: // a later page: after a position anywhere in the span
					q.After = &storage.Position{OccurredAt: at, ServiceAccount: "~", ID: "~"}
				case 2: // a week
					q.Since, q.Until = at.Add(-7*24*time.Hour), at
				}
				t0 := time.Now()
				got, err := db.QueryAudits(ctx, q)
				times = append(times, time.Since(t0))
				if err != nil {
					return nil, err
				}
				l.Rows += len(got)
			}
			m.Reads = append(m.Reads, summarize(l, times))
			fmt.Fprintln(progress, m.Reads[len(m.Reads)-1])
		}
	}

	if !cfg.SkipExport {
		fmt.Fprintln(progress, "readload: exporting both tables")
		if m.Export, err = export(ctx, db, last.Add(time.Hour)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (l Latency) String() string {
	return fmt.Sprintf("%-44s n=%-5d values=%-5d p50=%-9s p99=%-9s max=%-9s rows/read=%.1f", l.Name, l.N, l.Values,
		l.P50.Round(10*time.Microsecond), l.P99.Round(10*time.Microsecond), l.Max.Round(10*time.Microsecond),
		float64(l.Rows)/float64(max(l.N, 1)))
}

func summarize(l Latency, times []time.Duration) Latency {
	slices.Sort(times)
	l.N = len(times)
	l.P50 = times[len(times)/2]
	l.P99 = times[(len(times)*99+99)/100-1]
	l.Max = times[len(times)-1]
	return l
}

// fieldValues is the distinct values of column (at most limit of them,
// drawn at random by seed when there are more).
func fieldValues(ctx context.Context, conn *pgx.Conn, kind wire.Kind, column string, limit int, seed uint64) ([]string, error) {
	// A loose index scan: one index probe per distinct value.
	rows, err := conn.Query(ctx, `WITH RECURSIVE v(x) AS (
		(SELECT `+column+` FROM `+tables[kind]+` WHERE `+column+` IS NOT NULL ORDER BY 1 LIMIT 1)
		UNION ALL
		SELECT (SELECT `+column+` FROM `+tables[kind]+` WHERE `+column+` > v.x ORDER BY 1 LIMIT 1) FROM v WHERE v.x IS NOT NULL
	) SELECT x FROM v WHERE x IS NOT NULL LIMIT $1`, limit+1)
	if err != nil {
		return nil, fmt.Errorf("readload: values of %s: %w", column, err)
	}
	values, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("readload: values of %s: %w", column, err)
	}
	if len(values) > limit {
		return sample(ctx, conn, tables[kind], column, limit, seed)
	}
	return values, nil
}

// sample is up to n values of column from a random sample of rows, the
// same ones for the same seed and data (the sample is REPEATABLE, and the
// values kept are chosen by their hash, not by the plan's order, which
// could be sorted and keep the n oldest remediation IDs).
func sample(ctx context.Context, conn *pgx.Conn, table, column string, n int, seed uint64) ([]string, error) {
	var rows int64
	if err := conn.QueryRow(ctx, `SELECT reltuples::bigint FROM pg_class WHERE relname = $1`, table).Scan(&rows); err != nil {
		return nil, fmt.Errorf("readload: size of %s: %w", table, err)
	}
	pct := min(100, max(0.001, 300*float64(n)/float64(max(rows, 1))))
	r, err := conn.Query(ctx, `SELECT x FROM (SELECT DISTINCT `+column+` AS x FROM `+table+` TABLESAMPLE BERNOULLI (`+
		strconv.FormatFloat(pct, 'f', 4, 64)+`) REPEATABLE ($2) WHERE `+column+` IS NOT NULL) v ORDER BY md5(x), x LIMIT $1`,
		n, float64(seed%(1<<53)))
	if err != nil {
		return nil, fmt.Errorf("readload: sample of %s: %w", column, err)
	}
	values, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("readload: sample of %s: %w", column, err)
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("readload: %s has no %s: load it first", table, column)
	}
	return values, nil
}

// export streams both tables whole through ExportAudits and samples this
// process's RSS on the way.
func export(ctx context.Context, db *storage.DB, until time.Time) (*ExportRate, error) {
	e := &ExportRate{}
	sampleRSS := func() {
		rss, err := residentBytes()
		if err != nil {
			return
		}
		if e.RSSFirst == 0 {
			e.RSSFirst = rss
		}
		e.RSSLast, e.RSSMax = rss, max(e.RSSMax, rss)
	}
	t0 := time.Now()
	err := db.ExportAudits(ctx, storage.ExportQuery{Kinds: []wire.Kind{wire.KindRemediation, wire.KindWorkflow}, Until: until},
		func(*wire.AuditEntry) error {
			if e.Rows%500_000 == 0 {
				sampleRSS()
			}
			e.Rows++
			return nil
		})
	e.Elapsed = time.Since(t0)
	sampleRSS()
	return e, err
}

// residentBytes is this process's resident set (VmRSS), Linux only.
func residentBytes() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := bytes.CutPrefix(s.Bytes(), []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}
