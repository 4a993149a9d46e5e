// Package chaos is the fault-injection run (`make chaos`, command
// chaos/cmd/chaos): a throwaway PostgreSQL (or a cluster it does not own), the
// real central and K agents as child processes, each agent behind its own
// fault-injecting TCP proxy to the central, steady load from package loadgen
// through the agents, and faults injected at random moments: kill -9 of an
// agent or the central, a SIGTERM restart, a database outage, a dropped
// acknowledgement, a reset or stalled request, a full disk under an agent
// and corrupt entries in an agent's buffer. It measures each fault's
// recovery and verifies that every acknowledged record is in PostgreSQL
// exactly once.
//
// It drives the binaries from the outside, through internal/tstest/harness and
// internal/tstest/faultproxy; it shares the load, the verification and the
// throwaway cluster with package bench through bench/loadgen, and must not
// import agent or central internals, or bench. It writes corrupt entries with
// Badger directly, knowing the agent's key layout.
package chaos
