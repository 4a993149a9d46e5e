package queue

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// run is the writer: the only goroutine that writes to Badger.
func (q *Queue) run() {
	defer close(q.stopped)
	tick := time.NewTicker(q.cfg.ReclaimInterval)
	defer tick.Stop()
	var held *request // a non-append request met while grouping
	for {
		var r *request
		if held != nil {
			r, held = held, nil
		} else {
			select {
			case r = <-q.reqs:
			default:
				// Idle: acknowledgements found no commit to ride on.
				q.persistAck()
				select {
				case r = <-q.reqs:
				case <-tick.C:
					q.reclaim()
					continue
				case <-q.closing:
					// Senders are excluded by now: finish what they queued.
					for {
						select {
						case r := <-q.reqs:
							q.serve([]*request{r})
						default:
							q.persistAck()
							return
						}
					}
				}
			}
		}
		if r.fn != nil {
			q.serve([]*request{r})
			continue
		}
		group := []*request{r}
		n, size := len(r.values), r.size
	collect:
		for n < q.cfg.MaxGroupRecords && size < int64(q.cfg.MaxGroupBytes) {
			select {
			case r2 := <-q.reqs:
				if r2.fn != nil {
					held = r2
					break collect
				}
				group = append(group, r2)
				n, size = n+len(r2.values), size+r2.size
			default:
				break collect
			}
		}
		q.serve(group)
	}
}

// serve runs one non-append request, or commits a group of appends.
func (q *Queue) serve(group []*request) {
	if len(group) == 1 && group[0].fn != nil {
		group[0].done <- group[0].fn()
		return
	}
	q.commit(group)
}

// commit writes a group of appends in as few transactions as Badger's
// transaction limit allows (normally one: one fsync), and answers every
// request once its transaction is durable.
func (q *Queue) commit(group []*request) {
	start := time.Now()
	var (
		txn                  = q.db.NewTransaction(true)
		inTxn                []*request // requests whose values are staged in txn
		txnRecords, txnBytes int64
		txnEstimate          int64
		firstKey             uint64
		commits              int
		ackInTxn             bool // the pending acknowledgements ride on txn
	)
	defer func() { txn.Discard() }()
	flush := func() {
		if len(inTxn) == 0 {
			return
		}
		err := txn.Commit()
		commits++
		if err == nil {
			if ackInTxn {
				q.ackStaged()
			}
			if q.records.Add(txnRecords) == txnRecords {
				q.oldest.Store(firstKey)
			}
			q.bytes.Add(txnBytes)
			q.mAppended.AddInt64(txnRecords)
			q.mGroup.Update(float64(txnRecords))
		} else {
			err = fmt.Errorf("append commit: %w", err)
			q.log.Error().Err(err).Int64("records", txnRecords).Msg("append failed")
		}
		for _, r := range inTxn {
			r.done <- err
		}
		inTxn, txnRecords, txnBytes, txnEstimate, firstKey, ackInTxn = inTxn[:0], 0, 0, 0, 0, false
		txn = q.db.NewTransaction(true)
	}
	if err := q.checkDiskSpace(); err != nil {
		for _, r := range group {
			r.done <- err
		}
		return
	}
	// Pending acknowledgements share the first transaction's fsync (unless
	// there are too many to ride along); if staging them fails they wait for
	// the next commit.
	if q.ackEstimate() > q.txnLimit/2 {
		q.persistAck()
	}
	if est := q.ackEstimate(); est > 0 {
		if err := q.stageAck(txn); err == nil {
			ackInTxn, txnEstimate = true, est
		} else {
			txn.Discard()
			txn = q.db.NewTransaction(true)
		}
	}
	now := uint64(q.cfg.Now().UnixNano())
	for _, r := range group {
		if q.bytes.Load()+q.deadBytes.Load()+txnBytes+r.size > q.cfg.MaxBytes {
			q.mFull.Inc()
			r.done <- ErrFull
			continue
		}
		est := r.size + int64(len(r.values))*entryOverhead
		if est > q.txnLimit {
			r.done <- fmt.Errorf("append: %d records of %d bytes: %w", len(r.values), r.size, ErrTooLarge)
			continue
		}
		if txnEstimate+est > q.txnLimit {
			flush()
		}
		if err := q.stage(txn, r, now, &firstKey); err != nil {
			// Badger refused a Set: fail this group's staged requests too,
			// since the transaction state is unknown.
			txn.Discard()
			txn = q.db.NewTransaction(true)
			err = fmt.Errorf("append: %w", err)
			for _, r := range append(inTxn, r) {
				r.done <- err
			}
			inTxn, txnRecords, txnBytes, txnEstimate, firstKey, ackInTxn = inTxn[:0], 0, 0, 0, 0, false
			continue
		}
		inTxn = append(inTxn, r)
		txnRecords += int64(len(r.values))
		txnBytes += r.size
		txnEstimate += est
	}
	flush()
	if commits > 0 {
		q.mCommits.Add(commits)
		q.mCommitD.UpdateDuration(start)
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
}

// stage sets one request's values in txn under fresh, increasing keys.
func (q *Queue) stage(txn *badger.Txn, r *request, now uint64, firstKey *uint64) error {
	for _, v := range r.values {
		q.lastSeq = max(q.lastSeq+1, now)
		if *firstKey == 0 {
			*firstKey = q.lastSeq
		}
		if err := txn.Set(Key(q.lastSeq).bytes(recordPrefix), v); err != nil {
			return err
		}
	}
	return nil
}

// reclaim returns space: value-log GC, and when the queue is empty and
// records were removed since the last time, a drop of the record prefix
// (flushes the memtable without them and deletes their tables).
func (q *Queue) reclaim() {
	for q.db.RunValueLogGC(0.5) == nil {
	}
	if q.records.Load() != 0 || q.deleted == 0 {
		return
	}
	// The cursor must be on disk before the records behind it are dropped.
	if q.persistAck(); q.ackCursor != 0 {
		return
	}
	// DropPrefix skips a prefix without a live key; key 0 is below the
	// cursor and never read.
	if err := q.db.Update(func(txn *badger.Txn) error {
		return txn.Set(Key(0).bytes(recordPrefix), nil)
	}); err != nil {
		q.log.Warn().Err(err).Msg("reclaim: marker write failed")
		return
	}
	if err := q.db.DropPrefix(recordPrefix); err != nil {
		q.log.Warn().Err(err).Msg("reclaim: drop of acknowledged records failed")
		return
	}
	q.deleted = 0
	q.mReclaims.Inc()
}

// checkDiskSpace refuses a group while the file system is nearly full (see
// Config.MinFreeBytes): an explicit 503 instead of a crash inside Badger.
func (q *Queue) checkDiskSpace() error {
	free, err := q.cfg.FreeBytes(q.cfg.Dir)
	if err != nil {
		// Unknown is not full: Badger's own write errors still apply.
		q.log.Warn().Err(err).Msg("free space unknown")
		return nil
	}
	if free < q.cfg.MinFreeBytes {
		q.mDiskFull.Inc()
		return fmt.Errorf("append: %d bytes free, %d needed: %w", free, q.cfg.MinFreeBytes, ErrDiskFull)
	}
	return nil
}
