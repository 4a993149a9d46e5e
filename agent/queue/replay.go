package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/wire"
)

// Replay is what ReplayDeadLetters did.
type Replay struct {
	// Replayed dead letters are records in the queue again.
	Replayed int64 `json:"replayed"`
	// Skipped dead letters could not be re-queued faithfully (corrupt: only
	// their raw bytes are kept; no valid ID or kind; too large); they stay.
	Skipped int64 `json:"skipped"`
}

// ReplayDeadLetters moves the dead letters up to and including through back
// into the queue, for an operator who has fixed what made the central refuse
// them (RBAC, say). Each goes to the tail under a new key, with its original
// ID (so the central stores it once however often it is sent), kind, receive
// time and body. A dead letter written before entry version 2 (its record is
// the JSON of a wire.Record) is re-encoded exactly as the queue re-encodes a
// version 1 entry it forwards. Each move deletes the dead letter and adds
// the record in one transaction, so a crash leaves a record dead or queued,
// never both and never neither. Each chunk (one transaction) runs on the
// writer on its own, so appends are not held up for a whole large replay.
func (q *Queue) ReplayDeadLetters(ctx context.Context, through Key) (Replay, error) {
	var r Replay
	for from := Key(0); ; {
		// Read only once q.do has returned nil: on ctx's end the writer may
		// still be running the chunk.
		var (
			chunk Replay
			next  Key
		)
		err := q.do(ctx, func() error {
			var err error
			next, err = q.replayChunk(from, through, &chunk)
			return err
		})
		if err != nil {
			return r, fmt.Errorf("replay dead letters: %w", err)
		}
		r.Replayed += chunk.Replayed
		r.Skipped += chunk.Skipped
		if next == 0 {
			break
		}
		from = next
	}
	if r.Replayed+r.Skipped > 0 {
		q.log.Info().Int64("replayed", r.Replayed).Int64("skipped", r.Skipped).Uint64("through", uint64(through)).
			Msg("dead letters replayed")
	}
	return r, nil
}

// move is one dead letter on its way back to the queue.
type move struct {
	dead     Key
	deadSize int64
	value    []byte // the queue entry
}

// replayChunk moves the dead letters from from up to through that one
// transaction takes (writer only); next is where the following chunk starts,
// 0 when there is none.
func (q *Queue) replayChunk(from, through Key, r *Replay) (next Key, err error) {
	if err := q.checkDiskSpace(); err != nil {
		return 0, err
	}
	moves, skipped, next, err := q.collectReplay(from, through)
	r.Skipped += skipped
	if err != nil || len(moves) == 0 {
		return next, err
	}
	if err := q.commitReplay(moves); err != nil {
		return 0, err
	}
	r.Replayed += int64(len(moves))
	return next, nil
}

// collectReplay reads the dead letters from from up to through, as many as
// one transaction takes; next is where the following chunk starts (0: done).
func (q *Queue) collectReplay(from, through Key) (moves []move, skipped int64, next Key, err error) {
	var size int64
	err = q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: deadPrefix, PrefetchValues: false})
		defer it.Close()
		for it.Seek(from.bytes(deadPrefix)); it.Valid(); it.Next() {
			item := it.Item()
			k, ok := parseKey(item.Key())
			if !ok {
				continue
			}
			if k > through {
				return nil
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read dead letter %d: %w", k, err)
			}
			id, entry, err := replayEntry(v)
			est := int64(len(entry)) + 2*entryOverhead
			if err == nil && est > q.txnLimit {
				err = errors.New("too large for one transaction")
			}
			if err != nil {
				skipped++
				q.log.Warn().Uint64("seq", uint64(k)).Str("id", id).Str("why", err.Error()).Msg("dead letter not replayed: it stays")
				continue
			}
			if size+est > q.txnLimit {
				next = k
				return nil
			}
			moves = append(moves, move{dead: k, deadSize: item.ValueSize(), value: entry})
			size += est
		}
		return nil
	})
	return moves, skipped, next, err
}

// replayEntry is the queue entry a stored dead letter becomes. Its errors
// say why in words that never quote the record (they are logged).
func replayEntry(v []byte) (id string, entry []byte, err error) {
	var d DeadLetter
	if err := json.Unmarshal(v, &d); err != nil {
		return "", nil, errors.New("the dead letter does not decode")
	}
	if len(d.Record) == 0 {
		return d.ID, nil, errors.New("corrupt: only its stored bytes are kept")
	}
	rec, err := replayRecord(d)
	if err != nil {
		return d.ID, nil, err
	}
	entry, err = encodeEntry(&rec)
	if err != nil {
		return d.ID, nil, errors.New("its ID cannot be stored")
	}
	return d.ID, entry, nil
}

// replayRecord is the record of a dead letter as it was first accepted.
func replayRecord(d DeadLetter) (wire.RawRecord, error) {
	// Before entry version 2 the record was the JSON of a wire.Record
	// ({"id","kind","receivedAt","remediation"|"workflow"}). Since, it is the
	// body its client sent, which DecodeAudit accepted, so it never has a
	// "kind" member: the strict decode tells the two apart.
	var old wire.Record
	if json.Unmarshal(d.Record, &old, json.RejectUnknownMembers(true)) == nil && old.Kind != "" {
		if old.ID != d.ID {
			return wire.RawRecord{}, errors.New("written before entry version 2, and its record's ID is not the dead letter's")
		}
		raw, err := old.Raw() // as decodeEntry converts a version 1 entry
		if err != nil {
			return wire.RawRecord{}, errors.New("written before entry version 2, and its kind does not match its record")
		}
		return raw, nil
	}
	kind, err := wire.ParseKind(string(d.Kind))
	if err != nil {
		return wire.RawRecord{}, errors.New("no valid kind")
	}
	if wire.ValidateID(d.ID) != nil {
		return wire.RawRecord{}, errors.New("no valid ID")
	}
	if d.Record[0] != '{' {
		return wire.RawRecord{}, errors.New("its record is not a JSON object")
	}
	return wire.RawRecord{ID: d.ID, Kind: kind, ReceivedAt: d.ReceivedAt, Body: d.Record}, nil
}

// commitReplay deletes the dead letters and appends their records under
// fresh keys at the tail, in one transaction.
func (q *Queue) commitReplay(moves []move) error {
	txn := q.db.NewTransaction(true)
	defer txn.Discard()
	now := uint64(q.cfg.Now().UnixNano())
	var first uint64
	var bytes, deadBytes int64
	for _, m := range moves {
		k := q.nextKey(now)
		if first == 0 {
			first = uint64(k)
		}
		if err := txn.Delete(m.dead.bytes(deadPrefix)); err != nil {
			return err
		}
		if err := txn.Set(k.bytes(recordPrefix), m.value); err != nil {
			return err
		}
		bytes += int64(len(m.value))
		deadBytes += m.deadSize
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	n := int64(len(moves))
	if q.records.Add(n) == n {
		q.oldest.Store(first)
	}
	q.bytes.Add(bytes)
	q.deadRecords.Add(-n)
	q.deadBytes.Add(-deadBytes)
	q.mReplayed.AddInt64(n)
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}
