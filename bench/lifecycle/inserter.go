package lifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/bench/loadgen"
)

// inserter is a writer that knows nothing of partitions or audit_ids: one
// plain INSERT of one remediation_audit row at a time (valid before and
// after migration 7), at a steady rate, each timed. An insert blocked
// behind a lock holds up the next ones (they are not queued).
type inserter struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	samples []insertSample
}

type insertSample struct {
	start, end time.Time
	err        error
}

// startInserter connects to dsn and inserts rate rows per second until
// stop.
func startInserter(ctx context.Context, dsn string, rate float64) (*inserter, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: inserter: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	ins := &inserter{cancel: cancel, done: make(chan struct{})}
	go ins.run(ctx, conn, time.Duration(float64(time.Second)/rate))
	return ins, nil
}

// insertRow is a Gateway's audit as an old central writes it.
const insertRow = `INSERT INTO remediation_audit (id, remediation_request_id, alert_name, namespace, cluster, priority,
	created_at, service_account, received_at) VALUES ($1, $2, 'KubePodCrashLooping', 'team-00-prod', 'us-west-2', 'P2', $3, $4, $3)`

func (ins *inserter) run(ctx context.Context, conn *pgx.Conn, every time.Duration) {
	defer close(ins.done)
	defer conn.Close(context.WithoutCancel(ctx))
	tick := time.NewTicker(every)
	defer tick.Stop()
	sa := loadgen.Writers[0].QualifiedSA()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		// Not cancelled by stop: an insert in flight completes and is timed.
		_, err := conn.Exec(context.WithoutCancel(ctx), insertRow, "audit-"+uuid.Must(uuid.NewV7()).String(),
			"rr-lifecycle-"+now.UTC().Format("150405.000000"), now, sa)
		ins.mu.Lock()
		ins.samples = append(ins.samples, insertSample{start: now, end: time.Now(), err: err})
		ins.mu.Unlock()
	}
}

// stop ends the inserts, waits for the one in flight and returns every
// sample; it may be called again.
func (ins *inserter) stop() []insertSample {
	ins.cancel()
	<-ins.done
	ins.mu.Lock()
	defer ins.mu.Unlock()
	return ins.samples
}

// maxWait is the longest insert that overlapped [from, to].
func (ins *inserter) maxWait(from, to time.Time) time.Duration {
	ins.mu.Lock()
	defer ins.mu.Unlock()
	var longest time.Duration
	for _, s := range ins.samples {
		if !s.end.Before(from) && !s.start.After(to) {
			longest = max(longest, s.end.Sub(s.start))
		}
	}
	return longest
}
