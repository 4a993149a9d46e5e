package faultproxy_test

import (
	"bufio"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/faultproxy"
)

// recorder is an echo server that remembers every complete line it got.
type recorder struct {
	mu    sync.Mutex
	lines []string
	bytes int
}

func (r *recorder) got() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...), r.bytes
}

func recordingServer(t *testing.T) (string, *recorder) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	rec := &recorder{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					rec.mu.Lock()
					rec.bytes += len(line)
					if err == nil {
						rec.lines = append(rec.lines, line)
					}
					rec.mu.Unlock()
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), rec
}

func TestProxy_DropResponseLetsTheTargetAnswerButTheClientNeverHearsIt(t *testing.T) {
	target, rec := recordingServer(t)
	p, err := faultproxy.Start(target)
	require.NoError(t, err)
	defer p.Close()
	p.SetFault(faultproxy.DropResponse)

	conn, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = roundTrip(conn, "committed")
	require.Error(t, err, "the answer must not arrive")
	require.Eventually(t, func() bool { l, _ := rec.got(); return len(l) == 1 }, 2*time.Second, 10*time.Millisecond)
	assert.EqualValues(t, 1, p.Injected(faultproxy.DropResponse))

	p.SetFault(faultproxy.None)
	c2, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c2.Close()
	got, err := roundTrip(c2, "again")
	require.NoError(t, err)
	assert.Equal(t, "again\n", got)
}

func TestProxy_ResetRequestCutsTheRequestHalfway(t *testing.T) {
	target, rec := recordingServer(t)
	p, err := faultproxy.Start(target)
	require.NoError(t, err)
	defer p.Close()
	p.SetFault(faultproxy.ResetRequest)

	conn, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = roundTrip(conn, "a request that is cut off")
	require.Error(t, err)
	time.Sleep(100 * time.Millisecond)
	lines, n := rec.got()
	assert.Empty(t, lines, "the target never saw a complete request")
	assert.Less(t, n, len("a request that is cut off\n"))
	assert.EqualValues(t, 1, p.Injected(faultproxy.ResetRequest))
}

func TestProxy_StallHoldsBytesUntilTheFaultIsCleared(t *testing.T) {
	target, _ := recordingServer(t)
	p, err := faultproxy.Start(target)
	require.NoError(t, err)
	defer p.Close()
	p.SetFault(faultproxy.Stall)

	conn, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("slow\n"))
	require.NoError(t, err)
	r := bufio.NewReader(conn)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	_, err = r.ReadString('\n')
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "nothing flows while stalled")
	assert.Positive(t, p.Injected(faultproxy.Stall))

	p.SetFault(faultproxy.None)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(2*time.Second)))
	got, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "slow\n", got)
}

func TestProxy_CloseReleasesStalledConnections(t *testing.T) {
	target, _ := recordingServer(t)
	p, err := faultproxy.Start(target)
	require.NoError(t, err)
	p.SetFault(faultproxy.Stall)
	conn, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("held\n"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Injected(faultproxy.Stall) > 0 }, 2*time.Second, 10*time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a stalled connection")
	}
}
