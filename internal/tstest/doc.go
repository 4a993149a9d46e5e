// Package tstest holds, in its subpackages, the module's test
// infrastructure: throwaway databases (pgtest), the child-process harness
// (harness), certificates (testcerts), Secret volumes that rotate like the
// kubelet's (secretvol), the hostile request table (hostile),
// a fake Kubernetes API server for TokenReview and SubjectAccessReview (fakekube),
// a fault-injecting TCP proxy (faultproxy), free ports (freeport), a
// clock moved by hand (testclock), a shared buffer (syncbuf) and a throwaway
// Patroni cluster (patroni). Tests use them, and so do the bench and chaos
// programs, which are not shipped.
//
// No package that ships imports anything under internal/tstest outside its
// tests: neither what the central and agent binaries link (cmd, agent,
// central, storage, wire) nor the client library; a test here checks it.
package tstest
