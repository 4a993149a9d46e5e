package lifecycle

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubernaut/datastorage/wire"
)

// String is the report as printed by bench/cmd/lifecycle.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lifecycle: %d rows over %d months, seed %d, in %s\n", r.Rows, r.Months, r.Seed,
		r.Elapsed.Round(time.Second))
	fmt.Fprintf(&b, "machine: %s\n", r.Machine)
	if r.Load != nil {
		b.WriteString(r.Load.String())
	}
	if r.Writes != nil {
		b.WriteString(r.Writes.String())
	}
	if r.Drop != nil {
		b.WriteString(r.Drop.String())
	}
	if r.Migration != nil {
		b.WriteString(r.Migration.String())
	}
	return b.String()
}

func (l *Load) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "1. load: %d remediation_audit + %d workflow_audit rows and %d keys by COPY in %s (%.0f rows/s), "+
		"VACUUM ANALYZE %s\n", l.RemediationRows, l.WorkflowRows, l.Keys, l.Copy.Round(time.Second),
		float64(l.Rows())/l.Copy.Seconds(), l.Vacuum.Round(time.Second))
	months := l.loadedMonths(wire.KindRemediation)
	if len(months) > 0 {
		fmt.Fprintf(&b, "   %d monthly partitions %s to %s, %d to %d rows each (statistics), of %d partitions per table\n",
			len(months), months[0].From.Format("2006-01"), months[len(months)-1].From.Format("2006-01"),
			slices.Min(l.MonthRows), slices.Max(l.MonthRows), len(l.Layout[wire.KindRemediation]))
	}
	fmt.Fprintf(&b, "   sizes: %s\n", l.Sizes)
	return b.String()
}

func (s Sizes) String() string {
	return fmt.Sprintf("remediation_audit %s, workflow_audit %s, audit_ids %s, database %s",
		bytes(s.Remediation), bytes(s.Workflow), bytes(s.Keys), bytes(s.Database))
}

func (w *Writes) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "2. writes: WriteBatch, %d records per measurement in batches of up to %d (one writer each) "+
		"from %d goroutines, event times now; the same records into both databases\n", w.Records, w.BatchSize, w.Writers)
	for i, r := range w.Rounds {
		first := "empty first"
		if r.LoadedFirst {
			first = "loaded first"
		}
		fmt.Fprintf(&b, "   round %d (%s): empty %.0f records/s, loaded %.0f records/s, ratio %.2f\n", i+1, first,
			r.Empty, r.Loaded, r.Loaded/r.Empty)
	}
	fmt.Fprintf(&b, "   all rounds: empty %.0f records/s, loaded %.0f records/s, ratio %.2f (median of the rounds %.2f; target >= 0.90)\n",
		w.Empty, w.Loaded, w.Ratio(), w.MedianRatio())
	return b.String()
}

func (d *Drop) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "3. drop %s by storage's ApplyRetention (horizon the month's end), one call per table:\n", d.Month.Format("2006-01"))
	for _, k := range d.Kinds {
		var names []string
		for _, p := range k.Dropped {
			names = append(names, p.Name)
		}
		fmt.Fprintf(&b, "   %s (%d rows, %s): gone after %s (target < 1 s); the call %s with %d keys deleted from audit_ids; dropped %s\n",
			k.Month, k.MonthRows, bytes(k.MonthBytes), ms(k.Gone), ms(k.Elapsed), k.Keys, strings.Join(names, ", "))
	}
	tables := func(s Sizes) int64 { return s.Remediation + s.Workflow }
	fmt.Fprintf(&b, "   database %s -> %s (-%s), partitioned tables %s -> %s (-%s); the dropped partitions were %s\n",
		bytes(d.Before.Database), bytes(d.After.Database), bytes(d.Before.Database-d.After.Database),
		bytes(tables(d.Before)), bytes(tables(d.After)), bytes(tables(d.Before)-tables(d.After)), bytes(d.DroppedBytes()))
	fmt.Fprintf(&b, "   audit_ids %s -> %s, after VACUUM audit_ids (%s) %s: the keys' space is reused, not returned\n",
		bytes(d.Before.Keys), bytes(d.After.Keys), ms(d.KeysVacuum), bytes(d.AfterVacuum.Keys))
	return b.String()
}

func (m *Migration) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "4. migration 7 on %d + %d rows in the plain tables of migration %d (COPY %s, file copy for the second run %s)\n",
		m.RemediationRows, m.WorkflowRows, unpartitionedVersion, m.Copy.Round(time.Second), m.Clone.Round(time.Second))
	fmt.Fprintf(&b, "   as is: %s\n", m.AsIs)
	fmt.Fprintf(&b, "   keys built beforehand: %s\n", m.Prebuilt)
	return b.String()
}

func (r MigrationRun) String() string {
	var b strings.Builder
	if r.Prebuild > 0 {
		reused := "no"
		if r.Reused {
			reused = "yes"
		}
		fmt.Fprintf(&b, "CREATE UNIQUE INDEX CONCURRENTLY (both tables) %s, longest insert meanwhile %s; reused by the migration: %s; ",
			ms(r.Prebuild), ms(r.PrebuildWait), reused)
	}
	fmt.Fprintf(&b, "storage.Migrate %s, longest insert meanwhile %s; %d inserts, %d failed; %d keys in audit_ids",
		ms(r.Migrate), ms(r.MaxWait), r.Inserts, r.Failed, r.Keys)
	if r.FirstError != "" {
		fmt.Fprintf(&b, " (first failure: %s)", r.FirstError)
	}
	return b.String()
}

// ms prints a duration in milliseconds below 10 s, in tenths of seconds
// above.
func ms(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(100 * time.Millisecond).String()
}

// bytes prints n in MB below 10 GB, in GB above (decimal units, as
// pg_size_pretty does not: 1 MB = 10^6 bytes).
func bytes(n int64) string {
	if n < 10_000_000_000 && n > -10_000_000_000 {
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}
