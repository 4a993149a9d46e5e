package replicas_test

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubernaut/datastorage/central/replicas"
	"github.com/kubernaut/datastorage/internal/tstest/faultproxy"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/internal/tstest/syncbuf"
	"github.com/kubernaut/datastorage/storage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ replicas.Store = (*storage.DB)(nil)

// migrated is a fresh, migrated database's DSN.
func migrated(t *testing.T) string {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.Migrate(t.Context(), dsn))
	return dsn
}

func open(t *testing.T, dsn string) *storage.DB {
	t.Helper()
	db, err := storage.Open(t.Context(), storage.Config{DatabaseURL: dsn, MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

// member is a running Membership and what it reported.
type member struct {
	*replicas.Membership
	stop    context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	changes []int
	logs    *syncbuf.Buffer
	set     *metrics.Set
}

func start(t *testing.T, cfg replicas.Config) *member {
	t.Helper()
	m := &member{done: make(chan struct{}), logs: &syncbuf.Buffer{}, set: metrics.NewSet()}
	cfg.OnChange = func(n int) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.changes = append(m.changes, n)
	}
	cfg.Logger, cfg.Metrics = zerolog.New(m.logs), m.set
	var err error
	m.Membership, err = replicas.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go func() {
		defer close(m.done)
		m.Run(ctx)
	}()
	t.Cleanup(m.halt)
	return m
}

// halt stops Run and waits for it (the row deleted, unless the store
// refuses).
func (m *member) halt() {
	m.stop()
	<-m.done
}

func (m *member) seen() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.changes...)
}

func (m *member) metrics() string {
	var b bytes.Buffer
	m.set.WritePrometheus(&b)
	return b.String()
}

func waitCount(t *testing.T, m *member, want int, within time.Duration, msg string) {
	t.Helper()
	require.Eventually(t, func() bool { return m.Count() == want }, within, 10*time.Millisecond,
		"%s: count %d, want %d", msg, m.Count(), want)
}

func TestMembership_TwoReplicasCountTwoAndAnOrderlyStopCountsAtOnce(t *testing.T) {
	dsn := migrated(t)
	// A TTL of a minute: only the deleted row can explain a quick drop.
	cfg := replicas.Config{Store: open(t, dsn), Heartbeat: 50 * time.Millisecond, TTL: time.Minute}
	a := start(t, cfg)
	b := start(t, cfg)
	waitCount(t, a, 2, 5*time.Second, "a")
	waitCount(t, b, 2, 5*time.Second, "b")
	assert.Contains(t, a.metrics(), "datastorage_central_replicas 2")
	assert.Contains(t, a.logs.String(), "number of central replicas changed")

	b.halt()
	waitCount(t, a, 1, 3*time.Second, "a, after b's orderly stop")
	assert.Equal(t, []int{2, 1}, a.seen(), "OnChange with each new count")
}

// storeWithoutLeave is a replica killed with SIGKILL: its row stays.
type storeWithoutLeave struct{ replicas.Store }

func (storeWithoutLeave) ReplicaLeave(context.Context, string) error { return nil }

func TestMembership_AVanishedReplicaIsCountedUntilTheTTL(t *testing.T) {
	dsn := migrated(t)
	db := open(t, dsn)
	const ttl = time.Second
	a := start(t, replicas.Config{Store: db, Heartbeat: 50 * time.Millisecond, TTL: ttl})
	b := start(t, replicas.Config{Store: storeWithoutLeave{db}, Heartbeat: 50 * time.Millisecond, TTL: ttl})
	waitCount(t, a, 2, 5*time.Second, "a")

	b.halt()
	stopped := time.Now()
	time.Sleep(ttl / 3)
	assert.Equal(t, 2, a.Count(), "a vanished replica still counts within the TTL")
	waitCount(t, a, 1, ttl+2*time.Second, "a, once b's row expired")
	t.Logf("b no longer counted %s after its last heartbeat", time.Since(stopped).Round(time.Millisecond))
	assert.GreaterOrEqual(t, time.Since(stopped), ttl-100*time.Millisecond, "not before the TTL")
}

func TestMembership_AnUnreachableDatabaseKeepsTheLastCount(t *testing.T) {
	dsn := migrated(t)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	proxy, err := faultproxy.Start(u.Host)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()

	const ttl = 500 * time.Millisecond
	a := start(t, replicas.Config{Store: open(t, u.String()), Heartbeat: 50 * time.Millisecond, TTL: ttl})
	b := start(t, replicas.Config{Store: open(t, dsn), Heartbeat: 50 * time.Millisecond, TTL: ttl})
	c := start(t, replicas.Config{Store: open(t, dsn), Heartbeat: 50 * time.Millisecond, TTL: ttl})
	waitCount(t, a, 3, 5*time.Second, "a")
	before := a.seen()

	proxy.SetDown(true)
	waitCount(t, b, 2, 5*time.Second, "b: a is cut off, its row expires")
	time.Sleep(3 * ttl)
	assert.Equal(t, 3, a.Count(), "a keeps the last count it saw")
	assert.Equal(t, 1, strings.Count(a.logs.String(), "replica heartbeat failed"), "logged once:\n%s", a.logs)
	assert.NotContains(t, a.metrics(), "datastorage_central_replica_heartbeat_failures_total 0\n")

	proxy.SetDown(false)
	waitCount(t, b, 3, 10*time.Second, "b: a is back")
	waitCount(t, a, 3, 10*time.Second, "a")
	assert.Contains(t, a.logs.String(), "replica heartbeat works again")
	assert.Equal(t, before, a.seen(), "a's count never moved")
	waitCount(t, c, 3, 10*time.Second, "c")
}

func TestMembership_StaticCountNeedsNoDatabase(t *testing.T) {
	var got []int
	m, err := replicas.New(replicas.Config{Static: 3, OnChange: func(n int) { got = append(got, n) }})
	require.NoError(t, err)
	assert.Equal(t, 3, m.Count())
	assert.Equal(t, []int{3}, got, "told at once")
	done := make(chan struct{})
	go func() {
		m.Run(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run with a static count should return at once")
	}
}

func TestConfig_ValidateNamesTheField(t *testing.T) {
	for want, cfg := range map[string]replicas.Config{
		"Static must be 0":         {Static: -1},
		"Store is required":        {},
		"must not be negative":     {Static: 1, Heartbeat: -time.Second},
		"TTL (1s) must exceed":     {Static: 1, TTL: time.Second, Heartbeat: time.Second},
		"TTL (500ms) must exceed ": {Static: 1, TTL: 500 * time.Millisecond},
	} {
		assert.ErrorContains(t, cfg.Validate(), want)
		_, err := replicas.New(cfg)
		assert.Error(t, err)
	}
	assert.NoError(t, replicas.Config{Static: 2}.Validate())
}
