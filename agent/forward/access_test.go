package forward_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fakecentral "github.com/kubernaut/datastorage/agent/agenttest"
	"github.com/kubernaut/datastorage/agent/forward"
	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/wire"
)

func allows(a *forward.Access) map[wire.Kind]bool {
	return map[wire.Kind]bool{wire.KindRemediation: a.Allows(wire.KindRemediation), wire.KindWorkflow: a.Allows(wire.KindWorkflow)}
}

var (
	allowAll        = map[wire.Kind]bool{wire.KindRemediation: true, wire.KindWorkflow: true}
	remediationOnly = map[wire.Kind]bool{wire.KindRemediation: true, wire.KindWorkflow: false}
)

func TestAccess_AsksAtStartWithTheForwardersToken(t *testing.T) {
	h, f := setup(t, forward.Config{AccessRefresh: time.Hour})
	require.Eventually(t, func() bool { return len(h.central.AccessRequests()) == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, "tok-1", h.central.AccessRequests()[0].Token)
	assert.Equal(t, allowAll, allows(f.Access()))
}

func TestAccess_LearnsARefusedKindFromTheCentral(t *testing.T) {
	central := fakecentral.NewCentral("tok-1")
	t.Cleanup(central.Close)
	central.Grant("tok-1", "ns/gateway-sa", fakecentral.WriteRemediation)
	_, f := setupWith(t, central, forward.Config{AccessRefresh: time.Hour})
	require.Eventually(t, func() bool { return !f.Access().Allows(wire.KindWorkflow) }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, remediationOnly, allows(f.Access()))
}

func TestAccess_AllowsEveryKindWhileTheAnswerIsUnknown(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusServiceUnavailable, http.StatusUnauthorized} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			central := fakecentral.NewCentral("tok-1")
			t.Cleanup(central.Close)
			central.Grant("tok-1", "ns/gateway-sa", fakecentral.WriteRemediation)
			central.SetAccessStatus(status)
			_, f := setupWith(t, central, forward.Config{AccessRefresh: 10 * time.Millisecond})
			require.Eventually(t, func() bool { return len(central.AccessRequests()) >= 3 }, 5*time.Second, 5*time.Millisecond)
			assert.Equal(t, allowAll, allows(f.Access()))

			central.SetAccessStatus(0)
			require.Eventually(t, func() bool { return !f.Access().Allows(wire.KindWorkflow) }, 5*time.Second, 5*time.Millisecond,
				"learnt once the central answers")
		})
	}
}

func TestAccess_KeepsTheLastAnswerWhileTheCentralIsUnavailableAndForgetsItOn404(t *testing.T) {
	central := fakecentral.NewCentral("tok-1")
	t.Cleanup(central.Close)
	central.Grant("tok-1", "ns/gateway-sa", fakecentral.WriteRemediation)
	_, f := setupWith(t, central, forward.Config{AccessRefresh: 10 * time.Millisecond})
	require.Eventually(t, func() bool { return !f.Access().Allows(wire.KindWorkflow) }, 5*time.Second, 5*time.Millisecond)

	central.SetAccessStatus(http.StatusServiceUnavailable)
	n := len(central.AccessRequests())
	require.Eventually(t, func() bool { return len(central.AccessRequests()) >= n+3 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, remediationOnly, allows(f.Access()), "an outage is not a change of RBAC")

	central.SetAccessStatus(http.StatusNotFound) // rolled back to a central without the endpoint
	require.Eventually(t, func() bool { return f.Access().Allows(wire.KindWorkflow) }, 5*time.Second, 5*time.Millisecond)
}

func TestAccess_AsksAgainSoonAfterTheCentralRefusesARecord(t *testing.T) {
	h, f := setup(t, forward.Config{AccessRefresh: time.Hour})
	require.Eventually(t, func() bool { return len(h.central.AccessRequests()) == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, allowAll, allows(f.Access()))

	// RBAC changes; the next refresh is an hour away, but a refusal prompts one.
	h.central.Grant("tok-1", "ns/gateway-sa", fakecentral.WriteRemediation)
	require.NoError(t, h.q.Append(context.Background(), workflowRecords(t, 1)))
	require.Eventually(t, func() bool { return !f.Access().Allows(wire.KindWorkflow) }, 5*time.Second, 5*time.Millisecond)
	assert.True(t, f.Access().Allows(wire.KindRemediation))
	assert.Len(t, h.central.AccessRequests(), 2)
}

func TestAccess_AsksAgainSoonAfterTheCentralRefusesAWholeBatch(t *testing.T) {
	h, f := setup(t, forward.Config{AccessRefresh: time.Hour})
	require.Eventually(t, func() bool { return len(h.central.AccessRequests()) == 1 }, 5*time.Second, 5*time.Millisecond)
	h.central.Grant("tok-1", "ns/gateway-sa", fakecentral.ReadSimilar)
	require.NoError(t, h.q.Append(context.Background(), records(t, 1)))
	require.Eventually(t, func() bool { return !f.Access().Allows(wire.KindRemediation) }, 5*time.Second, 5*time.Millisecond)
	assert.False(t, f.Access().Allows(wire.KindWorkflow))
	h.central.Grant("tok-1", "ns/gateway-sa", fakecentral.WriteRemediation) // let Close drain
}

func TestAccess_DoesNotHoldUpStartWhenTheCentralHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c // never answered
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	})
	q, err := queue.Open(queue.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	start := time.Now()
	f, err := forward.New(forward.Config{CentralURL: "http://" + ln.Addr().String(), Insecure: true}, q)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), time.Second)
	select {
	case c := <-accepted:
		accepted <- c
	case <-time.After(5 * time.Second):
		t.Fatal("the agent never asked for its access")
	}
	assert.Equal(t, allowAll, allows(f.Access()), "unknown: every kind")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.NoError(t, f.Close(ctx))
	require.NoError(t, q.Close(context.Background()))
}

func TestAccess_NeverAsksWhenDisabled(t *testing.T) {
	h, f := setup(t, forward.Config{AccessRefresh: -1})
	recs := records(t, 2)
	require.NoError(t, h.q.Append(context.Background(), recs))
	assert.Equal(t, idsOf(recs), h.drained(t))
	assert.Empty(t, h.central.AccessRequests())
	assert.Equal(t, allowAll, allows(f.Access()))
}

// Allows runs on every write the agent accepts.
func TestAccess_AllowsCostsNoAllocation(t *testing.T) {
	central := fakecentral.NewCentral("tok-1")
	t.Cleanup(central.Close)
	central.Grant("tok-1", "ns/gateway-sa", fakecentral.WriteRemediation)
	_, f := setupWith(t, central, forward.Config{AccessRefresh: time.Hour})
	require.Eventually(t, func() bool { return !f.Access().Allows(wire.KindWorkflow) }, 5*time.Second, 5*time.Millisecond)
	var a interface{ Allows(wire.Kind) bool } = f.Access() // as the server holds it
	kind := wire.KindRemediation
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		if !a.Allows(kind) {
			t.Fatal("refused")
		}
	}))
}
