package central

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// coalescer merges concurrent single-record writes into shared batches: one
// transaction, and so one WAL flush, answers many requests, as the agent's
// group commit does for its fsyncs. Under light load a write goes out alone
// and at once; under heavy load the requests that arrive while the previous
// batches are in flight leave together.
type coalescer struct {
	store    Store
	timeout  time.Duration
	maxBatch int

	reqs  chan *pendingWrite // unbuffered: a request sent was received by run
	slots chan struct{}      // one per batch in flight
	wg    sync.WaitGroup
	stop  chan struct{} // closed by close: no new requests
	done  chan struct{} // closed when run has returned

	batchSize *metrics.Histogram
}

type pendingWrite struct {
	serviceAccount string
	record         wire.Record
	answer         chan writeResult // buffered: the writer never blocks on it
}

type writeResult struct {
	status wire.ItemStatus
	err    error
}

func newCoalescer(store Store, timeout time.Duration, inFlight, maxBatch int, set *metrics.Set) *coalescer {
	c := &coalescer{
		store:     store,
		timeout:   timeout,
		maxBatch:  maxBatch,
		reqs:      make(chan *pendingWrite),
		slots:     make(chan struct{}, inFlight),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		batchSize: set.NewHistogram(`datastorage_coalesced_batch_records`),
	}
	go c.run()
	return c
}

// errShuttingDown answers a write that arrives after close (a request that
// outlived the server's shutdown grace).
var errShuttingDown = errors.New("central is shutting down")

// write stores one record and returns its outcome once committed.
func (c *coalescer) write(serviceAccount string, rec wire.Record) (wire.ItemStatus, error) {
	p := &pendingWrite{serviceAccount: serviceAccount, record: rec, answer: make(chan writeResult, 1)}
	select {
	case c.reqs <- p:
	case <-c.stop:
		return "", errShuttingDown
	}
	r := <-p.answer
	return r.status, r.err
}

// close stops taking writes and waits for the batches in flight.
func (c *coalescer) close() {
	close(c.stop)
	<-c.done
	c.wg.Wait()
}

func (c *coalescer) run() {
	defer close(c.done)
	for {
		var first *pendingWrite
		select {
		case first = <-c.reqs:
		case <-c.stop:
			return
		}
		// Wait for a free slot first: the requests that arrive meanwhile
		// join this batch.
		c.slots <- struct{}{}
		batch := []*pendingWrite{first}
	collect:
		for len(batch) < c.maxBatch {
			select {
			case p := <-c.reqs:
				batch = append(batch, p)
			default:
				break collect
			}
		}
		c.batchSize.Update(float64(len(batch)))
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() { <-c.slots }()
			c.flush(batch)
		}()
	}
}

// flush writes a batch in one transaction, grouped by service account
// (rows record who wrote them, and each writer's rows get their own ledger
// entry), and answers every request.
func (c *coalescer) flush(batch []*pendingWrite) {
	var (
		groups  []storage.Group
		members [][]*pendingWrite // members[g]: the requests of groups[g], in order
		index   = make(map[string]int, 1)
	)
	for _, p := range batch {
		g, ok := index[p.serviceAccount]
		if !ok {
			g = len(groups)
			index[p.serviceAccount] = g
			groups = append(groups, storage.Group{ServiceAccount: p.serviceAccount})
			members = append(members, nil)
		}
		groups[g].Records = append(groups[g].Records, p.record)
		members[g] = append(members[g], p)
	}
	statuses, err := c.writeGroups(groups)
	// A failure that is not the database being away may be one record's
	// fault (a constraint the validation missed). Each writer's requests go
	// again on their own, so that one writer's record costs the others
	// nothing, and a writer's that fail again, one record at a time.
	if err != nil && len(batch) > 1 && !errors.Is(err, storage.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		if len(members) > 1 {
			for _, m := range members {
				c.flush(m)
			}
			return
		}
		for _, p := range batch {
			c.flush([]*pendingWrite{p})
		}
		return
	}
	for g, group := range members {
		for i, p := range group {
			p.answer <- result(statuses, err, g, i)
		}
	}
}

func (c *coalescer) writeGroups(groups []storage.Group) ([][]wire.ItemStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	statuses, err := c.store.WriteGroups(ctx, groups)
	if err != nil {
		n := 0
		for _, g := range groups {
			n += len(g.Records)
		}
		return nil, fmt.Errorf("write %d records: %w", n, err)
	}
	return statuses, nil
}

func result(statuses [][]wire.ItemStatus, err error, g, i int) writeResult {
	if err != nil {
		return writeResult{err: err}
	}
	return writeResult{status: statuses[g][i]}
}
