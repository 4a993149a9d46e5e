package main_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
)

// TestMain removes the binaries built for this test binary.
func TestMain(m *testing.M) { harness.Main(m) }

// child is an agent running as a child process.
type child struct {
	*harness.Process
	listen  string
	metrics string
}

// startAgent runs the binary and waits for /readyz.
func startAgent(tb testing.TB, dataDir, centralURL string, extra ...string) *child {
	tb.Helper()
	c := &child{listen: freeport.Addr(tb), metrics: freeport.Addr(tb)}
	args := append([]string{"--listen", c.listen, "--metrics-listen", c.metrics, "--central-url", centralURL,
		"--data-dir", dataDir, "--linger", "5ms", "--log-level", "warn", "--insecure"}, extra...)
	c.Process = harness.StartTB(tb, harness.Command{Name: "agent", Path: harness.BuildOnce(tb).Agent, Args: args,
		Ready: "http://" + c.listen + "/readyz", ReadyWithin: 15 * time.Second})
	return c
}

func (c *child) kill(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, c.Kill())
}

func (c *child) term(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, c.Stop(syscall.SIGTERM, time.Minute), "agent exit: %s", c.Logs())
}

// procStatus reads a "VmHWM:"-style field of the child, in KiB.
func (c *child) procStatus(tb testing.TB, field string) int64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.Pid()))
	require.NoError(tb, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(tb, err)
			return n
		}
	}
	tb.Fatalf("no %s in /proc status", field)
	return 0
}

// metric reads one sample from the child's /metrics.
func (c *child) metric(tb testing.TB, name string) float64 {
	tb.Helper()
	r, err := http.Get("http://" + c.metrics + "/metrics")
	require.NoError(tb, err)
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			require.NoError(tb, err)
			return v
		}
	}
	return 0
}
