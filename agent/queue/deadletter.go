package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/kubernaut/datastorage/wire"
)

// ReasonCorrupt is the dead-letter reason of an entry that could not be
// decoded (bad version, checksum or JSON).
const ReasonCorrupt = "corrupt"

// DeadLetter is a record that will not be forwarded again, with the reason.
// Record is the body its client sent (the JSON of a wire.Record for a dead
// letter written before entry version 2); it is empty when the entry was
// corrupt, and Raw then holds its stored bytes. Key is "seq" in JSON, a
// string of digits (see Key.MarshalJSON).
type DeadLetter struct {
	Key        Key            `json:"seq"`
	ID         string         `json:"id,omitempty"`
	Kind       wire.Kind      `json:"kind,omitempty"`
	Reason     string         `json:"reason"`
	At         time.Time      `json:"deadLetteredAt"`
	Record     jsontext.Value `json:"record,omitempty"`
	Raw        []byte         `json:"raw,omitempty"`
	ReceivedAt time.Time      `json:"receivedAt,omitzero"`
}

// newDeadLetter is e's dead letter; an item that does not parse is kept
// whole in Raw.
func newDeadLetter(e Entry, reason string, at time.Time) DeadLetter {
	d := DeadLetter{Key: e.Key, ID: e.ID, Reason: reason, At: at.UTC()}
	it, err := e.Decode()
	if err != nil {
		d.Raw = e.Item
		return d
	}
	d.Kind, d.Record = it.Kind, it.Record
	if it.ReceivedAt != nil {
		d.ReceivedAt = it.ReceivedAt.UTC()
	}
	return d
}

// DeadLetter moves entries out of the buffer into the dead-letter area with
// the given reason, durably, in as few transactions as Badger's size limit
// allows (each entry moves whole in one of them). Moving an entry that is
// already gone (acknowledged, or dead-lettered before) only rewrites its dead
// letter.
func (q *Queue) DeadLetter(ctx context.Context, entries []Entry, reason string) error {
	if len(entries) == 0 {
		return nil
	}
	now := q.cfg.Now()
	dead := make([]DeadLetter, len(entries))
	for i := range entries {
		dead[i] = newDeadLetter(entries[i], reason, now)
	}
	return q.do(ctx, func() error { return q.moveToDead(dead) })
}

// moveToDead runs on the writer. It takes as many transactions as Badger's
// size limit requires (a rejected batch may be megabytes); each dead letter
// replaces its record in one of them.
func (q *Queue) moveToDead(dead []DeadLetter) error {
	values := make([][]byte, len(dead))
	for i, d := range dead {
		v, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("encode dead letter: %w", err)
		}
		values[i] = v
	}
	if q.ackEstimate() > q.txnLimit/2 {
		q.persistAck()
	}
	for len(dead) > 0 {
		budget := q.txnLimit - q.ackEstimate()
		n := 0
		for size := int64(0); n < len(dead); n++ {
			est := int64(len(values[n])) + 2*entryOverhead
			if n > 0 && size+est > budget {
				break
			}
			size += est
		}
		if err := q.moveToDeadTxn(dead[:n], values[:n]); err != nil {
			return errors.Join(err, q.refreshOldest()) // earlier chunks did move
		}
		dead, values = dead[n:], values[n:]
	}
	return q.refreshOldest()
}

// moveToDeadTxn moves dead letters in one transaction (writer only).
func (q *Queue) moveToDeadTxn(dead []DeadLetter, values [][]byte) error {
	txn := q.db.NewTransaction(true)
	defer txn.Discard()
	var gone, goneBytes, newDead, deadBytes int64
	for i, d := range dead {
		v := values[i]
		deadBytes += int64(len(v))
		switch old, err := txn.Get(d.Key.bytes(deadPrefix)); {
		case err == nil: // rewritten: its old size no longer counts
			deadBytes -= old.ValueSize()
		case err == badger.ErrKeyNotFound:
			newDead++
		default:
			return fmt.Errorf("dead letter: %w", err)
		}
		k := d.Key.bytes(recordPrefix)
		item, err := txn.Get(k)
		switch {
		case err == nil && uint64(d.Key) <= q.cursor.Load():
			// Acknowledged, its delete still pending (see Ack): gone.
		case err == nil:
			gone++
			goneBytes += item.ValueSize()
			if err := txn.Delete(k); err != nil {
				return fmt.Errorf("dead letter: %w", err)
			}
		case err != badger.ErrKeyNotFound:
			return fmt.Errorf("dead letter: %w", err)
		}
		if err := txn.Set(d.Key.bytes(deadPrefix), v); err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
	}
	if err := q.stageAck(txn); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("dead letter commit: %w", err)
	}
	q.ackStaged()
	q.records.Add(-gone)
	q.bytes.Add(-goneBytes)
	q.deleted += gone
	q.deadRecords.Add(newDead)
	q.deadBytes.Add(deadBytes)
	for _, d := range dead {
		q.metricDead(d.Reason).Inc()
		// The reason's class only: the central's message may quote the record.
		q.log.Warn().Uint64("seq", uint64(d.Key)).Str("id", d.ID).Str("reason", reasonClass(d.Reason)).Msg("record dead-lettered")
	}
	return nil
}

// ListDeadLetters returns up to limit dead letters, oldest first (limit <= 0: all).
func (q *Queue) ListDeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: deadPrefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if limit > 0 && len(out) >= limit {
				return nil
			}
			var d DeadLetter
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &d) }); err != nil {
				return fmt.Errorf("dead letter %x: %w", it.Item().Key(), err)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// DeleteDeadLetters deletes the dead letters up to and including through,
// for an operator who has looked at (and kept elsewhere) what they hold; it
// returns how many it deleted. They stop counting toward MaxBytes.
func (q *Queue) DeleteDeadLetters(ctx context.Context, through Key) (int64, error) {
	// Atomic: when ctx ends first, q.do returns while the writer may still
	// be deleting.
	var n atomic.Int64
	err := q.do(ctx, func() error {
		d, err := q.deleteDead(through)
		n.Store(d)
		return err
	})
	return n.Load(), err
}

// deleteDeadBatch bounds the keys of one delete transaction (Badger's
// transaction size limit).
const deleteDeadBatch = 1000

// deleteDead runs on the writer.
func (q *Queue) deleteDead(through Key) (int64, error) {
	var deleted int64
	for {
		var keys [][]byte
		var size int64
		err := q.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: deadPrefix, PrefetchValues: false})
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < deleteDeadBatch; it.Next() {
				if k, ok := parseKey(it.Item().Key()); !ok || k > through {
					break
				}
				keys = append(keys, it.Item().KeyCopy(nil))
				size += it.Item().ValueSize()
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return deleted, err
		}
		err = q.db.Update(func(txn *badger.Txn) error {
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return deleted, fmt.Errorf("delete dead letters: %w", err)
		}
		deleted += int64(len(keys))
		q.deadRecords.Add(-int64(len(keys)))
		q.deadBytes.Add(-size)
		q.mDeadDeleted.Add(len(keys))
		q.log.Info().Int("records", len(keys)).Uint64("through", uint64(through)).Msg("dead letters deleted")
	}
}
