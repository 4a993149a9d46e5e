package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// Drop is retention (storage's ApplyRetention) dropping the oldest whole
// loaded month of both tables, and the empty history partition before it.
type Drop struct {
	Month time.Time // the month's first instant
	// Kinds is each table's retention run, remediation then workflow.
	Kinds []KindDrop
	// KeysVacuum is a VACUUM of audit_ids after the runs (the deleted
	// keys' space is then reused by later keys, not given back).
	KeysVacuum time.Duration
	// The sizes before the runs, after them, and after the VACUUM.
	Before, After, AfterVacuum Sizes
}

// KindDrop is one table's ApplyRetention call.
type KindDrop struct {
	Kind wire.Kind
	// Month is the month's partition as it was before the run: its rows
	// (counted) and size with its indexes and TOAST.
	Month                 string
	MonthRows, MonthBytes int64
	// Dropped is what the run dropped, sizes as it measured them.
	Dropped []storage.Dropped
	Keys    int64 // keys deleted from audit_ids
	// Gone is the time from the call until the month's partition was no
	// longer in the catalog (the drop transactions committed), polled
	// every pollEvery; Elapsed the whole call, the key clean-up included.
	Gone, Elapsed time.Duration
}

// pollEvery is how often the catalog is asked whether the partition is
// gone while retention runs.
const pollEvery = time.Millisecond

// DropTime is the time until both months' partitions were gone.
func (d *Drop) DropTime() time.Duration {
	var t time.Duration
	for _, k := range d.Kinds {
		t += k.Gone
	}
	return t
}

// DroppedBytes is the size of every partition the runs dropped.
func (d *Drop) DroppedBytes() int64 {
	var n int64
	for _, k := range d.Kinds {
		for _, p := range k.Dropped {
			n += p.SizeBytes
		}
	}
	return n
}

// measureDrop applies retention to both tables of the database at dsn with
// the horizon at the end of the oldest whole loaded month.
func measureDrop(ctx context.Context, cfg Config, dsn string, l *Load) (*Drop, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn, MaxConns: 2})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	d := &Drop{}
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		months := l.loadedMonths(kind)
		if len(months) == 0 {
			return nil, fmt.Errorf("lifecycle: no whole month loaded")
		}
		k := KindDrop{Kind: kind, Month: months[0].Name}
		d.Month = months[0].From
		if err := conn.QueryRow(ctx, `SELECT count(*), pg_total_relation_size($1::text::regclass) FROM `+
			pgx.Identifier{k.Month}.Sanitize(), k.Month).Scan(&k.MonthRows, &k.MonthBytes); err != nil {
			return nil, fmt.Errorf("lifecycle: %s: %w", k.Month, err)
		}
		d.Kinds = append(d.Kinds, k)
	}
	if err := checkpoint(ctx, conn); err != nil {
		return nil, err
	}
	if d.Before, err = measureSizes(ctx, conn); err != nil {
		return nil, err
	}
	horizon := storage.PeriodMonth.Next(d.Month)
	for i := range d.Kinds {
		if err := applyRetention(ctx, dsn, db, &d.Kinds[i], horizon); err != nil {
			return d, err
		}
		progressf(cfg, "retention dropped %s in %s (the call %s, %d keys)", d.Kinds[i].Month, d.Kinds[i].Gone,
			d.Kinds[i].Elapsed, d.Kinds[i].Keys)
	}
	if d.After, err = measureSizes(ctx, conn); err != nil {
		return d, err
	}
	t0 := time.Now()
	if _, err := conn.Exec(ctx, `VACUUM audit_ids`); err != nil {
		return d, fmt.Errorf("lifecycle: vacuum audit_ids: %w", err)
	}
	d.KeysVacuum = time.Since(t0)
	d.AfterVacuum, err = measureSizes(ctx, conn)
	return d, err
}

// applyRetention runs ApplyRetention for k.Kind, timing the whole call and,
// from another connection, the moment k.Month leaves the catalog.
func applyRetention(ctx context.Context, dsn string, db *storage.DB, k *KindDrop, horizon time.Time) error {
	poll, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("lifecycle: connect: %w", err)
	}
	defer poll.Close(context.WithoutCancel(ctx))
	pollCtx, stop := context.WithCancel(ctx)
	gone := make(chan time.Time, 1)
	go func() {
		defer close(gone)
		for pollCtx.Err() == nil {
			var missing bool
			if err := poll.QueryRow(pollCtx, `SELECT to_regclass($1) IS NULL`, k.Month).Scan(&missing); err != nil {
				return
			}
			if missing {
				gone <- time.Now()
				return
			}
			time.Sleep(pollEvery)
		}
	}()
	t0 := time.Now()
	res, err := db.ApplyRetention(ctx, k.Kind, horizon)
	k.Elapsed = time.Since(t0)
	var t1 time.Time
	if err == nil {
		select {
		case t1 = <-gone:
		case <-time.After(5 * time.Second):
		}
	}
	stop()
	for range gone { // until the poller has stopped
	}
	if err != nil {
		return fmt.Errorf("lifecycle: retention of %s: %w", k.Kind, err)
	}
	if t1.IsZero() {
		return fmt.Errorf("lifecycle: retention of %s: %s is still there", k.Kind, k.Month)
	}
	k.Gone, k.Dropped, k.Keys = t1.Sub(t0), res.Dropped, res.KeysDeleted
	return nil
}
