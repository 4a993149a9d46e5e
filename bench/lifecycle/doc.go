// Package lifecycle is the time partitions' check at scale (issue 17: 10
// million rows over 12 months), run by hand, not by `go test`: what a
// partitioned audit trail costs over its life. Run, on a cluster where it
// may create databases (and drops them after):
//
//   - loads Rows realistic audits (bench/readload's data and loader: COPY,
//     every key into audit_ids) spread over Months monthly partitions, the
//     whole months before the current one, and reports the load's rate and
//     the tables' sizes;
//   - measures storage's WriteBatch (realistic batches of the four writers,
//     from a few goroutines, event times now) into an empty partitioned
//     database and into the loaded one, alternated in rounds, the same
//     records into both, and reports each rate and their ratio;
//   - drops the oldest whole month (detach and drop each table's partition,
//     then its keys from audit_ids, each timed) and reports the database's
//     size before and after;
//   - loads the same rows into the plain tables of migration 6, then times
//     storage.Migrate to the partitions while a writer inserts single rows
//     into remediation_audit and records how long each waited, twice: as is,
//     and with the history partition's new key built beforehand by CREATE
//     UNIQUE INDEX CONCURRENTLY, which migration 7 reuses.
//
// Compare its rates as ratios within one run: the machine's load moves
// them. Command bench/cmd/lifecycle runs it.
//
// It imports storage (the code under test), wire, bench/readload (the data,
// the loader and the partition layout) and bench/loadgen (the benchmark
// databases); it must not import agent, central, bench or chaos.
package lifecycle
