// Package queue is the agent's durable buffer: an append-only, time-ordered
// queue of accepted records (wire.RawRecord) over Badger v4, with group commit, a persisted read
// cursor, a dead-letter area and space reclamation.
//
// Durability. Badger runs with SyncWrites=true: every transaction commit
// ends in an fsync of the memtable's write-ahead log (db.writeToLSM calls
// memTable.SyncWAL) and of the current value-log file (valueLog.write), and
// only then returns (badger v4.9.6, db.go and value.go). Append returns
// only after the commit that holds its records, so an acknowledged record is
// on disk. Values stay below Badger's ValueThreshold (256 KiB; a record is
// at most wire.MaxRecordBytes), so they live in the WAL and SSTs, not the
// value log.
//
// The writer. One goroutine (run, in writer.go) owns every write and the
// state behind it; callers reach it over one channel per kind of request,
// and its loop is one select over them (go-diskqueue's ioLoop):
//
//   - appends: the append taken and those waiting behind it (up to
//     MaxGroupRecords and MaxGroupBytes) form a group, staged in one
//     transaction (a txnGroup) that one commit, one fsync, makes durable
//     before every append in it is answered. Badger's transaction size limit
//     splits a group that does not fit. ErrDiskFull refuses a whole group,
//     ErrFull and ErrTooLarge one append, before it is staged.
//   - operations: Ack, DeadLetter, Read's quarantine of corrupt entries,
//     DeleteDeadLetters and each chunk of ReplayDeadLetters, each a function
//     run alone on the writer.
//   - when no request waits: the pending acknowledgements are committed
//     alone, and on a ticker (ReclaimInterval) space is reclaimed.
//   - Close: senders are excluded first; the writer serves what they queued,
//     commits the pending acknowledgements and stops.
//
// On-disk layout (keys):
//
//	"q" + uint64 big-endian sequence   a buffered record
//	"d" + uint64 big-endian sequence   a dead letter (JSON: reason, time, entry)
//	"m/cursor"                         the sequence of the last acknowledged record
//
// The sequence is the receive time in Unix nanoseconds, forced strictly
// increasing, so keys are time-ordered and the oldest buffered record's age
// is read from its key. A record value is: version byte (2), CRC32C
// (Castagnoli, big-endian) of the payload, payload: the ID's length (1 byte),
// the ID, and the record as one item of the batch format with the body its
// client sent, so the forwarder joins items into a batch without decoding or
// re-encoding them. Version 1 values (the JSON of a wire.Record, written by
// earlier agents) are still read. An entry whose version or checksum is bad
// is moved to the dead-letter area with reason "corrupt", counted, logged and
// skipped; it never stops the queue.
//
// Reading starts after the cursor, so it never scans tombstones of
// acknowledged records. Ack moves the cursor in memory at once; the deletes
// and the persisted cursor ride on the next commit (an append group's, or
// their own when the writer is idle), so they cost no fsync under load. A
// crash loses at most acknowledgements, and the records are sent again.
//
// Space: deleted keys are reclaimed by Badger's compaction under load; when
// the queue is empty, the writer periodically drops the record prefix
// (flushing the memtable and deleting tables), and runs value-log GC.
//
// Byte accounting (for the buffer limit) counts value bytes of buffered
// records and of dead letters, and is recomputed on Open by a key-only scan.
// Dead letters leave only when an operator deletes them (DeleteDeadLetters)
// or replays them (ReplayDeadLetters: back to the tail of the queue under new
// keys, with their ID, kind, receive time and body; each dead letter's delete
// and its record's insert share one transaction).
//
// This package must not import net/http, fasthttp, pgx or client-go: it
// knows nothing of the network.
package queue
