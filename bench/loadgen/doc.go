// Package loadgen is what the benchmark (package bench) and the
// fault-injection run (package chaos) share: the spec's four writers with
// their credentials and realistic records, N closed-loop controllers that
// write them through package client while a Run keeps the ledger of every
// attempted and acknowledged ID, the exactly-once verification of that
// ledger against PostgreSQL, the throwaway PostgreSQL they run against
// (scripts/pg-cluster.sh, a database per load), and the workspace a run
// starts from (the module's root, a temporary directory, the binaries built
// through internal/tstest/harness).
//
// Like bench and chaos it drives the binaries from the outside: it imports
// client and wire, and must not import agent or central internals, bench or
// chaos.
package loadgen
