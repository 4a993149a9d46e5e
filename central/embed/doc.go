// Package embed turns audit records into 768-dimensional embeddings.
//
// It owns the Embedder interface (batch calls), the ONE function that builds
// the text representing a record (Document), the content hash used to store
// identical documents once (ContentHash), and two providers: Hash, the
// built-in deterministic feature-hashing embedder (the default), and OpenAI,
// a client of any OpenAI-compatible /v1/embeddings endpoint (Ollama, vLLM,
// TEI).
//
// It imports wire for the record types and nothing of storage, the HTTP edge
// or the agent: it does no database I/O.
package embed
