// Package ratelimit limits how many records each caller may write: a token
// bucket (golang.org/x/time/rate) per key, counted in records, so a batch of
// 500 costs 500. The buckets live in an LRU bounded by MaxKeys, and every call
// takes the time as an argument, so tests need no clock.
//
// A limit may be shared: the central's replicas each enforce 1/N of it
// (SetShare, N from central/replicas), so that the configured limit holds
// for a service account across all of them, as Loki's distributors do with
// the global ingestion-rate strategy. A request of up to the whole burst
// still passes on a share's smaller bucket: when that bucket is full, going
// into debt for the rest.
//
// It owns the limiter, its Config and ErrTooLarge. It knows nothing of HTTP,
// identities or records: the edge passes the caller's key (auth.Identity.Key)
// and the record count, and turns a refusal into 429 with Retry-After, and
// ErrTooLarge into 413. It must not import fasthttp, auth or storage.
package ratelimit
