// Package readload is the read API's performance check on a large table
// (issue 13: 10 million rows), run by hand, not by `go test`: Load migrates
// a database and COPYs realistic audits into it (remediations of 3 to 6
// audits from the spec's four writers, skewed field values with rare ones,
// event times over 90 days, loaded in time order as a live system stores
// them), then ANALYZEs; Measure times the read API on it through package
// storage: timelines, a page of 100 under each single filter, and the
// export's rate and memory.
//
// Command bench/cmd/readload runs it. It imports storage (the code under
// test), wire, and bench/loadgen for the writers' names; it must not import
// agent, central, bench or chaos.
package readload
