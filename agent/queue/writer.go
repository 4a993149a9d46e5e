package queue

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// run is the writer: the only goroutine that writes to Badger. Each kind of
// request has its own channel, so one select serves them all: appends are
// gathered into groups (one commit, one fsync), operations run alone, space
// is reclaimed when nothing waits, and Close ends the loop.
func (q *Queue) run() {
	defer close(q.stopped)
	tick := time.NewTicker(q.cfg.ReclaimInterval)
	defer tick.Stop()
	for {
		var reclaim <-chan time.Time // only when idle
		if q.idle() {
			// Acknowledgements found no commit to ride on.
			q.persistAck()
			reclaim = tick.C
		}
		select {
		case r := <-q.appends:
			q.commit(q.gather(r))
		case r := <-q.ops:
			r.done <- r.fn()
		case <-reclaim:
			q.reclaim()
		case <-q.closing:
			q.drain()
			return
		}
	}
}

// idle reports whether no request waits for the writer.
func (q *Queue) idle() bool { return len(q.appends) == 0 && len(q.ops) == 0 }

// drain serves what senders queued before Close excluded them, then
// persists the acknowledgements.
func (q *Queue) drain() {
	for {
		select {
		case r := <-q.appends:
			q.commit(q.gather(r))
		case r := <-q.ops:
			r.done <- r.fn()
		default:
			q.persistAck()
			return
		}
	}
}

// gather is r and the appends waiting behind it, up to MaxGroupRecords and
// MaxGroupBytes: the group that commit writes.
func (q *Queue) gather(r *request) []*request {
	group := []*request{r}
	n, size := len(r.values), r.size
	for n < q.cfg.MaxGroupRecords && size < int64(q.cfg.MaxGroupBytes) {
		select {
		case r := <-q.appends:
			group = append(group, r)
			n, size = n+len(r.values), size+r.size
		default:
			return group
		}
	}
	return group
}

// commit writes a group of appends in as few transactions as Badger's
// transaction limit allows (normally one: one fsync), and answers every
// request once its transaction is durable.
func (q *Queue) commit(group []*request) {
	start := time.Now()
	if err := q.checkDiskSpace(); err != nil {
		answer(group, err)
		return
	}
	// Pending acknowledgements share the first transaction's fsync, unless
	// there are too many to ride along.
	if q.ackEstimate() > q.txnLimit/2 {
		q.persistAck()
	}
	t := q.newTxnGroup()
	defer t.discard()
	t.addAck()
	now := uint64(q.cfg.Now().UnixNano())
	for _, r := range group {
		if err := q.admit(r, t.bytes); err != nil {
			r.done <- err
			continue
		}
		if t.estimate+r.estimate() > q.txnLimit {
			t.flush() // r starts the next transaction
		}
		t.add(r, now)
	}
	t.flush()
	if t.commits > 0 {
		q.mCommits.Add(t.commits)
		q.mCommitD.UpdateDuration(start)
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
}

// admit refuses an append that would take the buffer past MaxBytes (staged:
// the bytes of the open transaction, not yet counted) or that no transaction
// can hold.
func (q *Queue) admit(r *request, staged int64) error {
	if q.bytes.Load()+q.deadBytes.Load()+staged+r.size > q.cfg.MaxBytes {
		q.mFull.Inc()
		return ErrFull
	}
	if r.estimate() > q.txnLimit {
		return fmt.Errorf("append: %d records of %d bytes: %w", len(r.values), r.size, ErrTooLarge)
	}
	return nil
}

// answer sends err (nil: durable) to every request.
func answer(reqs []*request, err error) {
	for _, r := range reqs {
		r.done <- err
	}
}

// txnGroup stages a group of appends in a write transaction; flush commits
// it (one fsync), answers its appends and opens the next transaction.
type txnGroup struct {
	q        *Queue
	commits  int // transactions committed so far
	txn      *badger.Txn
	reqs     []*request // whose values are staged in txn
	records  int64
	bytes    int64
	estimate int64  // txn's size, as counted against q.txnLimit
	first    uint64 // key of the first staged record
	withAck  bool   // the pending acknowledgements ride on txn
}

func (q *Queue) newTxnGroup() *txnGroup {
	return &txnGroup{q: q, txn: q.db.NewTransaction(true)}
}

func (t *txnGroup) discard() { t.txn.Discard() }

// reset discards txn and opens an empty one.
func (t *txnGroup) reset() {
	t.discard()
	*t = txnGroup{q: t.q, commits: t.commits, txn: t.q.db.NewTransaction(true), reqs: t.reqs[:0]}
}

// addAck stages the pending acknowledgements; if that fails they wait for
// the next commit.
func (t *txnGroup) addAck() {
	est := t.q.ackEstimate()
	if est == 0 {
		return
	}
	if err := t.q.stageAck(t.txn); err != nil {
		t.reset()
		return
	}
	t.withAck, t.estimate = true, est
}

// nextKey is the key of the next record appended at now: its receive time
// in Unix nanoseconds, made strictly increasing (writer only).
func (q *Queue) nextKey(now uint64) Key {
	q.lastSeq = max(q.lastSeq+1, now)
	return Key(q.lastSeq)
}

// add stages r's values under fresh, increasing keys. If Badger refuses a
// Set, the transaction's state is unknown: r and the requests staged before
// it fail, and an empty transaction takes their place.
func (t *txnGroup) add(r *request, now uint64) {
	q := t.q
	for _, v := range r.values {
		k := q.nextKey(now)
		if t.first == 0 {
			t.first = uint64(k)
		}
		if err := t.txn.Set(k.bytes(recordPrefix), v); err != nil {
			answer(append(t.reqs, r), fmt.Errorf("append: %w", err))
			t.reset()
			return
		}
	}
	t.reqs = append(t.reqs, r)
	t.records += int64(len(r.values))
	t.bytes += r.size
	t.estimate += r.estimate()
}

// flush commits txn if it stages an append (a failed commit counts too),
// answers those appends and opens the next transaction.
func (t *txnGroup) flush() {
	if len(t.reqs) == 0 {
		return
	}
	q := t.q
	err := t.txn.Commit()
	t.commits++
	if err == nil {
		if t.withAck {
			q.ackStaged()
		}
		if q.records.Add(t.records) == t.records {
			q.oldest.Store(t.first)
		}
		q.bytes.Add(t.bytes)
		q.mAppended.AddInt64(t.records)
		q.mGroup.Update(float64(t.records))
	} else {
		err = fmt.Errorf("append commit: %w", err)
		q.log.Error().Err(err).Int64("records", t.records).Msg("append failed")
	}
	answer(t.reqs, err)
	t.reset()
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
