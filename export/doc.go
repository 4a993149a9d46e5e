// Package export writes and verifies the signed audit export: the file that
// GET /api/v1/audit/export streams and `central verify-export` checks
// offline. The signature covers every exported line, so a verifier with the
// public key alone can tell whether a file is exactly what the central
// exported: complete, unaltered, in order, and signed by that key.
//
// It owns the format (this comment is its definition), the Writer that
// writes it in constant memory, Verify, which reads it in constant memory,
// and the signing key's files (KeyFile, reloaded when rotated, and
// LoadPublicKey). It uses the standard library's crypto only. It imports
// wire for the record type and nothing else of this module: no storage, no
// HTTP, no logging; the central's handler and the command wire it up.
//
// # Format kubernaut-audit-export/v1
//
// An export is UTF-8 text of lines, each ended by one LF (0x0A). Lines 1 to
// N are record lines; line N+1, the last, is the trailer line. N may be 0.
//
// A record line is the JSON of one audit record (wire.AuditEntry) exactly as
// the query API encodes it (github.com/go-json-experiment/json with default
// options: compact, no whitespace, members in the order kind, auditID,
// serviceAccount, occurredAt, receivedAt, then remediation or workflow;
// times in RFC 3339 with up to nanoseconds), followed by LF. A record line
// therefore begins with the 8 bytes {"kind": and never contains a raw LF or
// ends with CR. It is a record when it is a JSON object with only
// wire.AuditEntry's members, kind "remediation" with a remediation object
// and no workflow (or "workflow" with a workflow object and no
// remediation), a non-empty auditID and serviceAccount, and an occurredAt.
// The digest is over the lines' bytes as they are: a verifier parses them
// only to check that they are records and the order rules below. Verify
// refuses a line longer than MaxLineBytes (8 MiB; a record is at most a few
// hundred KiB).
//
// Records come in this order: the records of one kind form one contiguous
// run; the runs come in the order of the trailer's kinds (a kind with no
// records has no run); within a run, occurredAt never decreases (storage
// exports each kind by event time, writer, ID). Every occurredAt t satisfies
// since <= t < until (no lower bound when since is absent). The same writer
// and audit ID never appear on two consecutive lines.
//
// The trailer line is, byte for byte:
//
//	{"trailer":T,"signature":"S"}LF
//
// that is, the 11 bytes {"trailer":, then T, then the 14 bytes
// ,"signature":", then S, then the 2 bytes "} and LF. T is a compact JSON
// object; S is the standard base64 (RFC 4648 §4, with padding: 88
// characters) of the 64-byte Ed25519 signature (RFC 8032, pure Ed25519, no
// context or prehash) of the exact bytes of T as they appear in the line.
// Since S holds no quote or comma, T is everything between the first 11
// bytes and the last occurrence of ,"signature":" in the line; it is never
// re-encoded before checking the signature.
//
// T's members, in this order (a verifier must reject duplicate or unknown
// members: they could make two parsers read one signed text differently):
//
//	format      "kubernaut-audit-export/v1"
//	records     N, the number of record lines (a JSON integer)
//	digest      "sha256:" + the 64 lowercase hex digits of the SHA-256 of
//	            every byte of the file before the trailer line: all record
//	            lines, LFs included, in file order (for N = 0, the SHA-256
//	            of nothing, e3b0c442…b855)
//	kinds       the kinds exported, in the order of their runs: an array of
//	            "remediation" and/or "workflow"
//	since       RFC 3339 time, inclusive; absent when the export starts at
//	            the first record ever stored
//	until       RFC 3339 time, exclusive
//	exportedAt  RFC 3339 time the export was made
//	exportedBy  the service account that asked for it, "namespace/name"
//	keyID       16 lowercase hex digits: the first 8 bytes of the SHA-256 of
//	            the signing public key's PKIX SubjectPublicKeyInfo DER. For
//	            Ed25519 that DER is the 12 bytes 302a300506032b6570032100
//	            followed by the 32 key bytes; it is what
//	            `openssl pkey -pubin -in PUB.pem -outform DER` prints.
//
// An export that fails after it began (its HTTP status is long sent: a
// database error, a shutdown) ends, instead of the trailer, with one line
// that is an error body, {"error":"…","message":"…","correlation_id":"…"},
// saying why; Verify reports it as truncated, with that reason.
//
// # Format kubernaut-audit-export/v2: with the ledger's proof
//
// A central that signs ledger checkpoints adds, after the record lines and
// before the trailer, P proof lines: each a JSON object {"proof":…}, so
// beginning with the 9 bytes {"proof":, ended by LF. What they hold is the
// ledger's (package ledger, export.go: the chain from an entry before the
// records' first to a checkpoint, the entries that stored the records
// whole); this format only places, counts and signs them. The trailer's
// format is then "kubernaut-audit-export/v2" and it has, after records, the
// member
//
//	proofs      P, the number of proof lines (a JSON integer, at least 1)
//
// and its digest covers every line before the trailer, proof lines
// included. No record line may follow a proof line. A v1 trailer has no
// proofs member and its file no proof line. Verify checks a v2 file as a v1
// one, and that each proof line is JSON and their count is proofs;
// ledger.VerifyExportProof checks what they prove (`central verify-export
// --checkpoint-public-key`).
//
// A verifier may accept a trailer line that lacks its final LF (a file cut
// exactly there lost nothing signed); Verify does. Nothing may follow the
// trailer line.
//
// # Verifying
//
// Verify (and any verifier) checks, in this order, and stops at the first
// failure:
//
//  1. Each line before the trailer line is complete (ends with LF) and is a
//     record (ErrMalformed names the first line that is not JSON, or not an
//     audit record; ErrTruncated a line cut short; ErrAltered a line ending
//     in CR LF: the file's line endings were converted).
//  2. A trailer line exists (else ErrTruncated: "truncated after line N",
//     or an empty file), has the layout above and a trailer of this format
//     (ErrMalformed), and nothing follows it (ErrAltered).
//  3. keyID equals the given public key's (else ErrWrongKey, naming both).
//  4. S verifies over T with the public key (else ErrAltered: the trailer
//     was altered, or signed by another key under this key's ID).
//  5. records equals the number of record lines, and digest equals the
//     SHA-256 of them (else ErrAltered: lines altered, inserted, removed or
//     reordered).
//  6. The records keep the order rules and the trailer's kinds and range
//     (else ErrInconsistent: the signer, not the file's custody, is at
//     fault).
//
// Where a problem shows on one line, the error names it: the first line
// that is not JSON or not a record, a line cut short, lines after the
// trailer, CR LF line endings. When the count or digest does not match,
// the order rules often point at the culprit (a line moved or copied
// breaks the event-time order or repeats its neighbour) and the error adds
// "the first sign of it: line L …". A record line altered into another
// valid record in order is found by the digest only, which cannot say
// which line: the format holds one digest for the whole file, not one per
// line or block.
//
// Verify reads gzip input too (told by the magic bytes 1f 8b): a file saved
// with the HTTP Content-Encoding still on it verifies.
//
// # Keys
//
//	openssl genpkey -algorithm ed25519 -out export-key.pem          # the central signs with it
//	openssl pkey -in export-key.pem -pubout -out export-key.pub.pem # verifiers check with it
//
// # Verifying with standard tools
//
// The format can be checked without this package (OpenSSL 3):
//
//	head -n -1 export.ndjson | sha256sum       # = digest, after "sha256:"
//	head -n -1 export.ndjson | wc -l           # = records
//	tail -n 1 export.ndjson | sed -E 's/^\{"trailer":(.*),"signature":"[^"]*"\}$/\1/' | tr -d '\n' > trailer.json
//	tail -n 1 export.ndjson | sed -E 's/.*,"signature":"([^"]*)"\}$/\1/' | base64 -d > signature.bin
//	openssl pkeyutl -verify -pubin -inkey export-key.pub.pem -rawin -in trailer.json -sigfile signature.bin
package export
