package storage_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
)

// BenchmarkLedgerCost measures what the ledger costs the write path: the
// same concurrent load (8 writers, batches of 1 and of 100 records) into two
// fresh databases, one writing ledger entries (with a sequencer running
// every 200 ms, as a central does by default) and one not (Config.NoLedger), in
// alternating rounds of the same run. It reports throughput and p99 batch
// latency of each and their ratios (ledger/none).
//
//	go test -run '^$' -bench LedgerCost -benchtime 20x ./storage/
func BenchmarkLedgerCost(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("records=%d", size), func(b *testing.B) {
			ctx := context.Background()
			open := func(noLedger bool) *storage.DB {
				db, err := storage.Open(ctx, storage.Config{DatabaseURL: benchDB(b), MaxConns: 8, NoLedger: noLedger})
				require.NoError(b, err)
				b.Cleanup(db.Close)
				return db
			}
			with, without := open(false), open(true)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // the sequencer
				defer wg.Done()
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						_, _, _ = with.SequenceLedger(ctx)
					}
				}
			}()
			const writers, batchesPerWriter = 8, 25
			var (
				elapsed [2]time.Duration
				lat     [2][]time.Duration
			)
			round := func(i int, db *storage.DB) {
				start := time.Now()
				var mu sync.Mutex
				var rw sync.WaitGroup
				for range writers {
					rw.Add(1)
					go func() {
						defer rw.Done()
						for range batchesPerWriter {
							batch := realisticBatch(size, time.Now())
							t0 := time.Now()
							_, err := db.WriteBatch(ctx, testSA, batch)
							d := time.Since(t0)
							require.NoError(b, err)
							mu.Lock()
							lat[i] = append(lat[i], d)
							mu.Unlock()
						}
					}()
				}
				rw.Wait()
				elapsed[i] += time.Since(start)
			}
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				if n%2 == 0 {
					round(0, with)
					round(1, without)
				} else {
					round(1, without)
					round(0, with)
				}
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
			records := float64(b.N * writers * batchesPerWriter * size)
			rate := [2]float64{records / elapsed[0].Seconds(), records / elapsed[1].Seconds()}
			p99 := [2]time.Duration{}
			for i := range lat {
				slices.Sort(lat[i])
				p99[i] = lat[i][len(lat[i])*99/100]
			}
			b.ReportMetric(rate[0], "ledger-records/s")
			b.ReportMetric(rate[1], "none-records/s")
			b.ReportMetric(rate[0]/rate[1], "throughput-ratio")
			b.ReportMetric(float64(p99[0].Microseconds())/1000, "ledger-p99-ms")
			b.ReportMetric(float64(p99[1].Microseconds())/1000, "none-p99-ms")
			b.ReportMetric(float64(p99[0])/float64(p99[1]), "p99-ratio")
		})
	}
}

// BenchmarkVerifyLedger verifies a trail of 200,000 rows (batches of 500)
// and reports rows verified per second.
//
//	go test -run '^$' -bench VerifyLedger -benchtime 3x ./storage/
func BenchmarkVerifyLedger(b *testing.B) {
	ctx := context.Background()
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: benchDB(b), MaxConns: 4})
	require.NoError(b, err)
	b.Cleanup(db.Close)
	const rows = 200_000
	start := time.Now().Add(-time.Hour)
	for i := 0; i < rows/benchBatchSize; i++ {
		_, err := db.WriteBatch(ctx, testSA, realisticBatch(benchBatchSize, start.Add(time.Duration(i)*time.Millisecond)))
		require.NoError(b, err)
	}
	_, _, err = db.SequenceLedger(ctx)
	require.NoError(b, err)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		r, err := db.VerifyLedger(ctx, storage.VerifyOptions{})
		require.NoError(b, err)
		require.True(b, r.OK(), "%v", r.Failures)
		require.EqualValues(b, rows, r.Rows)
	}
	b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
}
