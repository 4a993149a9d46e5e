package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/wire"
)

func TestRun_RefusesBadReplicaSettings(t *testing.T) {
	for args, want := range map[string]string{
		"--replicas -1":                                           "--replicas -1: want 0 (count the live replicas through the database) or the number of replicas",
		"--replica-heartbeat 0s":                                  "--replica-heartbeat must be positive",
		"--replica-heartbeat 2s --replica-ttl 2s":                 "--replica-ttl 2s must exceed --replica-heartbeat 2s",
		"--replica-heartbeat 100ms --replica-ttl -1s":             "--replica-ttl -1s must exceed",
		"--replicas 3 --replica-heartbeat 1s --replica-ttl 500ms": "must exceed",
	} {
		err := run(context.Background(), append([]string{"serve", "--database-url", "postgres://unused"}, strings.Fields(args)...), io.Discard, io.Discard)
		assert.ErrorContains(t, err, want, args)
	}
	t.Setenv("DATASTORAGE_REPLICAS", "-2")
	err := run(context.Background(), []string{"serve", "--database-url", "postgres://unused"}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "--replicas -2")
}

// Replica test settings: the limit the service account has across all
// replicas, and a heartbeat and TTL short enough for a test.
const (
	globalRate      = 200 // records/s
	globalBurst     = 50
	replicaBeat     = 200 * time.Millisecond
	replicaTTL      = time.Second
	measuredWindow  = 6 * time.Second
	loadWorkers     = 4
	loadWorkerPause = 25 * time.Millisecond
)

// TestServe_RateLimitHoldsAcrossReplicas runs three centrals on one
// database, as three pods behind a Service, and spreads one service
// account's writes over them (round robin, concurrent, far more than the
// limit, in batches both smaller and larger than a replica's share of the
// burst). Together they admit the configured limit, not three times it.
// Then one replica is killed (SIGKILL: its row stays until the TTL): within
// a heartbeat after the TTL the other two count two and admit the whole
// limit between them again.
func TestServe_RateLimitHoldsAcrossReplicas(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	args := []string{"--rate-limit", fmt.Sprint(globalRate), "--rate-burst", fmt.Sprint(globalBurst),
		"--replica-heartbeat", replicaBeat.String(), "--replica-ttl", replicaTTL.String(),
		"--embed-workers", "0", "--database-max-conns", "4"}
	ps := make([]*process, 3)
	var wg sync.WaitGroup
	for i := range ps {
		ps[i] = startCentralOn(t, dsn, args...)
	}
	for _, p := range ps {
		wg.Go(func() { p.waitReady(t, http.DefaultClient, "http://"+p.api) })
	}
	wg.Wait()
	for i, p := range ps {
		waitReplicas(t, p, 3, 10*time.Second, fmt.Sprintf("replica %d", i))
	}

	load := startLoad(t, batchURLs(ps), loadWorkers, &http.Client{Timeout: 10 * time.Second})
	began := time.Now()
	// Past the first bursts (each replica starts with a full bucket).
	sleepUntil(began.Add(2 * time.Second))
	from := time.Now()
	sleepUntil(from.Add(measuredWindow))
	three := load.ratio(from, from.Add(measuredWindow))
	t.Logf("three replicas: %.3f of the limit (%d records in %s; %d requests refused with 429)",
		three, load.accepted(from, from.Add(measuredWindow)), measuredWindow, load.refused.Load())
	assert.LessOrEqual(t, three, 1.1, "three replicas together hold the limit")
	assert.GreaterOrEqual(t, three, 0.7, "and admit about the limit, not much less")
	load.stop()

	// One connection at a time, as an agent forwards, through a balancer
	// that picks a replica per connection, as a Service does: a 429 closes
	// the connection, so the writer's next one may reach a replica with room,
	// and it gets about the whole limit rather than one replica's share.
	lb := startBalancer(t, ps)
	single := startLoad(t, []string{"http://" + lb.addr() + "/api/v1/audit/batch"}, 1,
		&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}})
	from = time.Now().Add(2 * time.Second)
	sleepUntil(from.Add(measuredWindow))
	one := single.ratio(from, from.Add(measuredWindow))
	single.stop()
	t.Logf("one connection at a time through a balancer: %.3f of the limit over %d connections", one, lb.connections.Load())
	assert.LessOrEqual(t, one, 1.1, "one writer is held to the limit")
	assert.GreaterOrEqual(t, one, 0.6, "and is not held to one replica's share (1/3)")
	assert.Zero(t, single.failed.Load(), "requests that failed otherwise than by 429: %s", single.firstFailure())
	load = startLoad(t, batchURLs(ps), loadWorkers, &http.Client{Timeout: 10 * time.Second})

	// kill -9 the third: its row stays until the TTL.
	load.setTargets(ps[:2])
	killed := time.Now()
	require.NoError(t, ps[2].Kill())
	for i, p := range ps[:2] {
		waitReplicas(t, p, 2, 10*time.Second, fmt.Sprintf("replica %d after the kill", i))
	}
	restored := time.Since(killed)
	t.Logf("the survivors counted two %s after the kill (TTL %s, heartbeat %s)", restored.Round(time.Millisecond), replicaTTL, replicaBeat)
	assert.Less(t, restored, replicaTTL+replicaBeat+3*time.Second, "the dead replica's share is restored within a few seconds")

	from = time.Now().Add(500 * time.Millisecond)
	sleepUntil(from.Add(measuredWindow))
	two := load.ratio(from, from.Add(measuredWindow))
	t.Logf("two replicas after the kill: %.3f of the limit (%d records in %s)", two, load.accepted(from, from.Add(measuredWindow)), measuredWindow)
	assert.LessOrEqual(t, two, 1.1, "two replicas together hold the limit")
	assert.GreaterOrEqual(t, two, 0.7, "and admit about the whole limit: the dead replica's share is theirs")
	load.stop()
	assert.Zero(t, load.failed.Load(), "requests that failed otherwise than by 429: %s", load.firstFailure())

	// An orderly stop takes the replica out of the count: the table is empty
	// (the killed replica's row expired and was deleted by the others).
	for _, p := range ps[:2] {
		require.NoError(t, p.Stop(syscall.SIGTERM, 30*time.Second), "exit after SIGTERM: %s", p.Logs())
	}
	assert.Zero(t, replicaRows(t, dsn), "no replica left in the table")
	assert.Contains(t, ps[0].Logs(), "number of central replicas changed")
}

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// replicaRows is the number of rows in the database's replica table.
func replicaRows(t *testing.T, dsn string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM central_replicas`).Scan(&n))
	return n
}

// waitReplicas polls p's metrics until datastorage_central_replicas is want.
func waitReplicas(t *testing.T, p *process, want int, within time.Duration, msg string) {
	t.Helper()
	line := fmt.Sprintf("datastorage_central_replicas %d\n", want)
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + p.metrics + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), line)
	}, within, 50*time.Millisecond, "%s: never counted %d replicas", msg, want)
}

// load is one service account's writes spread round robin over replicas by
// concurrent workers, each sending a batch, pausing briefly, and sending the
// next, whatever the answer.
type load struct {
	targets atomic.Pointer[[]string]
	next    atomic.Int64
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	refused, failed atomic.Int64
	mu              sync.Mutex
	admitted        []admission
	failure         string
}

type admission struct {
	at      time.Time
	records int
}

// batchSizes alternate: 10 fits a replica's share of the burst (50/3), 25
// does not and passes only on a full bucket, into debt.
var batchSizes = [...]int{10, 25}

// startLoad sends to urls, round robin, from workers workers through
// client.
func startLoad(t *testing.T, urls []string, workers int, client *http.Client) *load {
	t.Helper()
	l := &load{done: make(chan struct{})}
	l.setURLs(urls)
	bodies := map[int][]byte{}
	for _, n := range batchSizes {
		bodies[n] = batchBody(n)
	}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.done:
					return
				default:
				}
				i := l.next.Add(1)
				targets := *l.targets.Load()
				n := batchSizes[i%int64(len(batchSizes))]
				l.send(client, targets[int(i/2)%len(targets)], n, bodies[n])
				select {
				case <-l.done:
					return
				case <-time.After(loadWorkerPause):
				}
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) setTargets(ps []*process) { l.setURLs(batchURLs(ps)) }

// batchURLs are the batch endpoints of ps.
func batchURLs(ps []*process) []string {
	urls := make([]string, len(ps))
	for i, p := range ps {
		urls[i] = "http://" + p.api + "/api/v1/audit/batch"
	}
	return urls
}

func (l *load) setURLs(urls []string) { l.targets.Store(&urls) }

func (l *load) send(client *http.Client, url string, n int, body []byte) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer t-gw")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		if slices.Contains(*l.targets.Load(), url) {
			l.fail(err.Error())
		} // else: sent to the replica just killed, before it left the rotation
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusOK && strings.Contains(string(b), fmt.Sprintf(`"persisted":%d`, n)):
		l.mu.Lock()
		l.admitted = append(l.admitted, admission{at: time.Now(), records: n})
		l.mu.Unlock()
	case resp.StatusCode == http.StatusTooManyRequests:
		l.refused.Add(1)
	default:
		l.fail(fmt.Sprintf("%d %s", resp.StatusCode, b))
	}
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failure == "" {
		l.failure = msg
	}
}

func (l *load) firstFailure() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failure
}

// accepted is the number of records admitted (answered) within [from, to).
func (l *load) accepted(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.admitted {
		if !a.at.Before(from) && a.at.Before(to) {
			n += a.records
		}
	}
	return n
}

// ratio is what was admitted within [from, to) over what the limit allows.
func (l *load) ratio(from, to time.Time) float64 {
	return float64(l.accepted(from, to)) / (globalRate * to.Sub(from).Seconds())
}

func (l *load) stop() {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
}

// batchBody is a batch of n remediation audits without IDs (the central
// gives them theirs).
func batchBody(n int) []byte {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"kind":%q,"record":{"remediationRequestID":"rr-%d","alertName":"HighMemoryUsage"}}`, wire.KindRemediation, i)
	}
	return []byte(`{"records":[` + strings.Join(items, ",") + `]}`)
}

// balancer forwards each TCP connection to a replica picked at random, as
// kube-proxy does for a Service.
type balancer struct {
	ln          net.Listener
	connections atomic.Int64
}

func startBalancer(t *testing.T, ps []*process) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &balancer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			b.connections.Add(1)
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", ps[rand.IntN(len(ps))].api)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); out.Close() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return b
}

func (b *balancer) addr() string { return b.ln.Addr().String() }
