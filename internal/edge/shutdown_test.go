package edge_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/internal/tstest/syncbuf"
)

// serve runs srv on a loopback port until the test ends.
func serve(t *testing.T, srv *fasthttp.Server) (addr string, served <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String(), done
}

// A client that dialled ahead of need holds a connection that has sent
// nothing: fasthttp counts it busy for five seconds, so a short grace ends
// with it open. That is a warning, not a failed shutdown.
func TestShutdown_AnIdleNewConnectionIsNoError(t *testing.T) {
	var logs syncbuf.Buffer
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {}}
	addr, served := serve(t, srv)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.Eventually(t, func() bool { return srv.GetOpenConnectionsCount() == 1 }, 5*time.Second, 5*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	require.NoError(t, edge.Shutdown(ctx, srv, zerolog.New(&logs)))
	assert.Contains(t, logs.String(), "shutdown grace over with connections open")
	select {
	case err := <-served:
		require.NoError(t, err, "Serve returns once the listener is closed")
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
}

// A request in flight when shutdown starts is answered within the grace.
func TestShutdown_ARequestInFlightIsAnswered(t *testing.T) {
	started := make(chan struct{})
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		ctx.SetStatusCode(fasthttp.StatusCreated)
	}}
	addr, _ := serve(t, srv)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
	require.NoError(t, err)
	<-started

	var logs syncbuf.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, edge.Shutdown(ctx, srv, zerolog.New(&logs)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Empty(t, logs.String(), "nothing was left open")
}
