// Package bench is the end-to-end benchmark harness of the audit write path.
//
// Run starts everything it needs on this machine (a throwaway PostgreSQL
// with pgvector through scripts/pg-cluster.sh, unless given a cluster; the
// real central and K agents as child processes), drives N concurrent
// controllers through package client, verifies that every acknowledged ID is
// in PostgreSQL exactly once, and tears everything down. Scenarios run in
// one invocation so that their ratios hold on a noisy machine: the physical
// limits (raw COPY, raw vector COPY into an HNSW table, a bare fasthttp 201
// handler), the spec's naive design implemented in-process, the direct path
// (controllers → central) and the sidecar path (controllers → agents →
// central), at peak and at half the peak rate. Each path at peak is followed
// by its -noledger twin: the same load on a central started with
// --ledger=false, so that the pair prices the tamper-evident ledger.
//
// It owns only benchmark code: it drives the binaries from the outside
// through internal/tstest/harness and imports client and wire (the schema comes
// from `central migrate`); the load generator, the exactly-once verification
// and the throwaway cluster are bench/loadgen's, shared with package chaos.
// It must not import agent or central internals, or chaos.
package bench
