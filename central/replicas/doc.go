// Package replicas counts the central's live replicas, so that each enforces
// its share of the per-service-account rate limits (ratelimit.Limiter's
// SetShare) and the configured limits hold across all of them, as Loki's
// distributors do with the global ingestion-rate strategy.
//
// The count comes from the database every replica already shares, which
// works the same in and out of Kubernetes and needs no API access: each
// serving replica renews its row in a membership table every heartbeat and
// counts the rows renewed within a TTL (storage.DB.ReplicaHeartbeat); it
// deletes its row when it stops in order. When the database cannot be
// reached the last count stands. A static count (--replicas) replaces the
// discovery.
//
// It owns the heartbeat loop, its Config and the gauge
// datastorage_central_replicas. The SQL is package storage's; what a count
// means for the limits is the caller's (OnChange). It must not import
// fasthttp, auth or ratelimit.
package replicas
