package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/agent/agenttest"
	"github.com/kubernaut/datastorage/wire"
)

// load posts records from n goroutines until ctx ends and returns the IDs
// the agent acknowledged with 201.
func load(ctx context.Context, t *testing.T, url string, n int) []string {
	t.Helper()
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for g := range n {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"remediationRequestID":"rr-%d-%d","alertName":"HighMemoryUsage","reasoning":%q}`,
					g, i, strings.Repeat("memory pressure ", 20))
				resp, err := client.Post(url+"/api/v1/audit/remediation", "application/json", strings.NewReader(body))
				if err != nil {
					return // the agent died
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					continue
				}
				var wr wire.WriteResponse
				if json.Unmarshal(b, &wr) == nil {
					mu.Lock()
					acked = append(acked, wr.AuditID)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return acked
}

func TestAgent_KillNineLosesNoAcknowledgedRecord(t *testing.T) {
	central := agenttest.NewCentral("")
	defer central.Close()
	dataDir := t.TempDir()
	var acked []string
	for round := range 3 {
		// Round 1 makes the central slow to answer, so kills land between send and confirmation.
		if round == 1 {
			central.Script(agenttest.Reply{Status: 503, RetryAfter: "1"})
		}
		a := startAgent(t, dataDir, central.URL)
		ctx, cancel := context.WithCancel(context.Background())
		var got []string
		done := make(chan struct{})
		go func() { got = load(ctx, t, "http://"+a.listen, 16); close(done) }()
		time.Sleep(time.Duration(200+150*round) * time.Millisecond)
		a.kill(t)
		cancel()
		<-done
		t.Logf("round %d: %d acknowledged before SIGKILL", round, len(got))
		acked = append(acked, got...)
	}
	require.NotEmpty(t, acked)

	a := startAgent(t, dataDir, central.URL)
	require.Eventually(t, func() bool {
		for _, id := range acked {
			if !central.Has(id) {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "acknowledged records missing at the central")
	a.term(t)
	assert.GreaterOrEqual(t, len(central.Stored()), len(acked))
}

func TestAgent_SIGTERMFlushesAndExitsCleanly(t *testing.T) {
	central := agenttest.NewCentral("")
	defer central.Close()
	a := startAgent(t, t.TempDir(), central.URL, "--linger", "1h", "--shutdown-grace", "5s")
	resp, err := http.Post("http://"+a.listen+"/api/v1/audit/workflow", "application/json",
		strings.NewReader(`{"workflowID":"wf-1","stepName":"scale","stepStatus":"completed"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Empty(t, central.Stored(), "lingering")
	a.term(t)
	assert.Len(t, central.Stored(), 1, "flushed on SIGTERM")
}
