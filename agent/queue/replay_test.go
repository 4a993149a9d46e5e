package queue_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/wire"
)

// deadLettered appends recs, reads them and dead-letters them all.
func deadLettered(t *testing.T, q *queue.Queue, recs []wire.RawRecord) []queue.Entry {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < len(recs); i += 50 {
		require.NoError(t, q.Append(ctx, recs[i:min(i+50, len(recs))]))
	}
	var got []queue.Entry
	for len(got) < len(recs) {
		e, err := q.Read(ctx, 50, 64<<20)
		require.NoError(t, err)
		require.NoError(t, q.DeadLetter(ctx, e, "authorization_failed: ns/sa may not write remediation audits"))
		require.NoError(t, q.Ack(ctx, e[len(e)-1].Key))
		got = append(got, e...)
	}
	return got
}

// readAll reads every buffered entry without acknowledging any.
func readAll(t *testing.T, q *queue.Queue) []queue.Entry {
	t.Helper()
	got, err := q.Read(context.Background(), 1<<20, 1<<30)
	require.NoError(t, err)
	return got
}

func TestQueue_ReplayMovesDeadLettersToTheTailWithTheirIdentity(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q, err := queue.Open(queue.Config{Dir: dir})
	require.NoError(t, err)
	recs := []wire.RawRecord{record(t, 10), record(t, 20), record(t, 30)}
	dead := deadLettered(t, q, recs)
	waiting := record(t, 40)
	require.NoError(t, q.Append(ctx, []wire.RawRecord{waiting}))
	before := q.Depth()

	r, err := q.ReplayDeadLetters(ctx, dead[1].Key)
	require.NoError(t, err)
	assert.Equal(t, queue.Replay{Replayed: 2}, r)
	assert.EqualValues(t, 1, q.DeadLetters(), "the one after through stays")
	left, err := q.ListDeadLetters(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, recs[2].ID, left[0].ID)

	got := readAll(t, q)
	require.Equal(t, []string{waiting.ID, recs[0].ID, recs[1].ID}, ids(got), "replayed records join the tail, in their order")
	for i, e := range got[1:] {
		assert.Greater(t, e.Key, got[0].Key, "a new key, past the cursor")
		it, err := e.Decode()
		require.NoError(t, err)
		assert.Equal(t, recs[i].Kind, it.Kind)
		require.NotNil(t, it.ReceivedAt)
		assert.True(t, recs[i].ReceivedAt.Equal(*it.ReceivedAt), "the original receive time")
		assert.Equal(t, string(recs[i].Body), string(it.Record), "the body its client sent")
	}
	d := q.Depth()
	assert.EqualValues(t, 3, d.Records)
	assert.Equal(t, int64(got[0].Size+got[1].Size+got[2].Size), d.Bytes)
	assert.Less(t, d.DeadBytes, before.DeadBytes)
	assert.Positive(t, d.DeadBytes)

	require.NoError(t, q.Close(ctx))
	q = openQueue(t, queue.Config{Dir: dir})
	assert.Equal(t, d.Records, q.Depth().Records, "depth is the same after a reopen")
	assert.Equal(t, d.Bytes, q.Depth().Bytes)
	assert.Equal(t, d.DeadBytes, q.Depth().DeadBytes)
	assert.EqualValues(t, 1, q.DeadLetters())
	assert.Equal(t, []string{waiting.ID, recs[0].ID, recs[1].ID}, ids(readAll(t, q)))

	r, err = q.ReplayDeadLetters(ctx, dead[1].Key)
	require.NoError(t, err)
	assert.Zero(t, r, "replayed once only")
}

func TestQueue_ReplaySkipsCorruptDeadLettersAndKeepsThem(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q, err := queue.Open(queue.Config{Dir: dir})
	require.NoError(t, err)
	recs := []wire.RawRecord{record(t, 10), record(t, 10)}
	require.NoError(t, q.Append(ctx, recs))
	entries := readAll(t, q)
	require.NoError(t, q.Close(ctx))
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	require.NoError(t, err)
	require.NoError(t, db.Update(func(txn *badger.Txn) error {
		return txn.Set(queue.RecordKey(entries[0].Key), []byte{2, 0, 0, 0, 0, 'x'})
	}))
	require.NoError(t, db.Close())

	q = openQueue(t, queue.Config{Dir: dir})
	got := readAll(t, q) // quarantines the damaged entry
	require.Equal(t, []string{recs[1].ID}, ids(got))
	require.NoError(t, q.DeadLetter(ctx, got, "validation_failed: nope"))
	require.EqualValues(t, 2, q.DeadLetters())

	r, err := q.ReplayDeadLetters(ctx, queue.Key(1<<63))
	require.NoError(t, err)
	assert.Equal(t, queue.Replay{Replayed: 1, Skipped: 1}, r)
	dead, err := q.ListDeadLetters(ctx, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, queue.ReasonCorrupt, dead[0].Reason, "the corrupt one stays, its bytes kept")
	assert.Equal(t, []string{recs[1].ID}, ids(readAll(t, q)))
}

// testdata/deadletters-entry-v1.jsonl holds dead letters as the queue stored
// them before entry version 2 (commit bd4834b: the record is the JSON of a
// wire.Record and the seq a number), one value per line, written by that
// commit's queue.
func TestQueue_ReplaysDeadLettersWrittenBeforeEntryVersion2(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, err := os.Open("testdata/deadletters-entry-v1.jsonl")
	require.NoError(t, err)
	defer f.Close()
	var old []wire.Record
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	require.NoError(t, err)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var v struct {
			Seq    uint64      `json:"seq"`
			Record wire.Record `json:"record"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &v))
		old = append(old, v.Record)
		value := append([]byte(nil), sc.Bytes()...)
		require.NoError(t, db.Update(func(txn *badger.Txn) error { return txn.Set(queue.DeadKey(queue.Key(v.Seq)), value) }))
	}
	require.NoError(t, sc.Err())
	// One more, doctored: a workflow record under the remediation kind cannot be replayed faithfully.
	bad := `{"seq":1764410400000000009,"id":"audit-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d","kind":"remediation","reason":"x",` +
		`"deadLetteredAt":"2025-11-29T10:00:00Z","record":{"id":"audit-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d","kind":"remediation",` +
		`"receivedAt":"2025-11-29T09:59:00Z","workflow":{"workflowID":"wf-1","stepName":"s","stepStatus":"completed"}}}`
	require.NoError(t, db.Update(func(txn *badger.Txn) error {
		return txn.Set(queue.DeadKey(queue.Key(1764410400000000009)), []byte(bad))
	}))
	require.NoError(t, db.Close())
	require.Len(t, old, 2)

	q := openQueue(t, queue.Config{Dir: dir})
	require.EqualValues(t, 3, q.DeadLetters())
	listed, err := q.ListDeadLetters(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, queue.Key(1764410400000000000), listed[0].Key, "a numeric seq still reads")

	r, err := q.ReplayDeadLetters(ctx, queue.Key(1<<63))
	require.NoError(t, err)
	assert.Equal(t, queue.Replay{Replayed: 2, Skipped: 1}, r)
	got := readAll(t, q)
	require.Len(t, got, 2)
	for i, e := range got {
		want, err := old[i].Raw()
		require.NoError(t, err)
		assert.Equal(t, string(want.AppendItem(nil)), string(e.Item), "as a version 1 entry is forwarded")
		it, err := e.Decode()
		require.NoError(t, err)
		rec, err := it.Decode(time.Now())
		require.NoError(t, err, "the central will accept it")
		assert.Equal(t, old[i], rec)
	}
	assert.EqualValues(t, 1, q.DeadLetters(), "the doctored one stays")
}

func TestQueue_ReplayOfMoreThanOneTransactionKeepsEveryRecordOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q, err := queue.Open(queue.Config{Dir: dir})
	require.NoError(t, err)
	var recs []wire.RawRecord
	for range 300 { // ~1.3 MB of dead letters; one transaction takes ~400 KiB
		recs = append(recs, record(t, 4<<10))
	}
	deadLettered(t, q, recs)
	require.EqualValues(t, 300, q.DeadLetters())

	r, err := q.ReplayDeadLetters(ctx, queue.Key(1<<63))
	require.NoError(t, err)
	assert.Equal(t, queue.Replay{Replayed: 300}, r)
	assert.Zero(t, q.DeadLetters())
	assert.Zero(t, q.Depth().DeadBytes)
	d := q.Depth()
	require.NoError(t, q.Close(ctx))

	q = openQueue(t, queue.Config{Dir: dir})
	assert.Equal(t, d, q.Depth())
	assert.Equal(t, recordIDs(recs), ids(readAll(t, q)))
}

// replayChildEnv names the queue directory a child process replays.
const replayChildEnv = "QUEUE_TEST_REPLAY_CHILD_DIR"

// replayChild opens the queue in dir, says "ready", replays every dead
// letter and says "done"; its parent kills it somewhere on the way.
func replayChild(dir string) int {
	q, err := queue.Open(queue.Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	if _, err := q.ReplayDeadLetters(context.Background(), queue.Key(1<<63)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("done")
	if err := q.Close(context.Background()); err != nil {
		return 1
	}
	return 0
}

// A replay killed at any point leaves every record either a dead letter or
// in the queue, once, and the depth recomputed on open agrees.
func TestQueue_ReplayKilledMidwayLeavesEachRecordDeadOrQueuedOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q, err := queue.Open(queue.Config{Dir: dir})
	require.NoError(t, err)
	var recs []wire.RawRecord
	for range 1500 { // ~1.6 MB: several transactions
		recs = append(recs, record(t, 1000))
	}
	deadLettered(t, q, recs)
	require.NoError(t, q.Close(ctx))

	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), replayChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		lines := bufio.NewScanner(out)
		require.True(t, lines.Scan(), "child: %s", stderr.String())
		require.Equal(t, "ready", lines.Text(), "child: %s", stderr.String())
		// Fault injection, not synchronisation: a kill somewhere in the replay.
		time.Sleep(time.Duration(round) * 3 * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		q := openQueue(t, queue.Config{Dir: dir})
		dead, err := q.ListDeadLetters(ctx, 0)
		require.NoError(t, err)
		queued := readAll(t, q)
		seen := map[string]int{}
		for _, d := range dead {
			seen[d.ID]++
		}
		for _, e := range queued {
			seen[e.ID]++
		}
		for _, r := range recs {
			require.Equal(t, 1, seen[r.ID], "round %d: record %s dead or queued once", round, r.ID)
		}
		assert.EqualValues(t, len(dead), q.DeadLetters())
		assert.EqualValues(t, len(queued), q.Depth().Records)
		t.Logf("round %d: %d queued, %d still dead", round, len(queued), len(dead))
		require.NoError(t, q.Close(ctx))
	}
	q = openQueue(t, queue.Config{Dir: dir})
	_, err = q.ReplayDeadLetters(ctx, queue.Key(1<<63))
	require.NoError(t, err)
	assert.Zero(t, q.DeadLetters())
	assert.ElementsMatch(t, recordIDs(recs), ids(readAll(t, q)))
}
