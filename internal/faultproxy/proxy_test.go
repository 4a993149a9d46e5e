package faultproxy_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/faultproxy"
)

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
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
	return ln.Addr().String()
}

func roundTrip(conn net.Conn, msg string) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}

func TestProxy_ForwardsThenResetsWhileDownThenForwardsAgain(t *testing.T) {
	p, err := faultproxy.Start(echoServer(t))
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
