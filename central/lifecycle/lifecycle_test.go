package lifecycle_test

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubernaut/datastorage/central/lifecycle"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openDB(t *testing.T) *storage.DB {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.Migrate(t.Context(), dsn))
	db, err := storage.Open(t.Context(), storage.Config{DatabaseURL: dsn, MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

// gauge reads one metric's value from set.
func gauge(t *testing.T, set *metrics.Set, name string) float64 {
	t.Helper()
	var b bytes.Buffer
	set.WritePrometheus(&b)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b.Bytes())
	require.NotNil(t, m, "%s in\n%s", name, b.String())
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return v
}

func TestManager_CreatesPartitionsAheadAndReportsHowFar(t *testing.T) {
	db := openDB(t)
	now := time.Date(2031, 5, 20, 12, 0, 0, 0, time.UTC)
	set := metrics.NewSet()
	m, err := lifecycle.New(lifecycle.Config{Store: db, Period: storage.PeriodMonth, Ahead: 2,
		Metrics: set, Logger: zerolog.Nop(), Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.NoError(t, m.RunOnce(t.Context()))

	// now + 24 h is in May; two months after it: June and July, ending August 1.
	end := time.Date(2031, 8, 1, 0, 0, 0, 0, time.UTC)
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		parts, err := db.Partitions(t.Context(), kind)
		require.NoError(t, err)
		assert.Equal(t, end, parts[len(parts)-1].To, kind)
		assert.Equal(t, end.Sub(now).Seconds(), gauge(t, set, `datastorage_partitions_ahead_seconds{kind="`+string(kind)+`"}`))
	}
	created := gauge(t, set, "datastorage_partitions_created_total")
	assert.Positive(t, created)
	assert.Equal(t, float64(now.Unix()), gauge(t, set, "datastorage_lifecycle_last_success_timestamp_seconds"))

	// On the last day of a month, a write may be dated tomorrow: that month
	// counts as the current one.
	now = time.Date(2031, 7, 31, 23, 0, 0, 0, time.UTC)
	require.NoError(t, m.RunOnce(t.Context()))
	parts, err := db.Partitions(t.Context(), wire.KindRemediation)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2031, 11, 1, 0, 0, 0, 0, time.UTC), parts[len(parts)-1].To)
}

func TestManager_ObserveOnlyChangesNothing(t *testing.T) {
	db := openDB(t)
	before, err := db.Partitions(t.Context(), wire.KindWorkflow)
	require.NoError(t, err)
	now := before[len(before)-1].To.AddDate(0, 0, -3)
	set := metrics.NewSet()
	m, err := lifecycle.New(lifecycle.Config{Store: db, ObserveOnly: true, Metrics: set,
		Retention: map[wire.Kind]time.Duration{wire.KindWorkflow: lifecycle.MinRetention},
		Logger:    zerolog.Nop(), Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.NoError(t, m.RunOnce(t.Context()))
	after, err := db.Partitions(t.Context(), wire.KindWorkflow)
	require.NoError(t, err)
	assert.Equal(t, before, after)
	assert.Equal(t, (3 * 24 * time.Hour).Seconds(), gauge(t, set, `datastorage_partitions_ahead_seconds{kind="workflow"}`),
		"3 days left: the alert's threshold is 7")
}

func TestManager_RunStopsWithItsContext(t *testing.T) {
	db := openDB(t)
	m, err := lifecycle.New(lifecycle.Config{Store: db, Interval: time.Millisecond, Logger: zerolog.Nop()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	m.Run(ctx) // returns; goleak checks nothing is left
}

func TestParseRetention(t *testing.T) {
	got, err := lifecycle.ParseRetention(" remediation=365, workflow=90 ")
	require.NoError(t, err)
	assert.Equal(t, map[wire.Kind]time.Duration{wire.KindRemediation: 365 * 24 * time.Hour, wire.KindWorkflow: 90 * 24 * time.Hour}, got)
	got, err = lifecycle.ParseRetention("")
	require.NoError(t, err)
	assert.Empty(t, got)
	for _, bad := range []string{"remediation", "remediation=", "remediation=-1", "remediation=0", "remediation=1.5", "remediation=1e3"} {
		_, err := lifecycle.ParseRetention(bad)
		assert.Error(t, err, bad)
	}
}
