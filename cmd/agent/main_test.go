package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/agent/agenttest"
	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/syncbuf"
)

func TestHelp_ListsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	var stderr bytes.Buffer
	m := Main{Stdout: io.Discard, Stderr: &stderr}
	err := m.Run(context.Background(), []string{"--help"})
	require.True(t, errors.Is(err, flag.ErrHelp), err)
	for name, env := range map[string]string{
		"listen": "AGENT_LISTEN", "metrics-listen": "AGENT_METRICS_LISTEN", "central-url": "AGENT_CENTRAL_URL",
		"central-ca-file": "AGENT_CENTRAL_CA_FILE", "insecure": "AGENT_INSECURE", "token-file": "AGENT_TOKEN_FILE",
		"data-dir": "AGENT_DATA_DIR", "max-buffer-bytes": "AGENT_MAX_BUFFER_BYTES",
		"batch-max-records": "AGENT_BATCH_MAX_RECORDS", "batch-max-bytes": "AGENT_BATCH_MAX_BYTES",
		"linger": "AGENT_LINGER", "shutdown-grace": "AGENT_SHUTDOWN_GRACE", "log-level": "AGENT_LOG_LEVEL",
		"log-format": "AGENT_LOG_FORMAT", "allow-remote-writes": "AGENT_ALLOW_REMOTE_WRITES",
		"access-refresh": "AGENT_ACCESS_REFRESH", "client-cert-file": "AGENT_CLIENT_CERT_FILE",
		"client-key-file": "AGENT_CLIENT_KEY_FILE",
	} {
		// The flag's own line, then its usage line (a bool flag has no type).
		assert.Regexp(t, `(?m)^\s+-`+name+`( \w+)?\n\s+.*\(env `+env+`\)`, stderr.String())
	}
}

func TestRun_RefusesBadConfigurationNamingTheFlagAndVariable(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"missing central", nil, []string{"--data-dir", dir}, "--central-url (or AGENT_CENTRAL_URL) is required"},
		{"missing data dir", nil, []string{"--central-url", "https://central"}, "--data-dir (or AGENT_DATA_DIR) is required"},
		{"bad typed env", map[string]string{"AGENT_MAX_BUFFER_BYTES": "lots"}, []string{"--central-url", "https://c", "--data-dir", dir}, "AGENT_MAX_BUFFER_BYTES"},
		{"bad duration env", map[string]string{"AGENT_LINGER": "soon"}, []string{"--central-url", "https://c", "--data-dir", dir}, "AGENT_LINGER"},
		{"bad log format", nil, []string{"--central-url", "https://c", "--data-dir", dir, "--log-format", "xml"}, "log format"},
		{"listen on all interfaces", nil, []string{"--central-url", "https://c", "--data-dir", dir, "--listen", ":18080"},
			"--listen (or AGENT_LISTEN) :18080 is not a loopback address"},
		{"listen on a pod IP from env", map[string]string{"AGENT_LISTEN": "10.1.2.3:18080"},
			[]string{"--central-url", "https://c", "--data-dir", dir}, "--allow-remote-writes (AGENT_ALLOW_REMOTE_WRITES=true)"},
		{"negative access refresh", nil, []string{"--central-url", "https://c", "--data-dir", dir, "--access-refresh", "-1s"},
			"--access-refresh (or AGENT_ACCESS_REFRESH) must not be negative"},
		{"plain http", nil, []string{"--central-url", "http://central:8080", "--data-dir", dir}, "--insecure"},
		{"plain http from env", map[string]string{"AGENT_CENTRAL_URL": "http://central:8080", "AGENT_DATA_DIR": dir}, nil, "plain http"},
		{"bad CA file", nil, []string{"--central-url", "https://c", "--data-dir", dir, "--listen", freeport.Addr(t),
			"--metrics-listen", "-", "--central-ca-file", filepath.Join(dir, "missing.pem")}, "CA file"},
		{"client cert without key", nil, []string{"--central-url", "https://c", "--data-dir", dir, "--client-cert-file", "tls.crt"},
			"--client-key-file (or AGENT_CLIENT_KEY_FILE) is required with --client-cert-file"},
		{"client key without cert from env", map[string]string{"AGENT_CLIENT_KEY_FILE": "tls.key"},
			[]string{"--central-url", "https://c", "--data-dir", dir}, "--client-cert-file (or AGENT_CLIENT_CERT_FILE) is required"},
		{"client cert over plain http", nil, []string{"--central-url", "http://c", "--insecure", "--data-dir", dir,
			"--client-cert-file", "tls.crt", "--client-key-file", "tls.key"}, "needs an https --central-url"},
		{"unreadable client cert", nil, []string{"--central-url", "https://c", "--data-dir", dir, "--listen", freeport.Addr(t),
			"--metrics-listen", "-", "--client-cert-file", filepath.Join(dir, "missing.crt"), "--client-key-file", filepath.Join(dir, "missing.key")},
			"read client certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m := Main{Stdout: io.Discard, Stderr: io.Discard}
			err := m.Run(ctx, c.args)
			require.Error(t, err, "Run must fail at start, not serve")
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// runAgent runs Main.Run in the background and waits for /readyz; the
// returned function stops it and returns Run's error.
func runAgent(t *testing.T, args ...string) (addr string, stop func() error) {
	t.Helper()
	addr = freeport.Addr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncbuf.Buffer{}
	m := Main{Stdout: io.Discard, Stderr: logs}
	go func() {
		done <- m.Run(ctx, append([]string{"--listen", addr, "--metrics-listen", "-", "--data-dir", t.TempDir(),
			"--linger", "5ms", "--log-level", "warn"}, args...))
	}()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			done <- err
			return true
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("agent exited at start: %v\n%s", err, logs)
	default:
	}
	return addr, stop
}

func postRecord(t *testing.T, addr string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/api/v1/audit/workflow", "application/json",
		strings.NewReader(`{"workflowID":"wf-1","stepName":"scale","stepStatus":"completed"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
}

func TestRun_ForwardsToAPlainHTTPCentralOnlyWithInsecure(t *testing.T) {
	central := agenttest.NewCentral("")
	t.Cleanup(central.Close)
	t.Setenv("AGENT_INSECURE", "true") // the environment works as well as the flag
	addr, stop := runAgent(t, "--central-url", central.URL, "--log-format", "console")
	postRecord(t, addr)
	require.Eventually(t, func() bool { return len(central.Stored()) == 1 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, stop())
}

func TestRun_ForwardsOverTLSTrustingTheCentralCAFile(t *testing.T) {
	central := agenttest.NewTLSCentral("")
	t.Cleanup(central.Close)
	ca, err := central.WriteCAFile(t.TempDir())
	require.NoError(t, err)
	addr, stop := runAgent(t, "--central-url", central.URL, "--central-ca-file", ca)
	postRecord(t, addr)
	require.Eventually(t, func() bool { return len(central.Stored()) == 1 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, stop())
}

// The agent learns from the central which kinds its identity may write and
// refuses the others at once, instead of buffering records bound for the
// dead letters.
func TestRun_RefusesAKindTheCentralSaysItsIdentityMayNotWrite(t *testing.T) {
	central := agenttest.NewCentral("tok-1")
	t.Cleanup(central.Close)
	central.Grant("tok-1", "kubernaut/gateway-sa", agenttest.WriteRemediation)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("tok-1"), 0o600))
	addr, stop := runAgent(t, "--central-url", central.URL, "--insecure", "--token-file", tokenFile)

	var status int
	var body []byte
	require.Eventually(t, func() bool {
		resp, err := http.Post("http://"+addr+"/api/v1/audit/workflow", "application/json",
			strings.NewReader(`{"workflowID":"wf-1","stepName":"scale","stepStatus":"completed"}`))
		require.NoError(t, err)
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
		return status == http.StatusForbidden
	}, 10*time.Second, 20*time.Millisecond)
	assert.Contains(t, string(body), `"error":"authorization_failed"`)
	assert.Contains(t, string(body), "may not write workflow audits")
	postRecord := func() int {
		resp, err := http.Post("http://"+addr+"/api/v1/audit/remediation", "application/json",
			strings.NewReader(`{"remediationRequestID":"rr-1"}`))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusCreated, postRecord())
	require.Eventually(t, func() bool { return len(central.Stored()) >= 1 }, 5*time.Second, 5*time.Millisecond)
	for _, r := range central.AccessRequests() {
		assert.Equal(t, "tok-1", r.Token, "asked with the forwarder's token")
	}
	require.NoError(t, stop())
}

// The operator's procedure end to end: a record of a kind the identity may
// not write goes dead, RBAC is fixed, the dead letter is replayed, and the
// record reaches the central once.
func TestRun_ReplayedDeadLetterArrivesOnceAfterRBACIsFixed(t *testing.T) {
	central := agenttest.NewCentral("tok-1")
	t.Cleanup(central.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("tok-1"), 0o600))
	addr, stop := runAgent(t, "--central-url", central.URL, "--insecure", "--token-file", tokenFile, "--access-refresh", "1h")
	require.Eventually(t, func() bool { return len(central.AccessRequests()) == 1 }, 5*time.Second, 5*time.Millisecond)

	// RBAC changes under the agent, which still believes it may write workflow audits.
	central.Grant("tok-1", "kubernaut/workflowexecution-controller-sa", agenttest.WriteRemediation)
	postRecord(t, addr)
	var list deadLetterListing
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/api/v1/deadletter")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		return list.Count == 1
	}, 10*time.Second, 10*time.Millisecond)
	dead := list.DeadLetters[0]
	assert.Equal(t, "authorization_failed: kubernaut/workflowexecution-controller-sa may not write workflow audits (field kind)", dead.Reason)
	assert.Empty(t, central.Stored())

	central.Grant("tok-1", "kubernaut/workflowexecution-controller-sa", agenttest.WriteRemediation, agenttest.WriteWorkflow)
	resp, err := http.Post("http://"+addr+"/api/v1/deadletter/replay?through="+dead.Seq, "", nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.JSONEq(t, `{"replayed":1,"skipped":0}`, string(body))

	require.Eventually(t, func() bool { return central.Has(dead.ID) }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop()) // drains: nothing is left to send
	assert.Equal(t, []string{dead.ID}, central.Stored(), "stored once")
	var sent int
	for _, r := range central.Requests() {
		for _, id := range r.IDs {
			if id == dead.ID && r.Status == http.StatusOK {
				sent++
			}
		}
	}
	assert.Equal(t, 2, sent, "refused once, delivered once")
}
