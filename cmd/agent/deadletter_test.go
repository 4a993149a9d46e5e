package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/agent/agenttest"
	"github.com/kubernaut/datastorage/internal/tstest/freeport"
)

// deadLetterListing is what a test reads of GET /api/v1/deadletter.
type deadLetterListing struct {
	Count       int `json:"count"`
	DeadLetters []struct {
		Seq    string `json:"seq"`
		ID     string `json:"id"`
		Reason string `json:"reason"`
	} `json:"deadLetters"`
}

// deadLetterCmd runs "agent deadletter args..." against the agent at addr
// and returns what it printed.
func deadLetterCmd(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	m := Main{Stdout: &out, Stderr: &out}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := m.Run(ctx, append(append([]string{"deadletter"}, args...), "--listen", addr))
	return out.String(), err
}

// The operator's commands inside the pod: list what went dead and why,
// replay some, delete the rest; the agent's own refusals come back as
// errors naming them.
func TestDeadLetterCommands_ListReplayDelete(t *testing.T) {
	central := agenttest.NewCentral("tok-1")
	t.Cleanup(central.Close)
	tokenFile := t.TempDir() + "/token"
	require.NoError(t, os.WriteFile(tokenFile, []byte("tok-1"), 0o600))
	addr, stop := runAgent(t, "--central-url", central.URL, "--insecure", "--token-file", tokenFile, "--access-refresh", "1h")
	require.Eventually(t, func() bool { return len(central.AccessRequests()) == 1 }, 5*time.Second, 5*time.Millisecond)

	out, err := deadLetterCmd(t, addr, "list")
	require.NoError(t, err)
	assert.Contains(t, out, "0 shown of 0 held")

	// RBAC changes under the agent: two workflow audits go dead.
	central.Grant("tok-1", "kubernaut/workflowexecution-controller-sa", agenttest.WriteRemediation)
	postRecord(t, addr)
	postRecord(t, addr)
	var list deadLetterListing
	require.Eventually(t, func() bool {
		out, err := deadLetterCmd(t, addr, "list", "--json")
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal([]byte(out), &list), out)
		return list.Count == 2
	}, 10*time.Second, 10*time.Millisecond)
	first, second := list.DeadLetters[0], list.DeadLetters[1]

	out, err = deadLetterCmd(t, addr, "list", "--limit", "1")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	assert.Regexp(t, `^SEQ\s+KIND\s+ID\s+RECEIVED\s+DEAD SINCE\s+REASON$`, lines[0])
	assert.Regexp(t, `^`+first.Seq+`\s+workflow\s+`+first.ID+`\s+\d{4}-\d\d-\d\dT\S+Z\s+\S+Z\s+authorization_failed: kubernaut/workflowexecution-controller-sa may not write workflow audits`, lines[1])
	assert.Equal(t, "1 shown of 2 held", lines[2])

	// Fixed: the first is replayed and arrives; the second is deleted.
	central.Grant("tok-1", "kubernaut/workflowexecution-controller-sa", agenttest.WriteRemediation, agenttest.WriteWorkflow)
	out, err = deadLetterCmd(t, addr, "replay", "--through", first.Seq)
	require.NoError(t, err)
	assert.Equal(t, "replayed 1, skipped 0 (skipped ones stay: see their reason in list)\n", out)
	require.Eventually(t, func() bool { return central.Has(first.ID) }, 10*time.Second, 5*time.Millisecond)
	out, err = deadLetterCmd(t, addr, "delete", "--through", second.Seq)
	require.NoError(t, err)
	assert.Equal(t, "deleted 1\n", out)
	out, err = deadLetterCmd(t, addr, "list")
	require.NoError(t, err)
	assert.Contains(t, out, "0 shown of 0 held")
	require.NoError(t, stop())
	assert.Equal(t, []string{first.ID}, central.Stored(), "the replayed one stored once, the deleted one never")
}

func TestDeadLetterCommands_RefuseBadArgumentsAndReportTheAgentsErrors(t *testing.T) {
	central := agenttest.NewCentral("")
	t.Cleanup(central.Close)
	addr, _ := runAgent(t, "--central-url", central.URL, "--insecure")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "usage: agent deadletter list"},
		{[]string{"purge"}, `unknown verb "purge"`},
		{[]string{"delete"}, `--through "": want the seq of a dead letter`},
		{[]string{"replay", "--through", "-1"}, `--through "-1"`},
		{[]string{"list", "--limit", "0"}, "--limit must be at least 1"},
	} {
		var out bytes.Buffer
		err := (&Main{Stdout: &out, Stderr: &out}).Run(context.Background(), append([]string{"deadletter"}, c.args...))
		require.Error(t, err, c.args)
		assert.Contains(t, err.Error(), c.want)
	}
	// Nothing listens there.
	_, err := deadLetterCmd(t, freeport.Addr(t), "list")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is the agent running?")
	// The agent's own refusal is passed on, its error body included.
	_, err = deadLetterCmd(t, addr, "replay", "--through", "0")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the agent answered 400 validation_failed: through must be the seq of the last dead letter to replay")
	out, err := deadLetterCmd(t, addr, "delete", "--through", "1")
	require.NoError(t, err, out)
	assert.Equal(t, "deleted 0\n", out)
}
