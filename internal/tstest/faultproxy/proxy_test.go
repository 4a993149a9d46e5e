package faultproxy_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/faultproxy"
)

func roundTrip(conn net.Conn, msg string) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}

func TestProxy_ForwardsThenResetsWhileDownThenForwardsAgain(t *testing.T) {
	addr, _ := recordingServer(t)
	p, err := faultproxy.Start(addr)
	require.NoError(t, err)
	defer p.Close()

	conn, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	got, err := roundTrip(conn, "hello")
	require.NoError(t, err)
	assert.Equal(t, "hello\n", got)

	p.SetDown(true)
	_, err = roundTrip(conn, "lost")
	assert.Error(t, err, "an open connection is reset when the target goes down")
	conn.Close()
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		_, err = roundTrip(c, "refused")
		assert.Error(t, err, "a new connection is closed at once while down")
		c.Close()
	}

	p.SetDown(false)
	conn, err = net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer conn.Close()
	got, err = roundTrip(conn, "back")
	require.NoError(t, err)
	assert.Equal(t, "back\n", got)
}
