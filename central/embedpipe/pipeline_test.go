package embedpipe_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubernaut/datastorage/central/embed"
	"github.com/kubernaut/datastorage/central/embedpipe"
	"github.com/kubernaut/datastorage/internal/tstest/faultproxy"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/golang-migrate/migrate/v4.(*Migration).Buffer"))
}

const sa = "kubernaut-system/gateway-sa"

type env struct {
	auditDSN, vectorDSN string
	audits              *storage.DB
	vectors             *storage.VectorDB
	proxy               *faultproxy.Proxy // between the pipeline and the vector DB, when asked
	lease               time.Duration     // the pipelines' Config.Lease (zero: the default)
}

// newEnv migrates fresh databases: one for both sides, or two (the spec's
// layout), optionally with a fault proxy in front of the vector database.
func newEnv(t testing.TB, twoDatabases, viaProxy bool) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{auditDSN: pgtest.NewDatabase(t)}
	e.vectorDSN = e.auditDSN
	if twoDatabases {
		e.vectorDSN = pgtest.NewDatabase(t)
	}
	for _, dsn := range []string{e.auditDSN, e.vectorDSN} {
		require.NoError(t, storage.Migrate(ctx, dsn))
	}
	var err error
	e.audits, err = storage.Open(ctx, storage.Config{DatabaseURL: e.auditDSN, MaxConns: 8})
	require.NoError(t, err)
	t.Cleanup(e.audits.Close)
	vdsn := e.vectorDSN
	if viaProxy {
		cfg, err := pgxpool.ParseConfig(e.vectorDSN)
		require.NoError(t, err)
		target := fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port)
		e.proxy, err = faultproxy.Start(target)
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.proxy.Close() })
		vdsn = strings.Replace(e.vectorDSN, target, e.proxy.Addr(), 1)
	}
	e.vectors, err = storage.OpenVectors(ctx, storage.Config{DatabaseURL: vdsn, MaxConns: 8, ConnectTimeout: time.Second}, storage.HNSWConfig{})
	require.NoError(t, err)
	t.Cleanup(e.vectors.Close)
	if !viaProxy {
		_, err = e.vectors.EnsureIndex(ctx)
		require.NoError(t, err)
	}
	return e
}

func (e *env) start(t testing.TB, emb embed.Embedder, set *metrics.Set, workers int) *embedpipe.Pipeline {
	t.Helper()
	if emb == nil {
		emb = embed.NewHash()
	}
	p, err := embedpipe.New(embedpipe.Config{
		Audits: e.audits, Vectors: e.vectors, Embedder: emb,
		Workers: workers, BatchSize: 50, PollInterval: 20 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		StatsInterval: 50 * time.Millisecond, Logger: zerolog.Nop(), Metrics: set, Lease: e.lease,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// records makes n remediation audits; distinct of them have distinct texts
// (alert i % distinct), the rest repeat those.
func records(n, distinct int) []wire.Record {
	now := time.Now()
	out := make([]wire.Record, n)
	for i := range out {
		k := i % distinct
		out[i] = wire.Record{ID: wire.NewID(), Kind: wire.KindRemediation, ReceivedAt: now, Remediation: &wire.RemediationAudit{
			RemediationRequestID: fmt.Sprintf("rr-%d", i), AlertName: fmt.Sprintf("Alert%dFiring", k),
			ActionType: "restart-pod", Status: "completed", Namespace: "prod", Cluster: "east",
			Reasoning: fmt.Sprintf("pod api-%d crash looping after deploy %d", k, k),
		}}
	}
	return out
}

func (e *env) write(t testing.TB, recs []wire.Record) {
	t.Helper()
	for i := 0; i < len(recs); i += 25 {
		_, err := e.audits.WriteBatch(context.Background(), sa, recs[i:min(i+25, len(recs))])
		require.NoError(t, err)
	}
}

func count(t testing.TB, dsn, sql string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

func (e *env) backlog(t testing.TB) int {
	t.Helper()
	st, err := e.audits.OutboxStats(context.Background())
	require.NoError(t, err)
	return int(st.Depth)
}

func (e *env) requireAllEmbedded(t *testing.T, recs []wire.Record, distinct int) {
	t.Helper()
	require.Eventually(t, func() bool { return e.backlog(t) == 0 }, 20*time.Second, 20*time.Millisecond, "backlog drains")
	assert.Equal(t, len(recs), count(t, e.vectorDSN, `SELECT count(*) FROM audit_embeddings`), "every audit is linked")
	assert.Equal(t, distinct, count(t, e.vectorDSN, `SELECT count(*) FROM embeddings`), "one vector per distinct document")
	assert.Zero(t, count(t, e.vectorDSN, `SELECT count(*) FROM audit_embeddings l
		WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.content_hash = l.content_hash)`), "no link without its vector")
}

func TestPipeline_EmbedsEveryAuditOnceAndIdenticalTextsShareOneVector(t *testing.T) {
	for _, layout := range []struct {
		name string
		two  bool
	}{{"one database", false}, {"separate vector database", true}} {
		t.Run(layout.name, func(t *testing.T) {
			e := newEnv(t, layout.two, false)
			set := metrics.NewSet()
			e.start(t, nil, set, 3)
			recs := records(200, 40)
			e.write(t, recs)
			e.requireAllEmbedded(t, recs, 40)

			// Audits 0 and 40 have the same semantic text (alert 0): one vector.
			conn, err := pgx.Connect(context.Background(), e.vectorDSN)
			require.NoError(t, err)
			defer conn.Close(context.Background())
			var a, b []byte
			require.NoError(t, conn.QueryRow(context.Background(), `SELECT content_hash FROM audit_embeddings WHERE audit_id = $1`, recs[0].ID).Scan(&a))
			require.NoError(t, conn.QueryRow(context.Background(), `SELECT content_hash FROM audit_embeddings WHERE audit_id = $1`, recs[40].ID).Scan(&b))
			assert.Equal(t, a, b)

			var prom strings.Builder
			set.WritePrometheus(&prom)
			assert.Contains(t, prom.String(), "datastorage_embed_vectors_written_total 40\n")
			assert.Contains(t, prom.String(), "datastorage_embed_dedup_hits_total 160\n")
			assert.Contains(t, prom.String(), `datastorage_embed_duration_seconds_count{provider="hash"}`)
		})
	}
}

func TestPipeline_VectorDatabaseDownBacklogGrowsThenDrains(t *testing.T) {
	e := newEnv(t, true, true)
	e.proxy.SetDown(true)
	set := metrics.NewSet()
	e.start(t, nil, set, 2)
	recs := records(60, 60)
	e.write(t, recs)

	time.Sleep(300 * time.Millisecond) // several failed rounds
	assert.Equal(t, len(recs), e.backlog(t), "nothing leaves the backlog while vectors cannot be written")
	var prom strings.Builder
	require.Eventually(t, func() bool {
		prom.Reset()
		set.WritePrometheus(&prom)
		return strings.Contains(prom.String(), "datastorage_embed_backlog_audits 60\n")
	}, 5*time.Second, 20*time.Millisecond, "the depth gauge shows the backlog")
	assert.NotContains(t, prom.String(), "datastorage_embed_batch_failures_total 0\n")

	e.proxy.SetDown(false)
	_, err := e.vectors.EnsureIndex(context.Background())
	require.NoError(t, err)
	e.requireAllEmbedded(t, recs, 60)
}

// blockingEmbedder stands for a central killed mid-batch: it never answers.
type blockingEmbedder struct{ calls atomic.Int32 }

func (b *blockingEmbedder) Embed(ctx context.Context, _ []string) ([][]float32, error) {
	b.calls.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}
func (*blockingEmbedder) Provider() string { return "blocking" }
func (*blockingEmbedder) Identity() string { return "hash/v1" }

func TestPipeline_BacklogSurvivesARestartBetweenRowCommitAndVectorWrite(t *testing.T) {
	e := newEnv(t, true, false)
	recs := records(30, 30)
	e.write(t, recs) // rows committed, no vector yet
	require.Equal(t, 30, e.backlog(t))

	// First central: it claims a batch and "dies" inside the embed call.
	blocker := &blockingEmbedder{}
	first := e.start(t, blocker, metrics.NewSet(), 1)
	require.Eventually(t, func() bool { return blocker.calls.Load() > 0 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, first.Close(context.Background()))
	assert.Equal(t, 30, e.backlog(t), "the abandoned claim is rolled back: every entry is still there")
	assert.Zero(t, count(t, e.vectorDSN, `SELECT count(*) FROM audit_embeddings`))

	// Second central drains it.
	e.start(t, nil, metrics.NewSet(), 2)
	e.requireAllEmbedded(t, recs, 30)
}

func TestPipeline_EntriesADeadReplicaHeldAreClaimedAgainWithinOneLease(t *testing.T) {
	assert.LessOrEqual(t, embedpipe.DefaultLease, 15*time.Second, "a dead replica holds entries for seconds, not minutes")
	e := newEnv(t, false, false)
	e.lease = 2 * time.Second
	recs := records(30, 30)
	e.write(t, recs)

	// A replica claims every entry and dies, or loses its database in a
	// failover, before it completes or releases them: the lease it wrote
	// (replicated with the entries) is all that holds them.
	dead, err := e.audits.ClaimOutbox(context.Background(), 1000, e.lease)
	require.NoError(t, err)
	require.Len(t, dead.Entries, 30)
	claimed := time.Now()

	e.start(t, nil, metrics.NewSet(), 1)
	require.Eventually(t, func() bool { return e.backlog(t) == 0 }, e.lease+10*time.Second, 20*time.Millisecond)
	took := time.Since(claimed)
	assert.GreaterOrEqual(t, took, e.lease-250*time.Millisecond, "not taken while the lease held")
	t.Logf("claimed again and drained %s after the dead replica's claim (lease %s)", took.Round(time.Millisecond), e.lease)
	e.requireAllEmbedded(t, recs, 30)
}

// slowEmbedder is the hash embedder, taking d per call.
type slowEmbedder struct {
	embed.Embedder
	d     time.Duration
	calls atomic.Int32
}

func (s *slowEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	s.calls.Add(1)
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Embedder.Embed(ctx, texts)
}

func TestPipeline_ARoundLongerThanTheLeaseKeepsItsEntriesByRenewing(t *testing.T) {
	e := newEnv(t, false, false)
	e.lease = time.Second
	recs := records(20, 20)
	e.write(t, recs)
	slow := &slowEmbedder{Embedder: embed.NewHash(), d: 4 * e.lease}
	e.start(t, slow, metrics.NewSet(), 1)
	require.Eventually(t, func() bool { return slow.calls.Load() > 0 }, 5*time.Second, 10*time.Millisecond)

	// Twice the lease into the round, a rival finds nothing to take.
	time.Sleep(2 * e.lease)
	rival, err := e.audits.ClaimOutbox(context.Background(), 1000, e.lease)
	require.NoError(t, err)
	assert.Zero(t, len(rival.Entries), "the working round's lease was renewed")
	rival.Release(context.Background())

	e.requireAllEmbedded(t, recs, 20)
	assert.Equal(t, int32(1), slow.calls.Load(), "one round embedded everything")
}

func TestPipeline_RepeatedClaimStoresNothingTwice(t *testing.T) {
	// A central that wrote the vectors but died before clearing the backlog:
	// the entries are redone, and the write is idempotent.
	e := newEnv(t, false, false)
	recs := records(10, 10)
	e.write(t, recs)
	p := e.start(t, nil, metrics.NewSet(), 1)
	require.NoError(t, p.Close(context.Background()))
	// Re-enqueue the same IDs by hand, as if the clear had been lost.
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	conn, err := pgx.Connect(context.Background(), e.auditDSN)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	p2 := e.start(t, nil, metrics.NewSet(), 1)
	e.requireAllEmbedded(t, recs, 10)
	require.NoError(t, p2.Close(context.Background()))
	_, err = conn.Exec(context.Background(), `INSERT INTO embedding_outbox (remediation_ids, workflow_ids, service_account)
		VALUES ($1, '{}', $2)`, ids, sa)
	require.NoError(t, err)
	e.start(t, nil, metrics.NewSet(), 1)
	e.requireAllEmbedded(t, recs, 10)
}

func TestPipeline_RelinksLinksWithoutAWriterForEachWriter(t *testing.T) {
	// A separate vector database upgraded from before records had owners
	// (migration 0005 could not see the audit tables): its links have no
	// writer. Two writers have since stored records under the linked ID.
	e := newEnv(t, true, false)
	recs := records(1, 1)
	const other = "kubernaut-system/other-sa"
	e.write(t, recs)
	_, err := e.audits.WriteBatch(context.Background(), other, recs)
	require.NoError(t, err)
	conn, err := pgx.Connect(context.Background(), e.vectorDSN)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `INSERT INTO audit_embeddings (audit_id, kind, service_account, content_hash, occurred_at)
		VALUES ($1, $2, '', 'old', now())`, recs[0].ID, string(recs[0].Kind))
	require.NoError(t, err)

	e.start(t, nil, metrics.NewSet(), 1)
	require.Eventually(t, func() bool {
		return e.backlog(t) == 0 && count(t, e.vectorDSN, `SELECT count(*) FROM audit_embeddings WHERE service_account = ''`) == 0
	}, 20*time.Second, 20*time.Millisecond, "the unowned link is replaced")
	rows, err := conn.Query(context.Background(), `SELECT service_account FROM audit_embeddings WHERE audit_id = $1 ORDER BY 1`, recs[0].ID)
	require.NoError(t, err)
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{other, sa}, owners, "one link per writer of the ID")
}

func TestNew_ValidatesConfig(t *testing.T) {
	_, err := embedpipe.New(embedpipe.Config{})
	require.ErrorContains(t, err, "Audits")
	_, err = embedpipe.New(embedpipe.Config{Audits: &storage.DB{}, Vectors: &storage.VectorDB{}, Embedder: embed.NewHash(), Workers: -1})
	require.ErrorContains(t, err, "Workers")
}
