// Package export is the format of a signed audit export: what the central
// writes for GET /api/v1/audit/export and what `central verify-export` and
// the Go client check. It knows nothing of HTTP or PostgreSQL.
//
// An export is UTF-8 text, one JSON value per line, each line ending in
// "\n" (NDJSON):
//
//   - every line but the last is one record: the JSON of a wire.AuditEntry,
//     exactly as the query API encodes it;
//
//   - the last line is the signed trailer:
//
//     {"trailer":{…},"signature":"<base64>"}
//
// The trailer member holds: format ("kubernaut-audit-export/v1"), records
// (the number of record lines), digest ("sha256:" and the lowercase hex
// SHA-256 of every record line, newline included, concatenated in file
// order), kinds, since (omitted when the range is open at its start),
// until, exportedAt, exportedBy (the service account that asked) and keyID
// (the first 16 hex digits of the SHA-256 of the signing key's public key
// in PKIX DER). signature is the standard base64 of the Ed25519 signature
// (RFC 8032) over the exact bytes of the trailer member's value, as they
// appear in the line: a verifier in any language cuts them out, checks the
// signature, then decodes them, without canonicalising anything.
//
// So the signature covers every record (through the digest and the count),
// the range and who exported: a line changed, added, removed or moved, a
// file cut short, or a trailer edited or moved to another file all fail
// verification, and Verify says which. An export that fails after it began
// (the database, a shutdown) cannot change its HTTP status any more: it
// ends with a line that is neither a record nor a trailer, an error body
// ({"error":…,"message":…}), and no trailer.
//
// Keys are PEM files as openssl writes them: the private key PKCS#8
// ("PRIVATE KEY", `openssl genpkey -algorithm ed25519`), the public key
// PKIX ("PUBLIC KEY", `openssl pkey -pubout`).
package export
