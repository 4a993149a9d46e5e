// Package ledger is the tamper evidence of the audit store: what is hashed,
// how, and how a trail is checked. It touches no database; storage writes
// and reads the ledger, and streams what it reads into a Verifier.
//
// Every transaction that stores audit rows also stores one ledger entry
// (storage/ledger.go): the writer, the time, and for each row it stored its
// ID, its event time and its leaf, the SHA-256 of the row's canonical bytes
// (leaf.go). The entry's digest covers all of that (entry.go). The rows carry
// the entry's batch number, so that each row finds its entry.
//
// Entries are written pending, with no place in the chain, and so without
// any lock shared between writers. A sequencer (storage.DB.SequenceLedger,
// run by every central replica) gives the committed pending entries the next
// sequence numbers, gapless, and their chain hashes:
//
//	hash(n) = SHA-256("datastorage-ledger-v1\x00" || hash(n-1) || n || digest(n))
//
// from the genesis entry, number 0, whose hash is 32 zero bytes. Writers and
// replicas serialize only on that step, one short transaction for all the
// entries that committed since the last.
//
// A chain proves nothing to someone who can rewrite all of it, which a
// database administrator can: recompute every hash after a change. Signed
// checkpoints (checkpoint.go) are what make a rewrite visible: the head's
// number and hash, signed with a key the database never holds, kept where
// the database administrator cannot reach. The verifier (verify.go) recomputes
// the chain and every row's leaf and holds the result against them.
//
// Retention drops whole partitions; the drop writes an anchor entry (a
// Prune) into the chain, so that the rows of the pruned range are known to
// be gone on purpose, and a row found in that range later is reported.
package ledger
