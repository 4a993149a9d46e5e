// Package patroni starts a throwaway high-availability PostgreSQL for tests
// and the chaos run: one etcd member and two PostgreSQL 15 nodes managed by
// Patroni, in a temporary directory, on free ports, with synchronous
// replication (synchronous_mode and synchronous_mode_strict, so that a commit
// is acknowledged only once the standby has it) and pg_rewind, and with
// timings short enough that a failover takes seconds. It finds the primary
// and waits for health through Patroni's REST API, kills a node as a machine
// dying would (Patroni and its postmaster together, SIGKILL), brings it back,
// and tears everything down.
//
// The packages come from Debian (scripts/provision-ha.sh installs them;
// Provision runs it). PostgreSQL refuses to run as root, so when the caller
// is root, etcd and Patroni run as the postgres user.
//
// It is test infrastructure: nothing that ships imports it, and it imports no
// package of this module but internal/tstest/freeport and harness.
package patroni
