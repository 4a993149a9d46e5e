package lifecycle_test

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/bench/lifecycle"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/wire"
)

// TestRun_EveryStepAtTinyScale runs the whole lifecycle on 20,000 rows over
// 3 months and checks what each step reports adds up; it asserts no time
// or rate beyond its being measured (the machine is shared).
func TestRun_EveryStepAtTinyScale(t *testing.T) {
	admin := os.Getenv(pgtest.EnvVar)
	if admin == "" {
		t.Fatal(pgtest.MissingEnvMessage)
	}
	var progress strings.Builder
	rep, err := lifecycle.Run(t.Context(), lifecycle.Config{DatabaseURL: admin, Rows: 20_000, Months: 3, Seed: 3,
		WriteRecords: 3000, Writers: 2, Rounds: 2, InsertRate: 20, ChunkRows: 4000, Progress: &progress})
	require.NoError(t, err, progress.String())
	t.Log("\n" + rep.String())

	t.Run("load fills three whole months and keys every row", func(t *testing.T) {
		l := rep.Load
		require.NotNil(t, l)
		assert.GreaterOrEqual(t, l.Rows(), int64(20_000))
		assert.Equal(t, l.Rows(), l.Keys)
		assert.Equal(t, l.End.AddDate(0, -3, 0), l.Start)
		assert.Equal(t, 1, l.End.Day(), "months end where this one starts")
		require.Len(t, l.MonthRows, 3)
		var sum int64
		for _, n := range l.MonthRows {
			assert.Greater(t, n, int64(5000))
			sum += n
		}
		assert.InDelta(t, l.Rows(), sum, 10, "the last remediation's audits run minutes into this month")
		for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
			parts := l.Layout[kind]
			require.GreaterOrEqual(t, len(parts), 5, "history, three months, this one")
			assert.True(t, parts[0].From.IsZero())
			assert.Equal(t, l.Start, parts[0].To, "the history partition ends at the first loaded month")
			assert.True(t, parts[len(parts)-1].To.After(time.Now()))
		}
		assert.Positive(t, l.Sizes.Remediation)
		assert.Positive(t, l.Sizes.Workflow)
		assert.Positive(t, l.Sizes.Keys)
		assert.Greater(t, l.Sizes.Database, l.Sizes.Remediation+l.Sizes.Workflow+l.Sizes.Keys)
	})

	t.Run("writes measure both databases in every round", func(t *testing.T) {
		w := rep.Writes
		require.NotNil(t, w)
		require.Len(t, w.Rounds, 2)
		assert.NotEqual(t, w.Rounds[0].LoadedFirst, w.Rounds[1].LoadedFirst, "alternated")
		for _, r := range w.Rounds {
			assert.Positive(t, r.Empty)
			assert.Positive(t, r.Loaded)
		}
		assert.Positive(t, w.Ratio())
		assert.False(t, math.IsInf(w.Ratio(), 0))
		assert.Positive(t, w.MedianRatio())
	})

	t.Run("retention drops the oldest month and gives back its partitions' size", func(t *testing.T) {
		d := rep.Drop
		require.NotNil(t, d)
		assert.Equal(t, rep.Load.Start, d.Month)
		require.Len(t, d.Kinds, 2)
		var rows int64
		for _, k := range d.Kinds {
			require.Len(t, k.Dropped, 2, "%s: the empty history partition, then the month", k.Kind)
			assert.True(t, k.Dropped[0].From.IsZero(), k.Kind)
			assert.Equal(t, k.Month, k.Dropped[1].Name, k.Kind)
			assert.Equal(t, k.MonthBytes, k.Dropped[1].SizeBytes, k.Kind)
			assert.Positive(t, k.MonthRows, k.Kind)
			assert.Equal(t, k.MonthRows, k.Keys, "%s: exactly the dropped rows' keys", k.Kind)
			assert.Positive(t, k.Gone, k.Kind)
			assert.LessOrEqual(t, k.Gone, k.Elapsed, k.Kind)
			rows += k.MonthRows
		}
		assert.Equal(t, rep.Load.MonthRows[0], rows, "the month's rows, both tables")
		tables := func(s lifecycle.Sizes) int64 { return s.Remediation + s.Workflow }
		assert.Equal(t, d.DroppedBytes(), tables(d.Before)-tables(d.After))
		assert.InDelta(t, d.DroppedBytes(), d.Before.Database-d.After.Database, float64(d.DroppedBytes())/10,
			"the database shrinks by the partitions' size")
		assert.Equal(t, d.Before.Keys, d.After.Keys, "deleted keys leave their space in audit_ids")
	})

	t.Run("migration copies every key while the writer waits", func(t *testing.T) {
		m := rep.Migration
		require.NotNil(t, m)
		assert.GreaterOrEqual(t, m.RemediationRows+m.WorkflowRows, int64(20_000))
		for name, r := range map[string]lifecycle.MigrationRun{"as is": m.AsIs, "prebuilt": m.Prebuilt} {
			assert.Positive(t, r.Migrate, name)
			assert.Positive(t, r.MaxWait, name)
			assert.Positive(t, r.Inserts, name)
			assert.Zero(t, r.Failed, "%s: %s", name, r.FirstError)
			assert.GreaterOrEqual(t, r.Keys, m.RemediationRows+m.WorkflowRows, name)
			assert.LessOrEqual(t, r.Keys, m.RemediationRows+m.WorkflowRows+int64(r.Inserts), name)
		}
		assert.Zero(t, m.AsIs.Prebuild)
		assert.False(t, m.AsIs.Reused)
		assert.Positive(t, m.Prebuilt.Prebuild)
		assert.True(t, m.Prebuilt.Reused, "migration 7 keeps the keys built beforehand")
	})

	assert.Contains(t, rep.String(), "3. drop ")
}

func TestConfig_ValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		cfg  lifecycle.Config
		want string
	}{
		{lifecycle.Config{}, "DatabaseURL is required"},
		{lifecycle.Config{DatabaseURL: "host=x dbname=y"}, "postgres:// URL"},
		{lifecycle.Config{DatabaseURL: "postgres://x/y", Rows: -1}, "Rows"},
		{lifecycle.Config{DatabaseURL: "postgres://x/y", InsertRate: -1}, "InsertRate"},
	} {
		err := c.cfg.Validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), c.want)
	}
	assert.NoError(t, lifecycle.Config{DatabaseURL: "postgres://x/y"}.Validate())
}
