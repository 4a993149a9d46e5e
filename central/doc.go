// Package central is the audit writer every agent and direct writer talks to.
//
// It owns the HTTP edge (fasthttp): routing, the request chain
// authenticate → authorize → validate → rate-limit → persist, the mapping
// of errors to the spec's status codes and bodies, request-body limits and
// decompression, health endpoints and metrics. Authentication, authorization
// and rate limiting live in the sub-packages auth, authz and ratelimit;
// records and their validation in wire; PostgreSQL in storage.
//
// The central keeps no state of its own: every replica is the same, and
// PostgreSQL is the system of record. It must not import the agent.
package central
