package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/wire"
)

var (
	// ErrFull is returned by Append when the records would exceed MaxBytes.
	ErrFull = errors.New("queue full")
	// ErrTooLarge is returned by Append for records too large for one
	// transaction (far above wire.MaxRecordBytes).
	ErrTooLarge = errors.New("append too large")
	// ErrDiskFull is returned by Append when the file system holding the
	// queue has less than Config.MinFreeBytes free: none was stored.
	ErrDiskFull = errors.New("disk full")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("queue closed")
)

// Queue is the durable buffer. Open starts its writer goroutine; Close stops
// it. All methods are safe for concurrent use; Read and Ack are meant for one
// consumer (the forwarder).
type Queue struct {
	cfg Config
	db  *badger.DB
	log zerolog.Logger

	appends   chan *request // to the writer: appends, gathered into groups
	ops       chan *request // to the writer: other writes, each run alone
	mu        sync.RWMutex  // guards closed against senders on appends and ops
	closed    bool
	closing   chan struct{}
	stopped   chan struct{}
	closeMu   sync.Mutex
	closeErr  error
	closeDone bool

	notify chan struct{} // signalled (cap 1) after records are appended

	// Depth, kept by the writer, read by anyone.
	records     atomic.Int64
	bytes       atomic.Int64
	oldest      atomic.Uint64 // Key of the oldest buffered record, 0 when empty
	cursor      atomic.Uint64 // last acknowledged Key
	deadRecords atomic.Int64
	deadBytes   atomic.Int64 // dead letters count toward MaxBytes too

	txnLimit int64 // bytes one Badger transaction takes, with margin

	// Writer-owned state.
	lastSeq uint64
	deleted int64 // records removed since the last reclaim
	// Acknowledgements applied in memory, not yet committed (see Ack).
	ackCursor  Key // 0: none pending
	ackDeletes []Key

	mAppended    *metrics.Counter
	mCommits     *metrics.Counter
	mFull        *metrics.Counter
	mDiskFull    *metrics.Counter
	mAcked       *metrics.Counter
	mReclaims    *metrics.Counter
	mDeadDeleted *metrics.Counter
	mReplayed    *metrics.Counter
	mCommitD     *metrics.Histogram
	mGroup       *metrics.Histogram
}

// request is what a caller asks of the writer: an append (on q.appends) or
// an operation (on q.ops).
type request struct {
	values [][]byte     // append: encoded entries
	size   int64        // append: sum of len(values)
	fn     func() error // operation: any other write, run alone on the writer
	done   chan error
}

// estimate is what an append adds to a transaction's size.
func (r *request) estimate() int64 { return r.size + int64(len(r.values))*entryOverhead }

// Depth is what the buffer holds.
type Depth struct {
	Records int64
	Bytes   int64
	// DeadBytes is what the dead letters take; it counts toward MaxBytes
	// until an operator deletes them (DeleteDeadLetters).
	DeadBytes int64
	// Oldest is the receive time of the oldest buffered record (zero when empty).
	Oldest time.Time
}

// Open validates cfg, opens (or creates) the store in cfg.Dir, recomputes
// the depth and starts the writer.
func Open(cfg Config) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	q := &Queue{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "queue").Logger(),
		appends: make(chan *request, 1024),
		ops:     make(chan *request, 64),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
		notify:  make(chan struct{}, 1),
	}
	db, err := badger.Open(badgerOptions(cfg, q.log))
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", cfg.Dir, err)
	}
	q.db = db
	// Badger refuses a transaction above 15% of the memtable size; keep 10%.
	q.txnLimit = cfg.MemTableSize / 10
	if err := q.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open queue %s: %w", cfg.Dir, err)
	}
	q.registerMetrics()
	go q.run()
	return q, nil
}

// badgerOptions tunes Badger for a sidecar: small memtables, no block cache,
// no compression, two compactors, synchronous writes (see doc.go).
func badgerOptions(cfg Config, log zerolog.Logger) badger.Options {
	return badger.DefaultOptions(cfg.Dir).
		WithSyncWrites(true).
		WithMemTableSize(cfg.MemTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(8 << 20).
		WithValueLogFileSize(16 << 20).
		WithValueThreshold(256 << 10).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithDetectConflicts(false).
		WithLogger(badgerLogger{log})
}

// load recomputes the depth from the store (runs before the writer starts).
func (q *Queue) load() error {
	return q.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(cursorKey)
		switch {
		case err == nil:
			if err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("cursor: %d bytes, want 8", len(v))
				}
				q.cursor.Store(binary.BigEndian.Uint64(v))
				return nil
			}); err != nil {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return fmt.Errorf("read cursor: %w", err)
		}
		q.lastSeq = q.cursor.Load()

		it := txn.NewIterator(badger.IteratorOptions{Prefix: recordPrefix})
		for it.Seek(Key(q.cursor.Load() + 1).bytes(recordPrefix)); it.Valid(); it.Next() {
			k, ok := parseKey(it.Item().Key())
			if !ok {
				continue
			}
			if q.records.Add(1) == 1 {
				q.oldest.Store(uint64(k))
			}
			q.bytes.Add(it.Item().ValueSize())
			q.lastSeq = max(q.lastSeq, uint64(k))
		}
		it.Close()

		it = txn.NewIterator(badger.IteratorOptions{Prefix: deadPrefix})
		for it.Rewind(); it.Valid(); it.Next() {
			q.deadRecords.Add(1)
			q.deadBytes.Add(it.Item().ValueSize())
		}
		it.Close()
		return nil
	})
}

// Append stores records durably and returns once they are fsynced: nil means
// every record is on disk. ErrFull means none was stored. Records must carry
// their ID, kind and receive time; their bodies are copied.
func (q *Queue) Append(ctx context.Context, records []wire.RawRecord) error {
	r := &request{values: make([][]byte, len(records)), done: make(chan error, 1)}
	for i := range records {
		v, err := encodeEntry(&records[i])
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		r.values[i] = v
		r.size += int64(len(v))
	}
	return q.submit(ctx, q.appends, r)
}

// do runs fn on the writer, alone, and waits for its result.
func (q *Queue) do(ctx context.Context, fn func() error) error {
	return q.submit(ctx, q.ops, &request{fn: fn, done: make(chan error, 1)})
}

// submit sends r to the writer on ch and waits for its answer.
func (q *Queue) submit(ctx context.Context, ch chan<- *request, r *request) error {
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return ErrClosed
	}
	select {
	case ch <- r:
		q.mu.RUnlock()
	case <-ctx.Done():
		q.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Appended is signalled (without blocking the writer, coalesced) after
// records are appended, for a consumer waiting on an empty queue.
func (q *Queue) Appended() <-chan struct{} { return q.notify }

// Depth reports what the buffer holds.
func (q *Queue) Depth() Depth {
	d := Depth{Records: q.records.Load(), Bytes: q.bytes.Load(), DeadBytes: q.deadBytes.Load()}
	if k := q.oldest.Load(); k != 0 && d.Records > 0 {
		d.Oldest = time.Unix(0, int64(k))
	}
	return d
}

// DeadLetters is the number of records in the dead-letter area.
func (q *Queue) DeadLetters() int64 { return q.deadRecords.Load() }

// MaxBytes is the configured buffer limit.
func (q *Queue) MaxBytes() int64 { return q.cfg.MaxBytes }

// Commits is the number of write transactions committed so far for Append:
// each ends in one fsync of Badger's WAL (see doc.go).
func (q *Queue) Commits() uint64 { return q.mCommits.Get() }

// Read returns up to maxRecords entries (and about maxBytes: at least one
// entry) after the persisted cursor, oldest first, without removing them.
// Corrupt entries met on the way are dead-lettered and skipped.
func (q *Queue) Read(ctx context.Context, maxRecords, maxBytes int) ([]Entry, error) {
	var (
		out     []Entry
		size    int
		corrupt []DeadLetter
	)
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recordPrefix, PrefetchValues: false})
		defer it.Close()
		for it.Seek(Key(q.cursor.Load() + 1).bytes(recordPrefix)); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			k, ok := parseKey(item.Key())
			if !ok {
				continue
			}
			vs := int(item.ValueSize())
			if len(out) > 0 && (len(out) >= maxRecords || size+vs > maxBytes) {
				return nil
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read %d: %w", k, err)
			}
			id, entryItem, err := decodeEntry(v)
			if err != nil {
				q.log.Error().Err(err).Uint64("seq", uint64(k)).Msg("corrupt queue entry: moving it to the dead letters")
				corrupt = append(corrupt, DeadLetter{Key: k, Reason: ReasonCorrupt, At: q.cfg.Now().UTC(), Raw: v})
				continue
			}
			out = append(out, Entry{Key: k, ID: id, Item: entryItem, Size: vs})
			size += vs
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read queue: %w", err)
	}
	if len(corrupt) > 0 {
		if err := q.do(ctx, func() error { return q.moveToDead(corrupt) }); err != nil {
			return nil, fmt.Errorf("read queue: quarantine: %w", err)
		}
	}
	return out, nil
}

// Ack removes every buffered record up to and including upTo and moves the
// cursor there. It takes effect at once for Read and Depth; on disk it rides
// on the next commit (an append group's, or its own when the writer is
// idle), since it needs no fsync of its own: an acknowledgement lost in a
// crash only means those records are sent again, and the central absorbs
// duplicates.
func (q *Queue) Ack(ctx context.Context, upTo Key) error {
	return q.do(ctx, func() error { return q.ack(upTo) })
}

func (q *Queue) ack(upTo Key) error {
	if uint64(upTo) <= q.cursor.Load() {
		return nil
	}
	var n, size int64
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recordPrefix, PrefetchValues: false})
		defer it.Close()
		for it.Seek(Key(q.cursor.Load() + 1).bytes(recordPrefix)); it.Valid(); it.Next() {
			k, ok := parseKey(it.Item().Key())
			if !ok {
				continue
			}
			if k > upTo {
				break
			}
			n++
			size += it.Item().ValueSize()
			q.ackDeletes = append(q.ackDeletes, k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	q.ackCursor = upTo
	q.cursor.Store(uint64(upTo))
	q.lastSeq = max(q.lastSeq, uint64(upTo))
	q.records.Add(-n)
	q.bytes.Add(-size)
	q.deleted += n
	q.mAcked.AddInt64(n)
	return q.refreshOldest()
}

// stageAck adds the acknowledgements not yet on disk to txn (writer only);
// ackStaged clears them once txn is committed.
func (q *Queue) stageAck(txn *badger.Txn) error {
	if q.ackCursor == 0 {
		return nil
	}
	for _, k := range q.ackDeletes {
		if err := txn.Delete(k.bytes(recordPrefix)); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
	if err := txn.Set(cursorKey, binary.BigEndian.AppendUint64(nil, uint64(q.ackCursor))); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

func (q *Queue) ackStaged() {
	q.ackDeletes, q.ackCursor = q.ackDeletes[:0], 0
}

// ackEstimate is what the pending acknowledgements add to a transaction.
func (q *Queue) ackEstimate() int64 {
	if q.ackCursor == 0 {
		return 0
	}
	return int64(len(q.ackDeletes)+1) * entryOverhead
}

// persistAck commits the pending acknowledgements alone (writer only).
func (q *Queue) persistAck() {
	if q.ackCursor == 0 {
		return
	}
	txn := q.db.NewTransaction(true)
	defer txn.Discard()
	err := q.stageAck(txn)
	if err == nil {
		err = txn.Commit()
	}
	if err != nil {
		// Kept for the next commit; until then a restart resends them.
		q.log.Warn().Err(err).Msg("persisting acknowledgements failed")
		return
	}
	q.ackStaged()
}

// refreshOldest recomputes the oldest key (writer only).
func (q *Queue) refreshOldest() error {
	if q.records.Load() <= 0 {
		q.oldest.Store(0)
		return nil
	}
	return q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recordPrefix, PrefetchValues: false})
		defer it.Close()
		it.Seek(Key(q.cursor.Load() + 1).bytes(recordPrefix))
		if it.Valid() {
			if k, ok := parseKey(it.Item().Key()); ok {
				q.oldest.Store(uint64(k))
			}
		}
		return nil
	})
}

// Close stops the writer after it has committed what was submitted, and
// closes the store. It is idempotent and returns the first error.
func (q *Queue) Close(ctx context.Context) error {
	q.closeMu.Lock()
	defer q.closeMu.Unlock()
	if q.closeDone {
		return q.closeErr
	}
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.closing)
	}
	q.mu.Unlock()
	select {
	case <-q.stopped:
	case <-ctx.Done():
		return fmt.Errorf("close queue: %w", ctx.Err())
	}
	q.closeDone = true
	if err := q.db.Close(); err != nil {
		q.closeErr = fmt.Errorf("close queue: %w", err)
	}
	return q.closeErr
}

// Closed reports whether Close was called.
func (q *Queue) Closed() bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.closed
}
