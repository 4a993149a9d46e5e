// Package freeport hands out loopback addresses for the child processes that
// tests and the bench start. Listening on port 0 and closing the listener is
// not enough: the kernel may give the freed port to an outgoing connection
// (it comes from the ephemeral range) before the child binds it. Ports here
// come from below Linux's ephemeral range, so only another listener can take
// them.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

const (
	lowest  = 20000
	highest = 32000 // Linux's ephemeral range starts at 32768
)

// Free returns a free 127.0.0.1:port outside the ephemeral range.
func Free() (string, error) {
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", lowest+rand.IntN(highest-lowest))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr, nil
	}
	return "", errors.New("freeport: no free port between 20000 and 32000")
}

// Addr is Free for tests: it fails the test instead of returning an error.
func Addr(t testing.TB) string {
	t.Helper()
	addr, err := Free()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
