package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kubernaut/datastorage/internal/tstest/patroni"
)

// The failover phase (issue: HA PostgreSQL): the same run on a throwaway
// Patroni cluster (internal/tstest/patroni: etcd and two PostgreSQL nodes,
// synchronous_mode_strict), the central given the multi-host URL with
// target_session_attrs=read-write, and the primary node killed under load.

// FailoverPhase is the failover phase of `make chaos`: load through the
// agents, the primary killed Failovers times (the second time it is the
// node promoted by the first), nothing else injected, and the same
// verification: exactly once, every agent drained, the ledger.
func FailoverPhase() Config {
	return Config{HA: true, Agents: 2, Controllers: 6, Rate: 150, Failovers: 2,
		AgentKills: -1, CentralKills: -1, CentralTerms: -1, ProxyFaults: -1, DiskFulls: -1, Corruptions: -1, Resends: -1,
		Gap: 2 * time.Second, DrainTimeout: 2 * time.Minute}
}

// startHA starts the Patroni cluster and returns its admin URL (every
// node, the one that accepts writes).
func (e *env) startHA(ctx context.Context) (string, error) {
	fmt.Fprintln(e.cfg.Progress, "chaos: starting a throwaway Patroni cluster (etcd, 2 PostgreSQL nodes, synchronous_mode_strict)")
	c, err := patroni.Start(ctx, patroni.Config{Root: e.cfg.RepoRoot})
	if err != nil {
		return "", err
	}
	e.ha = c
	e.res.OwnCluster = true
	return c.URL("postgres"), nil
}

// failover kills the primary node as a machine dying would (its Patroni
// and its postmaster, SIGKILL), waits for Patroni to promote the
// synchronous standby once the leader key expires, and starts the dead
// node's Patroni again, as its machine coming back: it rejoins as a
// standby (rewound), and the new primary, which with synchronous_mode_strict
// commits nothing without a synchronous standby, takes writes again once it
// has. Recovery is measured from the kill.
func (e *env) failover(ctx context.Context) (int, error) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := e.ha.WaitHealthy(wctx); err != nil {
		return -1, err
	}
	old, err := e.ha.Primary(wctx)
	if err != nil {
		return -1, err
	}
	killed := time.Now()
	e.measureFrom = killed
	if err := e.ha.Kill(old); err != nil {
		return -1, err
	}
	var promoted *patroni.Node
	for promoted == nil || promoted == old {
		if wctx.Err() != nil {
			return -1, fmt.Errorf("no node promoted after %s was killed: %w", old.Name, wctx.Err())
		}
		time.Sleep(100 * time.Millisecond)
		promoted, _ = e.ha.Primary(wctx)
	}
	promotedAfter := time.Since(killed)
	if err := e.ha.StartNode(old); err != nil {
		return -1, err
	}
	e.note(fmt.Sprintf("failover: primary %s killed (Patroni and postmaster, SIGKILL); %s promoted %s later; %s restarted then",
		old.Name, promoted.Name, promotedAfter.Round(10*time.Millisecond), old.Name))
	return -1, nil
}

// ErrFailoverAnswer is a failover phase in which the central answered a
// write with a 5xx other than 503: while no primary takes writes, it must
// say "retry later" (503 with Retry-After), never 500.
var ErrFailoverAnswer = errors.New("chaos: the central answered a write with a 5xx other than 503 during the failovers")

// centralAnswers counts the central's answers to the batch endpoint whose
// code matches.
func (e *env) centralAnswers(match func(code string) bool) float64 {
	return scrape(e.centralMetrics, func(sample string) bool {
		rest, ok := strings.CutPrefix(sample, `datastorage_http_requests_total{endpoint="batch",code="`)
		return ok && match(strings.TrimSuffix(rest, `"}`))
	})
}

// rejoined notes how the failed-over cluster ended (healthy, the killed
// nodes back as synchronous standbys) and what the central answered.
func (e *env) rejoined(ctx context.Context) error {
	unavailable := e.centralAnswers(func(c string) bool { return c == "503" })
	other5xx := e.centralAnswers(func(c string) bool { return c != "503" && strings.HasPrefix(c, "5") })
	e.note(fmt.Sprintf("failover: the central answered the agents' batches 503 (Retry-After) %v times and another 5xx %v times", unavailable, other5xx))
	if other5xx > 0 {
		return ErrFailoverAnswer
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := e.ha.WaitHealthy(wctx); err != nil {
		return err
	}
	ms, err := e.ha.Members(wctx)
	if err != nil {
		return err
	}
	s := "failover: at the end"
	for _, m := range ms {
		s += fmt.Sprintf(" %s %s (timeline %d);", m.Name, m.Role, m.Timeline)
	}
	e.note(s)
	return nil
}
