package queue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/wire"
)

// BenchmarkAppend measures durable appends (fsync before return) from 1, 16
// and 64 concurrent appenders: records/s, commits (fsync groups) per record
// and the mean wait of one append.
func BenchmarkAppend(b *testing.B) {
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("appenders=%d", conc), func(b *testing.B) {
			q, err := queue.Open(queue.Config{Dir: b.TempDir(), MaxBytes: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close(context.Background())
			rec := wire.RawRecord{Kind: wire.KindRemediation, ReceivedAt: time.Now(),
				Body: []byte(`{"remediationRequestID":"rr-1","alertName":"HighMemoryUsage","reasoning":` +
					`"Memory usage above 95% for 10 minutes on three replicas; scaling out is the least disruptive action."}`)}
			ctx := context.Background()
			commits0 := q.Commits()
			var wg sync.WaitGroup
			per := b.N/conc + 1
			start := time.Now()
			for w := 0; w < conc; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						r := rec
						r.ID = wire.NewID()
						if err := q.Append(ctx, []wire.RawRecord{r}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			n := per * conc
			b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
			b.ReportMetric(float64(q.Commits()-commits0)/float64(n), "commits/record")
			b.ReportMetric(float64(elapsed.Microseconds())/float64(per), "µs/append")
		})
	}
}
