// Package testport hands tests loopback addresses for the child processes
// they start. Listening on port 0 and closing the listener is not enough:
// the kernel may give the freed port to an outgoing connection (it comes
// from the ephemeral range) before the child binds it. Ports here come from
// below Linux's ephemeral range, so only another listener can take them.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

const (
	lowest  = 20000
	highest = 32000 // Linux's ephemeral range starts at 32768
)

// Addr returns a free 127.0.0.1:port outside the ephemeral range.
func Addr(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", lowest+rand.IntN(highest-lowest))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatal("testport: no free port between 20000 and 32000")
	return ""
}
