package queue_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/wire"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(replayChildEnv); dir != "" {
		os.Exit(replayChild(dir)) // a child that TestQueue_ReplayKilled… kills
	}
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
}

func openQueue(t *testing.T, cfg queue.Config) *queue.Queue {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	q, err := queue.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, q.Close(context.Background())) })
	return q
}

var seqs atomic.Int64

func record(t *testing.T, reasoningBytes int) wire.RawRecord {
	t.Helper()
	seq := seqs.Add(1)
	reasoning := make([]byte, reasoningBytes)
	for i := range reasoning {
		reasoning[i] = 'a' + byte(i%26)
	}
	rec := wire.Record{
		ID:         fmt.Sprintf("audit-test-%06d", seq),
		Kind:       wire.KindRemediation,
		ReceivedAt: time.Now().UTC().Truncate(time.Microsecond),
		Remediation: &wire.RemediationAudit{
			RemediationRequestID: fmt.Sprintf("rr-%d", seq),
			Reasoning:            string(reasoning),
		},
	}
	raw, err := rec.Raw()
	require.NoError(t, err)
	return raw
}

func ids(entries []queue.Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ID
	}
	return out
}

func recordIDs(records []wire.RawRecord) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = r.ID
	}
	return out
}

func TestQueue_AppendReadAck(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, queue.Config{})
	recs := []wire.RawRecord{record(t, 10), record(t, 10), record(t, 10)}
	require.NoError(t, q.Append(ctx, recs))

	d := q.Depth()
	assert.EqualValues(t, 3, d.Records)
	assert.Positive(t, d.Bytes)
	assert.WithinDuration(t, time.Now(), d.Oldest, 5*time.Second)

	t.Run("read returns records in order with all their fields", func(t *testing.T) {
		got, err := q.Read(ctx, 10, 1<<20)
		require.NoError(t, err)
		require.Len(t, got, 3)
		for i := range recs {
			assert.Equal(t, recs[i].ID, got[i].ID)
			it, err := got[i].Decode()
			require.NoError(t, err)
			assert.Equal(t, recs[i].ID, it.ID)
			assert.Equal(t, recs[i].Kind, it.Kind)
			require.NotNil(t, it.ReceivedAt)
			assert.True(t, recs[i].ReceivedAt.Equal(*it.ReceivedAt))
			assert.Equal(t, string(recs[i].Body), string(it.Record), "the body is kept byte for byte")
		}
		assert.Less(t, got[0].Key, got[1].Key)
	})
	t.Run("read honours the record limit and the byte limit", func(t *testing.T) {
		got, err := q.Read(ctx, 2, 1<<20)
		require.NoError(t, err)
		assert.Len(t, got, 2)
		got, err = q.Read(ctx, 10, 1)
		require.NoError(t, err)
		assert.Len(t, got, 1, "at least one entry even above the byte limit")
	})
	t.Run("ack removes up to the key and moves the cursor", func(t *testing.T) {
		got, err := q.Read(ctx, 2, 1<<20)
		require.NoError(t, err)
		require.NoError(t, q.Ack(ctx, got[1].Key))
		rest, err := q.Read(ctx, 10, 1<<20)
		require.NoError(t, err)
		assert.Equal(t, []string{recs[2].ID}, ids(rest))
		assert.EqualValues(t, 1, q.Depth().Records)
		assert.Equal(t, int64(rest[0].Size), q.Depth().Bytes)
	})
}

func TestQueue_ReopenAfterCloseKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q, err := queue.Open(queue.Config{Dir: dir})
	require.NoError(t, err)
	var recs []wire.RawRecord
	for range 50 {
		recs = append(recs, record(t, 100))
	}
	require.NoError(t, q.Append(ctx, recs))
	first, err := q.Read(ctx, 20, 1<<20)
	require.NoError(t, err)
	require.NoError(t, q.Ack(ctx, first[19].Key))
	before := q.Depth()
	require.NoError(t, q.Close(ctx))
	require.NoError(t, q.Close(ctx), "Close is idempotent")
	assert.ErrorIs(t, q.Append(ctx, recs[:1]), queue.ErrClosed)

	q = openQueue(t, queue.Config{Dir: dir})
	assert.Equal(t, before, q.Depth(), "depth is recomputed on open")
	got, err := q.Read(ctx, 100, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, recordIDs(recs[20:]), ids(got), "the cursor survived: acknowledged records stay gone")

	more := []wire.RawRecord{record(t, 10)}
	require.NoError(t, q.Append(ctx, more))
	got, err = q.Read(ctx, 100, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, more[0].ID, got[len(got)-1].ID, "new keys sort after the old ones")
}

func TestQueue_GroupCommitSharesFsyncs(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, queue.Config{})
	const appenders, each = 64, 20
	var wg sync.WaitGroup
	errs := make(chan error, appenders*each)
	for range appenders {
		wg.Go(func() {
			for range each {
				errs <- q.Append(ctx, []wire.RawRecord{record(t, 200)})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	commits := q.Commits()
	t.Logf("%d appends in %d commits (%.1f records per fsync)", appenders*each, commits, float64(appenders*each)/float64(commits))
	assert.EqualValues(t, appenders*each, q.Depth().Records)
	assert.LessOrEqual(t, commits*4, uint64(appenders*each), "concurrent appends must share commits")
}

func TestQueue_FullRefusesThenRecoversAfterAck(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, queue.Config{MaxBytes: 4 << 10})
	var n int
	for {
		err := q.Append(ctx, []wire.RawRecord{record(t, 500)})
		if err != nil {
			require.ErrorIs(t, err, queue.ErrFull)
			break
		}
		n++
		require.Less(t, n, 100, "the limit is never reached")
	}
	d := q.Depth()
	assert.LessOrEqual(t, d.Bytes, int64(4<<10))
	assert.EqualValues(t, n, d.Records, "a refused append stores nothing and evicts nothing")

	got, err := q.Read(ctx, 100, 1<<20)
	require.NoError(t, err)
	require.NoError(t, q.Ack(ctx, got[len(got)-1].Key))
	require.NoError(t, q.Append(ctx, []wire.RawRecord{record(t, 500)}))
}

func TestQueue_NearlyFullDiskRefusesThenRecovers(t *testing.T) {
	ctx := context.Background()
	var free atomic.Int64
	free.Store(1 << 30)
	q := openQueue(t, queue.Config{MinFreeBytes: 32 << 20,
		FreeBytes: func(string) (int64, error) { return free.Load(), nil }})
	first := record(t, 100)
	require.NoError(t, q.Append(ctx, []wire.RawRecord{first}))

	free.Store(31 << 20)
	err := q.Append(ctx, []wire.RawRecord{record(t, 100)})
	require.ErrorIs(t, err, queue.ErrDiskFull, "refused before Badger could write into a mapping the disk cannot back")
	assert.EqualValues(t, 1, q.Depth().Records, "nothing of a refused append is stored")

	free.Store(1 << 30)
	second := record(t, 100)
	require.NoError(t, q.Append(ctx, []wire.RawRecord{second}))
	got, err := q.Read(ctx, 10, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, recordIDs([]wire.RawRecord{first, second}), ids(got))
}

func TestQueue_CorruptEntryIsDeadLetteredAndSkipped(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q, err := queue.Open(queue.Config{Dir: dir})
	require.NoError(t, err)
	recs := []wire.RawRecord{record(t, 50), record(t, 50), record(t, 50), record(t, 50)}
	require.NoError(t, q.Append(ctx, recs))
	entries, err := q.Read(ctx, 10, 1<<20)
	require.NoError(t, err)
	require.NoError(t, q.Close(ctx))

	// Damage two entries behind the queue's back: one truncated, one with a flipped byte.
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	require.NoError(t, err)
	require.NoError(t, db.Update(func(txn *badger.Txn) error {
		for i, damage := range map[int]func([]byte) []byte{
			1: func(v []byte) []byte { return v[:len(v)/2] },
			2: func(v []byte) []byte { v[len(v)-3] ^= 0x20; return v },
		} {
			k := queue.RecordKey(entries[i].Key)
			item, err := txn.Get(k)
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := txn.Set(k, damage(v)); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())

	q = openQueue(t, queue.Config{Dir: dir})
	got, err := q.Read(ctx, 10, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, []string{recs[0].ID, recs[3].ID}, ids(got))
	assert.EqualValues(t, 2, q.DeadLetters())
	assert.EqualValues(t, 2, q.Depth().Records)

	dead, err := q.ListDeadLetters(ctx, 0)
	require.NoError(t, err)
	require.Len(t, dead, 2)
	for i, d := range dead {
		assert.Equal(t, queue.ReasonCorrupt, d.Reason)
		assert.Equal(t, entries[i+1].Key, d.Key)
		assert.NotEmpty(t, d.Raw, "the damaged bytes are kept for inspection")
	}
	require.NoError(t, q.Ack(ctx, got[1].Key))
	assert.EqualValues(t, 0, q.Depth().Records)
}

func TestQueue_DeadLetterKeepsRecordAndReason(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, queue.Config{})
	recs := []wire.RawRecord{record(t, 10), record(t, 10)}
	require.NoError(t, q.Append(ctx, recs))
	got, err := q.Read(ctx, 10, 1<<20)
	require.NoError(t, err)
	require.NoError(t, q.DeadLetter(ctx, got[:1], "validation_failed: confidence out of range"))
	require.NoError(t, q.Ack(ctx, got[1].Key))

	assert.EqualValues(t, 0, q.Depth().Records)
	dead, err := q.ListDeadLetters(ctx, 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, recs[0].ID, dead[0].ID)
	assert.Equal(t, "validation_failed: confidence out of range", dead[0].Reason)
	assert.Equal(t, wire.KindRemediation, dead[0].Kind)
	assert.True(t, recs[0].ReceivedAt.Equal(dead[0].ReceivedAt))
	assert.Equal(t, string(recs[0].Body), string(dead[0].Record), "the body its client sent")

	// Again, and an entry already acknowledged: one dead letter each.
	require.NoError(t, q.DeadLetter(ctx, got[:1], "validation_failed: still"))
	require.NoError(t, q.DeadLetter(ctx, got[1:2], "validation_failed: late"))
	dead, err = q.ListDeadLetters(ctx, 10)
	require.NoError(t, err)
	require.Len(t, dead, 2)
	assert.Equal(t, "validation_failed: still", dead[0].Reason)
	assert.EqualValues(t, 2, q.DeadLetters())
	assert.Zero(t, q.Depth().Records)
}

// diskUse is the space the directory's files occupy (allocated blocks, so
// Badger's sparse preallocated files count for what they hold).
func diskUse(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted by Badger (compaction, reclaim) since the directory was read
		}
		if err != nil {
			return err
		}
		total += info.Sys().(*syscall.Stat_t).Blocks * 512
		return nil
	}))
	return total
}

func TestQueue_DiskUseReturnsNearEmptyAfterDrain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q := openQueue(t, queue.Config{Dir: dir, ReclaimInterval: 50 * time.Millisecond})
	empty := diskUse(t, dir)

	const total = 24 << 20
	var batch []wire.RawRecord
	for written := 0; written < total; written += 4 << 10 {
		batch = append(batch, record(t, 4<<10))
		if len(batch) == 50 {
			require.NoError(t, q.Append(ctx, batch))
			batch = batch[:0]
		}
	}
	full := diskUse(t, dir)
	for {
		got, err := q.Read(ctx, 500, 4<<20)
		require.NoError(t, err)
		if len(got) == 0 {
			break
		}
		require.NoError(t, q.Ack(ctx, got[len(got)-1].Key))
	}
	var drained int64
	require.Eventually(t, func() bool {
		drained = diskUse(t, dir)
		return drained < empty+4<<20
	}, 10*time.Second, 50*time.Millisecond, "disk use stays high after a drain")
	t.Logf("disk use: empty %d KiB, full %d KiB, drained %d KiB", empty>>10, full>>10, drained>>10)
	assert.Greater(t, full, int64(total/2), "the data was on disk")
}

func TestQueue_DeadLettersCountTowardTheLimitUntilDeleted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q, err := queue.Open(queue.Config{Dir: dir, MaxBytes: 8 << 10})
	require.NoError(t, err)
	var recs []wire.RawRecord
	for range 6 {
		recs = append(recs, record(t, 1000))
	}
	require.NoError(t, q.Append(ctx, recs))
	got, err := q.Read(ctx, 100, 1<<20)
	require.NoError(t, err)
	require.NoError(t, q.DeadLetter(ctx, got, "validation_failed: nope"))
	require.NoError(t, q.Ack(ctx, got[len(got)-1].Key))

	d := q.Depth()
	assert.Zero(t, d.Records)
	assert.Greater(t, d.DeadBytes, int64(6000), "the dead letters hold the records")
	require.ErrorIs(t, q.Append(ctx, []wire.RawRecord{record(t, 3000)}), queue.ErrFull,
		"dead letters take buffer space: rejected records cannot fill the disk")

	// An operator keeps the first three elsewhere and deletes them.
	n, err := q.DeleteDeadLetters(ctx, got[2].Key)
	require.NoError(t, err)
	assert.EqualValues(t, 3, n)
	assert.EqualValues(t, 3, q.DeadLetters())
	dead, err := q.ListDeadLetters(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, []queue.Key{got[3].Key, got[4].Key, got[5].Key}, []queue.Key{dead[0].Key, dead[1].Key, dead[2].Key})
	require.NoError(t, q.Append(ctx, []wire.RawRecord{record(t, 3000)}), "the space is free again")

	before := q.Depth()
	require.NoError(t, q.Close(ctx))
	q = openQueue(t, queue.Config{Dir: dir, MaxBytes: 8 << 10})
	assert.Equal(t, before.DeadBytes, q.Depth().DeadBytes, "dead-letter bytes are recomputed on open")
	n, err = q.DeleteDeadLetters(ctx, queue.Key(1<<63))
	require.NoError(t, err)
	assert.EqualValues(t, 3, n)
	assert.Zero(t, q.Depth().DeadBytes)
	assert.Zero(t, q.DeadLetters())
}

// testdata/records-entry-v1.jsonl holds buffered records as an agent before
// entry version 2 stored them (see testdata/README.md): a queue that finds
// them reads them, the central accepts them as their clients sent them, and
// they are acknowledged like any other.
func TestQueue_ReadsEntriesWrittenBeforeEntryVersion2(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	frozen := queue.FrozenEntriesV1(t)
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	require.NoError(t, err)
	require.NoError(t, db.Update(func(txn *badger.Txn) error {
		for _, e := range frozen {
			if err := txn.Set(queue.RecordKey(e.Seq), e.Value); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())

	q := openQueue(t, queue.Config{Dir: dir})
	assert.EqualValues(t, len(frozen), q.Depth().Records)
	got := readAll(t, q)
	require.Len(t, got, len(frozen))
	items := make([][]byte, len(got))
	for i, e := range got {
		assert.Equal(t, frozen[i].Seq, e.Key)
		assert.Equal(t, frozen[i].AuditID, e.ID)
		assert.Equal(t, len(frozen[i].Value), e.Size)
		items[i] = e.Item
	}
	body, err := wire.JoinBatch(items) // as the forwarder sends them
	require.NoError(t, err)
	batch, err := wire.DecodeBatch(body)
	require.NoError(t, err)
	for i, it := range batch.Records {
		rec, err := it.Decode(time.Now())
		require.NoError(t, err, "the central accepts %s", frozen[i].AuditID)
		assert.Equal(t, frozen[i].Want(t), rec)
		if k := frozen[i].IdempotencyKey; k != "" {
			assert.Equal(t, wire.IDForKey(queue.FrozenServiceAccount, frozen[i].Kind, k), rec.ID,
				"an Idempotency-Key gives the ID it gave then")
		}
	}
	require.NoError(t, q.Ack(ctx, got[len(got)-1].Key))
	assert.Zero(t, q.Depth().Records)
	assert.Zero(t, q.DeadLetters(), "none was taken for corrupt")
}
