package readload

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// DefaultSamples is the zero value of MeasureConfig.Samples.
const DefaultSamples = 1000

// The paths Measure's reads can take (MeasureConfig.Via).
const (
	// ViaStorage reads through package storage in this process.
	ViaStorage = "storage"
	// ViaCentral reads through the central's HTTP API: a central binary
	// started on the database for the measurement (CentralConfig).
	ViaCentral = "central"
)

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
	// Via is the path the reads take: ViaStorage (also the zero value) or
	// ViaCentral.
	Via string
	// Central configures the central that ViaCentral starts.
	Central CentralConfig
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

// ExportRate is the export of the whole table: its rate, and the resident
// memory of the process that exported it (this one through storage, the
// central through its API), sampled every rssEvery from the first record
// to the last.
type ExportRate struct {
	Rows    int64
	Elapsed time.Duration // from asking to the last byte
	// Process is the exporting process: "readload" or "central (pid N)".
	Process string
	// Resident set (VmRSS) in bytes: at the first record, at the last, and
	// the largest and smallest sample; RSSSamples samples in all.
	RSSFirst, RSSLast, RSSMax, RSSMin int64
	RSSSamples                        int
	// CPU is the exporting process's CPU time (user and system) over
	// Elapsed.
	CPU time.Duration
	// Through the central only: the answer's size as received, whether it
	// was gzip, and its verification (export.Verify reading the received
	// file after the export, not timed in Elapsed).
	Received      int64
	Gzip          bool
	Trailer       *export.Trailer
	VerifyElapsed time.Duration
}

// RowsPerSecond is the export's rate.
func (e *ExportRate) RowsPerSecond() float64 { return float64(e.Rows) / e.Elapsed.Seconds() }

// Measurement is what Measure found.
type Measurement struct {
	// Via says which path the reads took: "storage (this process)" or the
	// central's URL and pid.
	Via    string
	Reads  []Latency
	Export *ExportRate
}

// reader is the path Measure's reads take. Each read times itself: the
// call through storage, or a request until the answer's last byte (its
// decoding after that is not timed).
type reader interface {
	// timeline reads remediationRequestID's timeline as the API does (at
	// most MaxTimelineEvents+1 rows from storage).
	timeline(ctx context.Context, remediationRequestID string) (time.Duration, int, error)
	// page reads one page of q.
	page(ctx context.Context, q storage.AuditQuery) (time.Duration, int, error)
	// export exports q whole and measures it.
	export(ctx context.Context, q storage.ExportQuery) (*ExportRate, error)
	// String names the path, for the report.
	String() string
	close()
}

// timelineLimit is what the read API asks storage for: its 1,000 events
// and one more, to tell a truncated timeline.
const timelineLimit = 1001

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

// Measure times, through package storage or through a central's HTTP API
// (cfg.Via), cfg.Samples timelines (of remediations drawn from the data,
// limit 1001 as the API asks), and cfg.Samples pages of 100 under each
// single filter and without one. A filter's value is drawn uniformly among
// the field's distinct values (a value seen once in ten thousand rows as
// often as the commonest); for remediation and workflow IDs among a random
// sample. Each page is, at random, newest or oldest first, and the first
// page, a page after a random position in the data's time span, or the
// first page of a random 7-day range. Then it exports both tables whole.
// The values and pages drawn depend on cfg.Seed and the data only, so both
// paths read the same rows.
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
	var r reader
	switch cmp.Or(cfg.Via, ViaStorage) {
	case ViaStorage:
		r, err = openStorage(ctx, cfg.DatabaseURL)
	case ViaCentral:
		r, err = startCentral(ctx, cfg.DatabaseURL, cfg.Central, progress)
	default:
		err = fmt.Errorf("readload: Via %q: want %q or %q", cfg.Via, ViaStorage, ViaCentral)
	}
	if err != nil {
		return nil, err
	}
	defer r.close()
	fmt.Fprintln(progress, "readload: reads via", r)

	var first, last time.Time
	if err := conn.QueryRow(ctx, `SELECT min(created_at), max(created_at) FROM remediation_audit`).Scan(&first, &last); err != nil {
		return nil, fmt.Errorf("readload: time span: %w", err)
	}
	m := &Measurement{Via: r.String()}

	rrs, err := sample(ctx, conn, "remediation_audit", "remediation_request_id", samples, cfg.Seed)
	if err != nil {
		return nil, err
	}
	tl := Latency{Name: "timeline", Values: len(rrs)}
	times := make([]time.Duration, 0, samples)
	for range samples {
		rr := rrs[rng.IntN(len(rrs))]
		took, got, err := r.timeline(ctx, rr)
		if err != nil {
			return nil, err
		}
		times = append(times, took)
		tl.Rows += got
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
				took, got, err := r.page(ctx, q)
				if err != nil {
					return nil, err
				}
				times = append(times, took)
				l.Rows += got
			}
			m.Reads = append(m.Reads, summarize(l, times))
			fmt.Fprintln(progress, m.Reads[len(m.Reads)-1])
		}
	}

	if !cfg.SkipExport {
		fmt.Fprintln(progress, "readload: exporting both tables")
		m.Export, err = r.export(ctx, storage.ExportQuery{Kinds: []wire.Kind{wire.KindRemediation, wire.KindWorkflow},
			Until: last.Add(time.Hour)})
		if err != nil {
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

// String is the export's report: its rate, the exporting process's memory
// and CPU, and through the central the answer's size and verification.
func (e *ExportRate) String() string {
	const mib = 1 << 20
	s := fmt.Sprintf("export: %d rows in %s, %.0f rows/s; %s RSS %.1f MiB at the first row, %.1f MiB at the last, "+
		"%.1f MiB max, %.1f MiB min (%d samples, every %s); CPU %s (%.2f cores)",
		e.Rows, e.Elapsed.Round(time.Millisecond), e.RowsPerSecond(), e.Process,
		float64(e.RSSFirst)/mib, float64(e.RSSLast)/mib, float64(e.RSSMax)/mib, float64(e.RSSMin)/mib,
		e.RSSSamples, rssEvery, e.CPU.Round(10*time.Millisecond), e.CPU.Seconds()/e.Elapsed.Seconds())
	if t := e.Trailer; t != nil {
		encoding := "plain"
		if e.Gzip {
			encoding = "gzip"
		}
		s += fmt.Sprintf("\nexport: %.1f MiB received (%s, %.0f bytes/row), verified by export.Verify in %s: %d records, %s, key %s",
			float64(e.Received)/mib, encoding, float64(e.Received)/float64(max(e.Rows, 1)),
			e.VerifyElapsed.Round(time.Millisecond), t.Records, t.Digest[:min(len(t.Digest), 23)]+"…", t.KeyID)
	}
	return s
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
	// The estimate of every partition (an unpartitioned table is its own
	// only leaf).
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
		FROM pg_partition_tree($1::regclass) t JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf`, table).Scan(&rows); err != nil {
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

// storageReads reads through package storage in this process.
type storageReads struct{ db *storage.DB }

func openStorage(ctx context.Context, databaseURL string) (*storageReads, error) {
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: databaseURL, MaxConns: 2})
	if err != nil {
		return nil, err
	}
	return &storageReads{db: db}, nil
}

func (s *storageReads) String() string { return "storage (this process)" }

func (s *storageReads) close() { s.db.Close() }

func (s *storageReads) timeline(ctx context.Context, rr string) (time.Duration, int, error) {
	t0 := time.Now()
	got, err := s.db.Timeline(ctx, rr, timelineLimit)
	return time.Since(t0), len(got), err
}

func (s *storageReads) page(ctx context.Context, q storage.AuditQuery) (time.Duration, int, error) {
	t0 := time.Now()
	got, err := s.db.QueryAudits(ctx, q)
	return time.Since(t0), len(got), err
}

// export streams q through ExportAudits and samples this process's RSS
// from the first row to the last.
func (s *storageReads) export(ctx context.Context, q storage.ExportQuery) (*ExportRate, error) {
	e := &ExportRate{Process: "readload"}
	self := proc("self")
	cpu0, err := self.cpu()
	if err != nil {
		return nil, err
	}
	var rss *rssSampler
	t0 := time.Now()
	err = s.db.ExportAudits(ctx, q, func(*wire.AuditEntry, int64) error {
		if rss == nil {
			rss = sampleRSS(self)
		}
		e.Rows++
		return nil
	})
	e.Elapsed = time.Since(t0)
	if rss != nil {
		if rerr := rss.finish(e); err == nil {
			err = rerr
		}
	}
	if cpu1, cerr := self.cpu(); cerr == nil {
		e.CPU = cpu1 - cpu0
	}
	return e, err
}
