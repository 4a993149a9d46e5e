package harness_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
)

// childEnv makes this test binary act as the child process of a test: a
// small server in one of the modes of child.
const childEnv = "HARNESS_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		child(mode)
		return
	}
	harness.Main(m)
}

// child serves /readyz on CHILD_ADDR: 503 for its first 200 ms, then 200.
// Modes: "serve" exits 0 on SIGTERM; "stubborn" ignores SIGTERM; "crash"
// exits 3 at once; "chatty" writes 3 MiB of output before serving.
func child(mode string) {
	fmt.Fprintln(os.Stderr, "child starting in mode", mode)
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "child: cannot open the data directory")
		os.Exit(3)
	case "chatty":
		line := strings.Repeat("x", 1023) + "\n"
		for range 3 << 10 {
			fmt.Print(line)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	began := time.Now()
	go func() {
		_ = http.ListenAndServe(os.Getenv("CHILD_ADDR"), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if time.Since(began) < 200*time.Millisecond {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
	}()
	for range sigs {
		if mode != "stubborn" {
			fmt.Fprintln(os.Stderr, "child: terminated")
			os.Exit(0)
		}
	}
}

func command(t *testing.T, mode string) (harness.Command, string) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	addr := freeport.Addr(t)
	return harness.Command{Name: "child-" + mode, Path: exe, Env: []string{childEnv + "=" + mode, "CHILD_ADDR=" + addr},
		Ready: "http://" + addr + "/readyz", ReadyWithin: 10 * time.Second}, addr
}

func TestStart_WaitsUntilReadyAndStopsOnSIGTERM(t *testing.T) {
	c, addr := command(t, "serve")
	p, err := harness.Start(context.Background(), c)
	require.NoError(t, err)
	resp, err := http.Get("http://" + addr + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "ready when Start returns")
	assert.False(t, p.Exited())
	assert.Positive(t, p.Pid())

	require.NoError(t, p.Stop(syscall.SIGTERM, 10*time.Second), "a clean exit on SIGTERM")
	assert.True(t, p.Exited())
	assert.Contains(t, p.Logs(), "child: terminated", "stderr is captured")
	assert.ErrorContains(t, p.Stop(syscall.SIGTERM, time.Second), "had already exited")
	assert.ErrorContains(t, p.Kill(), "had already exited")
}

func TestStop_KillsAProcessThatIgnoresTheSignalAfterTheGrace(t *testing.T) {
	c, _ := command(t, "stubborn")
	p, err := harness.Start(context.Background(), c)
	require.NoError(t, err)
	began := time.Now()
	err = p.Stop(syscall.SIGTERM, 300*time.Millisecond)
	assert.ErrorContains(t, err, "killed")
	assert.GreaterOrEqual(t, time.Since(began), 300*time.Millisecond)
	assert.True(t, p.Exited())
}

func TestStart_ReportsTheOutputOfAProcessThatExitsBeforeItIsReady(t *testing.T) {
	c, _ := command(t, "crash")
	began := time.Now()
	_, err := harness.Start(context.Background(), c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "child-crash not ready at http://")
	assert.Contains(t, err.Error(), "cannot open the data directory")
	assert.Less(t, time.Since(began), 5*time.Second, "an exit ends the wait at once")
}

func TestStart_GivesUpWhenTheContextEnds(t *testing.T) {
	c, _ := command(t, "serve") // answers 503 for longer than ctx lasts
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := harness.Start(ctx, c)
	require.ErrorContains(t, err, "not ready")
}

func TestStart_KeepsABoundedStartOfTheOutput(t *testing.T) {
	c, _ := command(t, "chatty")
	c.LogLimit = 64 << 10
	p, err := harness.Start(context.Background(), c)
	require.NoError(t, err)
	defer p.Kill()
	logs := p.Logs()
	assert.Len(t, logs, 64<<10)
	assert.True(t, strings.HasPrefix(logs, "child starting in mode chatty"), "the start is kept")
}

func TestStartTB_KillsTheProcessWhenTheTestEnds(t *testing.T) {
	var p *harness.Process
	t.Run("child", func(t *testing.T) {
		c, _ := command(t, "stubborn")
		p = harness.StartTB(t, c)
		assert.False(t, p.Exited())
	})
	assert.True(t, p.Exited(), "killed by the subtest's cleanup")
}

func TestStopAll_StopsEveryProcessAtOnce(t *testing.T) {
	var ps []*harness.Process
	for range 3 {
		c, _ := command(t, "serve")
		ps = append(ps, harness.StartTB(t, c))
	}
	harness.StopAll(syscall.SIGTERM, 10*time.Second, append(ps, nil)...)
	for _, p := range ps {
		assert.True(t, p.Exited())
	}
}
