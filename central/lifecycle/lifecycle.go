// Package lifecycle keeps the audit tables' time partitions (storage
// partitions.go, retention.go) in step with the clock, in the background of
// every central replica: partitions are created ahead of time, so that a
// write never finds none for its event time, and expired ones are dropped
// when a retention is configured, except those a legal hold keeps. Both run
// under storage's advisory lock, so any number of replicas may run them.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

const (
	// DefaultAhead is how many whole periods after the current one are kept
	// created: two months by default, so an alert has weeks to be answered.
	DefaultAhead = 2
	// DefaultInterval is how often a replica checks.
	DefaultInterval = 10 * time.Minute
	// MinRetention is the shortest retention accepted. Agents may forward
	// records up to the central's --max-received-age (30 days by default)
	// after they accepted them, and a record older than the retention is
	// refused; an audit trail kept for less than a month is rarely one.
	MinRetention = 30 * 24 * time.Hour
	// dropMargin delays a drop past the horizon, so that a replica whose
	// clock is behind never accepts a record for a partition another
	// replica just dropped.
	dropMargin = time.Hour
)

// Store is the audit database (storage.DB).
type Store interface {
	EnsurePartitions(ctx context.Context, until time.Time, period storage.Period) ([]storage.Partition, error)
	Partitions(ctx context.Context, kind wire.Kind) ([]storage.Partition, error)
	ApplyRetention(ctx context.Context, kind wire.Kind, horizon time.Time) (storage.RetentionResult, error)
	LinkCleanups(ctx context.Context) ([]storage.Partition, error)
	LinksDeleted(ctx context.Context, p storage.Partition) error
}

// Links is the vector database (storage.VectorDB), whose embedding links of
// dropped partitions are deleted after them.
type Links interface {
	DeleteLinks(ctx context.Context, kind wire.Kind, from, to time.Time) (int64, error)
}

// Config configures a Manager.
type Config struct {
	Store Store
	Links Links // nil: no clean-up of links
	// Period is the span of a partition. Zero: storage.PeriodMonth.
	Period storage.Period
	// Ahead is how many periods after the current one must exist. Zero:
	// DefaultAhead.
	Ahead int
	// Retention is how long each kind is kept, by event time; absent or
	// zero: forever.
	Retention map[wire.Kind]time.Duration
	// Interval between checks. Zero: DefaultInterval.
	Interval time.Duration
	// ObserveOnly only watches how far ahead partitions exist (the metric):
	// for serving replicas whose role may not change the schema, while
	// `central maintain` runs as the owner.
	ObserveOnly bool
	Logger      zerolog.Logger
	Metrics     *metrics.Set // nil: none registered
	Now         func() time.Time
}

func (c *Config) withDefaults() {
	if c.Period == "" {
		c.Period = storage.PeriodMonth
	}
	if c.Ahead == 0 {
		c.Ahead = DefaultAhead
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate checks the settings a user gives.
func (c Config) Validate() error {
	if c.Period != "" {
		if _, err := storage.ParsePeriod(string(c.Period)); err != nil {
			return err
		}
	}
	if c.Ahead < 0 || c.Ahead > 36 {
		return fmt.Errorf("partitions ahead %d: want 1 to 36", c.Ahead)
	}
	for kind, d := range c.Retention {
		if kind != wire.KindRemediation && kind != wire.KindWorkflow {
			return fmt.Errorf("retention: unknown kind %q", kind)
		}
		if d != 0 && d < MinRetention {
			return fmt.Errorf("retention of %s audits %s: the shortest is %d days", kind, days(d), MinRetention/(24*time.Hour))
		}
	}
	return nil
}

// ParseRetention reads "remediation=365,workflow=90" (days per kind; a kind
// left out is kept forever). "" keeps everything.
func ParseRetention(s string) (map[wire.Kind]time.Duration, error) {
	out := map[wire.Kind]time.Duration{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		kind, n, ok := strings.Cut(strings.TrimSpace(part), "=")
		var d int
		if _, err := fmt.Sscanf(n, "%d", &d); !ok || err != nil || fmt.Sprint(d) != n || d <= 0 {
			return nil, fmt.Errorf("retention %q: want kind=days, e.g. remediation=365,workflow=90", part)
		}
		k := wire.Kind(kind)
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("retention: %s given twice", kind)
		}
		out[k] = time.Duration(d) * 24 * time.Hour
	}
	return out, nil
}

func days(d time.Duration) string { return fmt.Sprintf("%g days", d.Hours()/24) }

// Manager runs the checks.
type Manager struct {
	cfg   Config
	log   zerolog.Logger
	ahead [2]atomic.Int64 // per kind: Unix seconds of the newest partition's end; 0 unknown

	lastSuccess                                     atomic.Int64 // Unix seconds
	held                                            [2]atomic.Int64
	dropped, droppedBytes, droppedRows              [2]*metrics.Counter
	created, keysDeleted, linksDeleted, runFailures *metrics.Counter
}

var kinds = [2]wire.Kind{wire.KindRemediation, wire.KindWorkflow}

// New validates cfg and registers the metrics.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("lifecycle: Store is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lifecycle: %w", err)
	}
	cfg.withDefaults()
	m := &Manager{cfg: cfg, log: cfg.Logger.With().Str("component", "lifecycle").Logger()}
	set := cfg.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	m.created = set.NewCounter(`datastorage_partitions_created_total`)
	m.runFailures = set.NewCounter(`datastorage_lifecycle_failures_total`)
	m.keysDeleted = set.NewCounter(`datastorage_retention_keys_deleted_total`)
	m.linksDeleted = set.NewCounter(`datastorage_retention_links_deleted_total`)
	set.NewGauge(`datastorage_lifecycle_last_success_timestamp_seconds`, func() float64 { return float64(m.lastSuccess.Load()) })
	for i, k := range kinds {
		label := `{kind="` + string(k) + `"}`
		m.dropped[i] = set.NewCounter(`datastorage_retention_dropped_partitions_total` + label)
		m.droppedBytes[i] = set.NewCounter(`datastorage_retention_dropped_bytes_total` + label)
		m.droppedRows[i] = set.NewCounter(`datastorage_retention_dropped_rows_total` + label)
		set.NewGauge(`datastorage_retention_held_partitions`+label, func() float64 { return float64(m.held[i].Load()) })
		// How far ahead of now writes are covered: the alert rule fires when
		// it falls below a period (the creation has been failing).
		set.NewGauge(`datastorage_partitions_ahead_seconds`+label, func() float64 {
			end := m.ahead[i].Load()
			if end == 0 {
				return math.NaN()
			}
			return float64(end - m.cfg.Now().Unix())
		})
	}
	return m, nil
}

// Horizon is the oldest event time kind keeps at now; the zero time when it
// is kept forever. The central refuses records older than it: their
// partition is, or is about to be, dropped.
func (m *Manager) Horizon(kind wire.Kind, now time.Time) time.Time {
	d := m.cfg.Retention[kind]
	if d == 0 {
		return time.Time{}
	}
	return now.Add(-d)
}

// retryAfterFailure is the wait after a failed check (the database down,
// a lock not granted in time), when it is shorter than Interval.
const retryAfterFailure = 30 * time.Second

// Run checks at once, then every Interval (sooner after a failure), until
// ctx ends.
func (m *Manager) Run(ctx context.Context) {
	for {
		wait := m.cfg.Interval
		if err := m.RunOnce(ctx); err != nil && ctx.Err() == nil {
			m.runFailures.Inc()
			m.log.Error().Err(err).Msg("partition maintenance failed; retrying")
			wait = min(wait, retryAfterFailure)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// RunOnce creates the partitions ahead, applies retention and finishes the
// clean-up of dropped partitions' links.
func (m *Manager) RunOnce(ctx context.Context) error {
	now := m.cfg.Now()
	if m.cfg.ObserveOnly {
		return m.observe(ctx, now)
	}
	// Up to the end of the period Ahead periods after the one holding the
	// latest event time a write may carry (wire.MaxFutureSkew ahead).
	until := now.Add(wire.MaxFutureSkew)
	for range m.cfg.Ahead + 1 {
		until = m.cfg.Period.Next(until)
	}
	created, err := m.cfg.Store.EnsurePartitions(ctx, until, m.cfg.Period)
	for _, p := range created {
		m.created.Inc()
		m.log.Info().Str("kind", string(p.Kind)).Str("partition", p.Name).
			Time("from", p.From).Time("to", p.To).Msg("partition created")
	}
	if err != nil {
		return err
	}
	var errs []error
	for i, kind := range kinds {
		if horizon := m.Horizon(kind, now); !horizon.IsZero() {
			res, err := m.cfg.Store.ApplyRetention(ctx, kind, horizon.Add(-dropMargin))
			m.record(i, kind, res)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := m.cleanLinks(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return m.observe(ctx, now)
}

func (m *Manager) record(i int, kind wire.Kind, res storage.RetentionResult) {
	for _, d := range res.Dropped {
		m.dropped[i].Inc()
		m.droppedBytes[i].Add(int(d.SizeBytes))
		m.droppedRows[i].Add(int(d.RowsEstimate))
		m.log.Info().Str("kind", string(kind)).Str("partition", d.Name).
			Time("from", d.From).Time("to", d.To).Int64("bytes", d.SizeBytes).Int64("rows_estimate", d.RowsEstimate).
			Msg("retention dropped a partition")
	}
	for _, p := range res.Held {
		m.log.Info().Str("kind", string(kind)).Str("partition", p.Name).Time("to", p.To).
			Msg("retention keeps an expired partition: a legal hold matches some of its rows")
	}
	m.held[i].Store(int64(len(res.Held)))
	m.keysDeleted.Add(int(res.KeysDeleted))
}

// observe updates how far ahead partitions exist.
func (m *Manager) observe(ctx context.Context, now time.Time) error {
	for i, kind := range kinds {
		parts, err := m.cfg.Store.Partitions(ctx, kind)
		if err != nil {
			return err
		}
		if len(parts) > 0 {
			m.ahead[i].Store(parts[len(parts)-1].To.Unix())
		}
	}
	m.lastSuccess.Store(now.Unix())
	return nil
}

// cleanLinks deletes the embedding links of dropped partitions.
func (m *Manager) cleanLinks(ctx context.Context) error {
	if m.cfg.Links == nil {
		return nil
	}
	pending, err := m.cfg.Store.LinkCleanups(ctx)
	if err != nil {
		return err
	}
	for _, p := range pending {
		n, err := m.cfg.Links.DeleteLinks(ctx, p.Kind, p.From, p.To)
		m.linksDeleted.Add(int(n))
		if err != nil {
			return err
		}
		if err := m.cfg.Store.LinksDeleted(ctx, p); err != nil {
			return err
		}
	}
	return nil
}
