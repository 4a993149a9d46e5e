package main_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubernaut/datastorage/internal/freeport"
	"github.com/kubernaut/datastorage/internal/syncbuf"
	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	buildDir  string
	built     builtBinaries
	buildErr  error
)

type builtBinaries struct{ agent, central string }

// TestMain removes the binaries built for this test binary.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaries builds cmd/agent and cmd/central once per test binary run, in
// one go build so that they share the compile work.
func binaries(tb testing.TB) builtBinaries {
	tb.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "agent-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", buildDir+string(os.PathSeparator),
			"github.com/kubernaut/datastorage/cmd/agent", "github.com/kubernaut/datastorage/cmd/central").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built = builtBinaries{agent: filepath.Join(buildDir, "agent"), central: filepath.Join(buildDir, "central")}
	})
	require.NoError(tb, buildErr)
	return built
}

type child struct {
	cmd     *exec.Cmd
	listen  string
	metrics string
	stderr  *syncbuf.Buffer
}

// startAgent runs the binary and waits for /readyz.
func startAgent(tb testing.TB, dataDir, centralURL string, extra ...string) *child {
	tb.Helper()
	c := &child{listen: freeport.Addr(tb), metrics: freeport.Addr(tb), stderr: &syncbuf.Buffer{}}
	args := append([]string{"--listen", c.listen, "--metrics-listen", c.metrics, "--central-url", centralURL,
		"--data-dir", dataDir, "--linger", "5ms", "--log-level", "warn", "--insecure"}, extra...)
	c.cmd = exec.Command(binaries(tb).agent, args...)
	c.cmd.Stderr = c.stderr
	require.NoError(tb, c.cmd.Start())
	tb.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := http.Get("http://" + c.listen + "/readyz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return c
			}
		}
		require.True(tb, time.Now().Before(deadline), "agent not ready: %s", c.stderr)
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *child) kill(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, c.cmd.Process.Signal(syscall.SIGKILL))
	_ = c.cmd.Wait()
}

func (c *child) term(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, c.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(tb, c.cmd.Wait(), "agent exit: %s", c.stderr)
}

// procStatus reads a "VmHWM:"-style field of the child, in KiB.
func (c *child) procStatus(tb testing.TB, field string) int64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
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
