// Package harness runs the module's binaries as child processes, for the
// tests that drive the real central and agent and for the bench and chaos
// programs: it builds cmd/central and cmd/agent with one go build (once per
// test binary, in a directory removed at the end), starts a process with its
// arguments and environment, waits until a URL answers 200 (reporting the
// process's output when it does not), captures stdout and stderr in one
// bounded buffer that may be read while the process writes, and stops it:
// a signal, a grace period, then SIGKILL.
//
// Each function comes in the form a program needs (an error) and, where a
// test uses it, the form a test needs (testing.TB: it fails the test and
// registers the cleanup).
//
// It is test infrastructure: no package that ships (cmd, agent, central,
// storage, wire, client) may import it outside its tests. It imports no
// package of this module but internal/tstest/syncbuf.
package harness
