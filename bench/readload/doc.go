// Package readload is the read API's performance check on a large table
// (issue 13: 10 million rows), run by hand, not by `go test`: Load migrates
// a database and COPYs realistic audits into it (remediations of 3 to 6
// audits from the spec's four writers, skewed field values with rare ones,
// event times over 90 days, loaded in time order as a live system stores
// them, into monthly partitions laid out as a live system has them, with
// every row's key in audit_ids), then ANALYZEs; Measure times the read API on it: timelines, a page
// of 100 under each single filter, and the export's rate and the exporting
// process's memory, either through package storage in this process
// (ViaStorage) or end to end through the real central binary's HTTP API
// (ViaCentral), the same reads of the same values either way.
//
// Command bench/cmd/readload runs it. It imports storage (the code under
// test), export (to verify the central's export), wire, bench/loadgen for
// the writers' names and workspace, and the test harness to build and start
// the central; it must not import agent, central, bench or chaos.
package readload
