// Package embedpipe drains the embedding backlog: a few workers lease
// backlog entries from the audit database (storage.DB.ClaimOutbox: FOR UPDATE
// SKIP LOCKED in a short transaction, so workers and replicas never collide,
// and no transaction stays open while embedding), build each audit's
// document (embed.Document), look up which content hashes are stored
// already, embed only the new documents (embed.Embedder), write the new
// vectors and every audit's link in one transaction on the vector database
// (storage.VectorDB.Write: binary COPY), and only then clear the entries.
//
// A crash anywhere before the clear leaves the entries in the backlog; once
// their lease ends (BatchTimeout + 10 s) the next claim redoes them and the
// idempotent write stores nothing twice. When the vector database (or the
// embedder) is down, workers release their claims and back off
// (exponentially, with jitter, up to MaxBackoff: internal/backoff): the
// backlog grows, and drains once it is back.
//
// It imports storage and central/embed; it must not import the HTTP edge
// (central) or the agent.
package embedpipe
