package storage_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// exportKeys runs an export and returns the keys it streamed.
func exportKeys(t *testing.T, db *storage.DB, q storage.ExportQuery) []string {
	t.Helper()
	var keys []string
	require.NoError(t, db.ExportAudits(testContext(t), q, func(e *wire.AuditEntry, _ int64) error {
		keys = append(keys, entryKey(e))
		return nil
	}))
	return keys
}

func TestExportAudits(t *testing.T) {
	t.Parallel()
	_, db := migratedDB(t)
	data := readData(rand.New(rand.NewPCG(13, 4)), 400)
	writeStored(t, db, data)
	end := readBase.Add(2 * time.Hour) // after every event time

	for name, f := range map[string]func(*testing.T){
		"kinds in the given order, each oldest first": func(t *testing.T) {
			for _, kinds := range [][]wire.Kind{
				{wire.KindRemediation, wire.KindWorkflow}, {wire.KindWorkflow, wire.KindRemediation},
				{wire.KindRemediation}, {wire.KindWorkflow},
			} {
				var want []string
				for _, k := range kinds {
					want = append(want, expect(data, k, nil, time.Time{}, end, true)...)
				}
				got := exportKeys(t, db, storage.ExportQuery{Kinds: kinds, Until: end})
				require.Equal(t, want, got, "%v", kinds)
			}
		},
		"since is inclusive, until exclusive": func(t *testing.T) {
			since, until := readBase.Add(60*time.Second), readBase.Add(120*time.Second)
			want := append(expect(data, wire.KindRemediation, nil, since, until, true),
				expect(data, wire.KindWorkflow, nil, since, until, true)...)
			got := exportKeys(t, db, storage.ExportQuery{Kinds: []wire.Kind{wire.KindRemediation, wire.KindWorkflow},
				Since: since, Until: until})
			require.Equal(t, want, got)
			got = exportKeys(t, db, storage.ExportQuery{Kinds: []wire.Kind{wire.KindWorkflow}, Until: until})
			require.Equal(t, expect(data, wire.KindWorkflow, nil, time.Time{}, until, true), got)
		},
		"every field, one reused entry": func(t *testing.T) {
			byKey := map[string]stored{}
			for _, s := range data {
				byKey[s.key()] = s
			}
			var first *wire.AuditEntry
			n := 0
			require.NoError(t, db.ExportAudits(testContext(t), storage.ExportQuery{
				Kinds: []wire.Kind{wire.KindRemediation, wire.KindWorkflow}, Until: end,
			}, func(e *wire.AuditEntry, _ int64) error {
				if first == nil {
					first = e
				}
				require.Same(t, first, e, "the entry is reused")
				requireEntry(t, byKey[entryKey(e)], e)
				n++
				return nil
			}))
			assert.Equal(t, len(data), n)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t)
		})
	}
}

// TestExportAudits_OneSnapshot inserts rows of both kinds, inside the
// exported range, while the export streams its first kind: none of them
// appears, in either kind.
func TestExportAudits_OneSnapshot(t *testing.T) {
	t.Parallel()
	_, db := migratedDB(t)
	rng := rand.New(rand.NewPCG(13, 5))
	data := readData(rng, 200)
	writeStored(t, db, data)
	end := readBase.Add(2 * time.Hour)
	kinds := []wire.Kind{wire.KindRemediation, wire.KindWorkflow}
	want := append(expect(data, wire.KindRemediation, nil, time.Time{}, end, true),
		expect(data, wire.KindWorkflow, nil, time.Time{}, end, true)...)

	var got []string
	late := readData(rng, 50)
	require.NoError(t, db.ExportAudits(testContext(t), storage.ExportQuery{Kinds: kinds, Until: end},
		func(e *wire.AuditEntry, _ int64) error {
			if len(got) == 0 {
				writeStored(t, db, late) // committed while the export runs
			}
			got = append(got, entryKey(e))
			return nil
		}))
	assert.Equal(t, want, got)
	after := exportKeys(t, db, storage.ExportQuery{Kinds: kinds, Until: end})
	assert.Len(t, after, len(data)+len(late), "a new export sees them")
}

func TestExportAudits_Stops(t *testing.T) {
	t.Parallel()
	_, db := migratedDB(t)
	data := readData(rand.New(rand.NewPCG(13, 6)), 3000)
	writeStored(t, db, data)
	q := storage.ExportQuery{Kinds: []wire.Kind{wire.KindRemediation, wire.KindWorkflow}, Until: readBase.Add(2 * time.Hour)}

	t.Run("when each returns an error", func(t *testing.T) {
		errFull := errors.New("disk full")
		remediations := len(expect(data, wire.KindRemediation, nil, time.Time{}, q.Until, true))
		for _, at := range []int{1, 3, remediations + 5} { // the last in the second kind
			calls := 0
			err := db.ExportAudits(testContext(t), q, func(*wire.AuditEntry, int64) error {
				calls++
				if calls == at {
					return errFull
				}
				return nil
			})
			require.Equal(t, errFull, err, "each's error, as is")
			assert.Equal(t, at, calls, "no call after the error")
		}
	})
	t.Run("when ctx is cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		calls := 0
		err := db.ExportAudits(ctx, q, func(*wire.AuditEntry, int64) error {
			calls++
			if calls == 3 {
				cancel()
			}
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, storage.ErrUnavailable)
		assert.Equal(t, 3, calls, "no call after the cancellation")
	})
	t.Run("and the pool still serves", func(t *testing.T) {
		got := exportKeys(t, db, q)
		assert.Len(t, got, len(data))
	})
}

func TestExportAudits_RefusesBadQueries(t *testing.T) {
	t.Parallel()
	_, db := migratedDB(t)
	both := []wire.Kind{wire.KindRemediation, wire.KindWorkflow}
	for _, c := range []struct {
		name  string
		q     storage.ExportQuery
		field string
	}{
		{"no kind", storage.ExportQuery{Until: readBase}, "kinds"},
		{"unknown kind", storage.ExportQuery{Kinds: []wire.Kind{"alert"}, Until: readBase}, "kind"},
		{"a kind twice", storage.ExportQuery{Kinds: []wire.Kind{wire.KindWorkflow, wire.KindWorkflow}, Until: readBase}, "kind"},
		{"no until", storage.ExportQuery{Kinds: both}, "until"},
		{"since equal to until", storage.ExportQuery{Kinds: both, Since: readBase, Until: readBase}, "since"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := db.ExportAudits(testContext(t), c.q, func(*wire.AuditEntry, int64) error {
				t.Error("each called for a refused query")
				return nil
			})
			var qe *storage.QueryError
			require.ErrorAs(t, err, &qe)
			assert.Equal(t, c.field, qe.Field)
		})
	}
}

// BenchmarkExportAudits exports 100k realistic rows (3/4 remediation, 1/4
// workflow) per iteration and reports the rate.
func BenchmarkExportAudits(b *testing.B) {
	const rows = 100_000
	db := openBenchDB(b, benchDB(b))
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < rows; i += benchBatchSize {
		_, err := db.WriteBatch(ctx, testSA, realisticBatch(benchBatchSize, start.Add(time.Duration(i)*time.Millisecond)))
		require.NoError(b, err)
	}
	q := storage.ExportQuery{Kinds: []wire.Kind{wire.KindRemediation, wire.KindWorkflow}, Until: start.Add(time.Hour)}
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		require.NoError(b, db.ExportAudits(ctx, q, func(*wire.AuditEntry, int64) error {
			n++
			return nil
		}))
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(0, "ns/op")
}
