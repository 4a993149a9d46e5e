// Package chaos is the fault-injection run (`make chaos`, command
// chaos/cmd/chaos): a throwaway PostgreSQL (or a cluster it does not own), the
// real central and K agents as child processes, each agent behind its own
// fault-injecting TCP proxy to the central, steady load from package loadgen
// through the agents, and faults injected at random moments: kill -9 of an
// agent or the central, a SIGTERM restart, a database outage, a dropped
// acknowledgement, a reset or stalled request, a full disk under an agent,
// corrupt entries in an agent's buffer, and committed records resent in
// another partition. It measures each fault's recovery and verifies that
// every acknowledged record is in PostgreSQL exactly once.
//
// The audit tables are partitioned by day around now (partitions.go): after
// `central migrate`, the run replaces migration 0007's history partition by
// one ending two days ago and a partition per day up to the end of today;
// the central creates the days ahead itself (--partition-period day
// --partitions-ahead 2), and the load dates its records' event times up to
// 48 h back, across midnights. The resend fault (resend.go) sends committed
// records again, straight to the central's batch endpoint as the service
// account their agent forwards as, with their ID and kind but without their
// event time and with a receivedAt in another day's partition (a few as they
// were, for contrast): each must be answered duplicate and stay one
// unchanged row in its partition. The run fails unless the rows are in at
// least two partitions and the central created partitions beyond tomorrow.
//
// It drives the binaries from the outside, through internal/tstest/harness and
// internal/tstest/faultproxy; it shares the load, the verification and the
// throwaway cluster with package bench through bench/loadgen, and must not
// import agent or central internals, or bench. It writes corrupt entries with
// Badger directly, knowing the agent's key layout.
package chaos
