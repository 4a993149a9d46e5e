package embedpipe_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/embed"
	"github.com/kubernaut/datastorage/central/embedpipe"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// corpus makes realistic, mostly distinct remediation audits: alert names,
// actions, namespaces and clusters from small sets, reasoning from a 2000-word
// vocabulary, so that documents share words the way incidents do.
type corpus struct{ rng *rand.Rand }

func newCorpus(seed uint64) *corpus { return &corpus{rng: rand.New(rand.NewPCG(seed, seed+1))} }

var (
	alerts  = []string{"KubePodCrashLooping", "KubePodNotReady", "NodeDiskPressure", "NodeMemoryPressure", "HighCPUUsage", "HighMemoryUsage", "KubeJobFailed", "PersistentVolumeFull", "CertificateExpiring", "TargetDown", "KubeDeploymentReplicasMismatch", "EtcdHighLatency"}
	actions = []string{"restart-pod", "scale-deployment", "drain-node", "rollback-deployment", "expand-volume", "cordon-node", "delete-pod", "increase-memory-limit"}
	status  = []string{"completed", "failed", "in-progress", "skipped"}
)

func (c *corpus) record(unique int) wire.Record {
	r := c.rng
	words := make([]string, 0, 12)
	for range 8 + r.IntN(5) {
		words = append(words, fmt.Sprintf("w%d", r.IntN(2000)))
	}
	return wire.Record{ID: wire.NewID(), Kind: wire.KindRemediation, ReceivedAt: time.Now(), Remediation: &wire.RemediationAudit{
		RemediationRequestID: fmt.Sprintf("rr-%d", unique),
		AlertName:            alerts[r.IntN(len(alerts))], ActionType: actions[r.IntN(len(actions))],
		Status: status[r.IntN(len(status))], Reasoning: strings.Join(words, " ") + fmt.Sprintf(" incident %d", unique),
		Namespace: fmt.Sprintf("ns-%d", r.IntN(20)), Cluster: fmt.Sprintf("cluster-%d", r.IntN(5)),
		TargetResource: fmt.Sprintf("deployment/app-%d", r.IntN(300)),
	}}
}

// vectorsOf embeds records as the pipeline does.
func vectorsOf(recs []wire.Record) []storage.Vector {
	h := embed.NewHash()
	out := make([]storage.Vector, len(recs))
	for i := range recs {
		doc := embed.Document(&recs[i])
		v := make([]float32, embed.Dimensions)
		embed.EmbedInto(doc, v)
		out[i] = storage.Vector{ContentHash: embed.ContentHash(h.Identity(), doc), Embedding: pgvector.NewVector(v)}
	}
	return out
}

func linksOf(recs []wire.Record, vecs []storage.Vector) []storage.Link {
	out := make([]storage.Link, len(recs))
	for i := range recs {
		out[i] = storage.Link{RecordRef: storage.RecordRef{Kind: recs[i].Kind, ServiceAccount: "ns/sa", ID: recs[i].ID}, ContentHash: vecs[i].ContentHash,
			Cluster: recs[i].Remediation.Cluster, Namespace: recs[i].Remediation.Namespace, OccurredAt: recs[i].ReceivedAt}
	}
	return out
}

const benchVectorBatch = 256

// BenchmarkVectorWrites reports, in one run:
//   - raw-vectors/s: binary COPY (pgx CopyFrom, pgvector-go) of 768-d vectors, in
//     half precision, into the HNSW-indexed embeddings table, one transaction
//     per batch of 256;
//   - pipeline-vectors/s: storage.VectorDB.Write (COPY of the vectors plus their
//     links, one transaction) of equal batches into a second, equally indexed
//     database, batches alternating with the raw ones; pipeline/raw is their ratio;
//   - mix-audits/s: audits embedded per second by the running pipeline (2
//     workers, hash embedder) draining a backlog where 80% of records repeat one
//     of 200 distinct alert texts and 20% are distinct; mix/raw is the ratio to
//     raw-vectors/s.
//
// go test -run '^$' -bench VectorWrites -benchtime 1x ./central/embedpipe/
func BenchmarkVectorWrites(b *testing.B) {
	const perSide = 1024 // vectors per side per iteration
	ctx := context.Background()
	rawEnv, pipeEnv := newEnv(b, false, false), newEnv(b, false, false)
	conn, err := pgx.Connect(ctx, rawEnv.vectorDSN)
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close(ctx) })
	require.NoError(b, pgxvec.RegisterTypes(ctx, conn))
	c := newCorpus(1)

	var rawTime, pipeTime, mixTime time.Duration
	var mixAudits int
	for i := 0; i < b.N; i++ {
		for j := 0; j < perSide; j += benchVectorBatch {
			b.StopTimer()
			rr, pr := make([]wire.Record, benchVectorBatch), make([]wire.Record, benchVectorBatch)
			for k := range rr {
				rr[k], pr[k] = c.record(i*perSide+j+k), c.record(i*perSide+j+k)
			}
			rv, pv := vectorsOf(rr), vectorsOf(pr)
			pl := linksOf(pr, pv)
			b.StartTimer()
			raw := func() {
				t0 := time.Now()
				require.NoError(b, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					_, err := tx.CopyFrom(ctx, pgx.Identifier{"embeddings"}, []string{"content_hash", "embedding"},
						pgx.CopyFromSlice(len(rv), func(k int) ([]any, error) {
							// As stored: half precision (the hash embedder's vectors are unit length already).
							return []any{rv[k].ContentHash, pgvector.NewHalfVector(rv[k].Embedding.Slice())}, nil
						}))
					return err
				}))
				rawTime += time.Since(t0)
			}
			pipe := func() {
				t0 := time.Now()
				n, err := pipeEnv.vectors.Write(ctx, pv, pl)
				require.NoError(b, err)
				require.Equal(b, len(pv), n)
				pipeTime += time.Since(t0)
			}
			if (j/benchVectorBatch)%2 == 0 {
				raw()
				pipe()
			} else {
				pipe()
				raw()
			}
		}

		// The 80/20 mix, through the whole pipeline.
		b.StopTimer()
		mixEnv := newEnv(b, false, false)
		texts := make([]wire.Record, 200)
		for k := range texts {
			texts[k] = c.record(-k - 1)
		}
		recs := make([]wire.Record, 5*perSide)
		for k := range recs {
			if c.rng.IntN(5) == 0 {
				recs[k] = c.record(1_000_000 + i*len(recs) + k)
			} else {
				r := texts[c.rng.IntN(len(texts))]
				rem := *r.Remediation
				recs[k] = wire.Record{ID: wire.NewID(), Kind: r.Kind, ReceivedAt: r.ReceivedAt, Remediation: &rem}
			}
		}
		for k := 0; k < len(recs); k += 500 {
			_, err := mixEnv.audits.WriteBatch(ctx, sa, recs[k:min(k+500, len(recs))])
			require.NoError(b, err)
		}
		b.StartTimer()
		t0 := time.Now()
		p, err := embedpipe.New(embedpipe.Config{Audits: mixEnv.audits, Vectors: mixEnv.vectors, Embedder: embed.NewHash(),
			Workers: 2, BatchSize: 500, PollInterval: 5 * time.Millisecond, Logger: zerolog.Nop(), Metrics: metrics.NewSet()})
		require.NoError(b, err)
		for mixEnv.backlog(b) > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		mixTime += time.Since(t0)
		require.NoError(b, p.Close(ctx))
		mixAudits += len(recs)
	}
	raw := float64(b.N*perSide) / rawTime.Seconds()
	pipe := float64(b.N*perSide) / pipeTime.Seconds()
	mix := float64(mixAudits) / mixTime.Seconds()
	b.ReportMetric(raw, "raw-vectors/s")
	b.ReportMetric(pipe, "pipeline-vectors/s")
	b.ReportMetric(pipe/raw, "pipeline/raw")
	b.ReportMetric(mix, "mix-audits/s")
	b.ReportMetric(mix/raw, "mix/raw")
}

// BenchmarkSearch loads 100k distinct audit vectors (COPY, no index), builds
// the HNSW index afterwards (the defaults: m 16, ef_construction 32), then
// times similarity queries (a stored audit's document with two reasoning
// words changed) through VectorDB.Search with the default ef_search, in two
// sets of 200: the first right after the build (cold-p50/p99-ms: the index
// not yet in memory), the second after it (p50/p99-ms). recall@10 is the
// share of the indexed top 10 whose full-precision cosine similarity is
// within the exact 10th, computed in Go from the float32 embeddings (ties
// count as hits), over both sets. Last, insert-vectors/s: VectorDB.Write of
// 1024 new vectors in batches of 256 into the 100k graph, as the embedding
// pipeline writes them.
//
// It takes minutes (the index build dominates); run it alone:
// go test -run '^$' -bench Search -benchtime 1x -timeout 30m ./central/embedpipe/
func BenchmarkSearch(b *testing.B) {
	const (
		stored  = 100_000
		queries = 200
		k       = 10
	)
	ctx := context.Background()
	e := newEnv(b, false, false) // creates the HNSW index on the empty table…
	conn, err := pgx.Connect(ctx, e.vectorDSN)
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close(ctx) })
	require.NoError(b, pgxvec.RegisterTypes(ctx, conn))
	_, err = conn.Exec(ctx, `DROP INDEX idx_embeddings_embedding_hnsw`) // …which is rebuilt after loading
	require.NoError(b, err)

	c := newCorpus(7)
	recs := make([]wire.Record, 0, stored)
	unit := make(map[string][]float32, stored) // audit ID → its embedding, unit length
	t0 := time.Now()
	for len(recs) < stored {
		batch := make([]wire.Record, 5000)
		for i := range batch {
			batch[i] = c.record(len(recs) + i)
		}
		vecs := vectorsOf(batch)
		for i := range batch {
			unit[batch[i].ID] = normalized(vecs[i].Embedding.Slice())
		}
		_, err := e.vectors.Write(ctx, vecs, linksOf(batch, vecs))
		require.NoError(b, err)
		recs = append(recs, batch...)
	}
	load := time.Since(t0)
	t0 = time.Now()
	_, err = e.vectors.EnsureIndex(ctx)
	require.NoError(b, err)
	build := time.Since(t0)
	for _, stmt := range []string{`VACUUM ANALYZE embeddings`, `VACUUM ANALYZE audit_embeddings`} {
		_, err = conn.Exec(ctx, stmt)
		require.NoError(b, err)
	}

	query := func() []float32 {
		r := recs[c.rng.IntN(len(recs))]
		rem := *r.Remediation
		w := strings.Fields(rem.Reasoning)
		w[0], w[1] = fmt.Sprintf("w%d", c.rng.IntN(2000)), fmt.Sprintf("w%d", c.rng.IntN(2000))
		rem.Reasoning = strings.Join(w, " ")
		v := make([]float32, embed.Dimensions)
		embed.EmbedInto(embed.Document(&wire.Record{Kind: r.Kind, Remediation: &rem}), v)
		return normalized(v)
	}
	// A query and the exact similarity of its k-th nearest, found before
	// any query is timed.
	type probe struct {
		q   []float32
		kth float32
	}
	set := func() []probe {
		ps := make([]probe, queries)
		for i := range ps {
			q := query()
			top := make([]float32, 0, k+1) // descending
			for _, v := range unit {
				sim := dot(q, v)
				if len(top) == k && sim <= top[k-1] {
					continue
				}
				at, _ := slices.BinarySearchFunc(top, sim, func(a, b float32) int { return cmp.Compare(b, a) })
				top = slices.Insert(top, at, sim)[:min(len(top)+1, k)]
			}
			ps[i] = probe{q, top[k-1]}
		}
		return ps
	}
	cold, warm := set(), set()
	var hits, total int
	// run times one set of queries and adds to recall.
	run := func(ps []probe) (p50, p99 float64) {
		lat := make([]time.Duration, len(ps))
		for i, p := range ps {
			t := time.Now()
			got, err := e.vectors.Search(ctx, pgvector.NewVector(p.q), storage.SearchFilter{}, k)
			lat[i] = time.Since(t)
			require.NoError(b, err)
			for _, m := range got {
				if dot(p.q, unit[m.ID]) >= p.kth-1e-6 {
					hits++
				}
			}
			total += k
		}
		slices.Sort(lat)
		return float64(lat[len(lat)/2].Microseconds()) / 1000, float64(lat[len(lat)*99/100].Microseconds()) / 1000
	}

	b.ResetTimer()
	var coldP50, coldP99, p50, p99 float64
	for n := 0; n < b.N; n++ {
		coldP50, coldP99 = run(cold)
		p50, p99 = run(warm)
	}
	b.StopTimer()

	t0 = time.Now()
	const inserts, batch = 1024, 256
	for i := 0; i < inserts; i += batch {
		more := make([]wire.Record, batch)
		for j := range more {
			more[j] = c.record(stored + i + j)
		}
		vecs := vectorsOf(more)
		n, err := e.vectors.Write(ctx, vecs, linksOf(more, vecs))
		require.NoError(b, err)
		require.Equal(b, batch, n)
	}
	b.ReportMetric(inserts/time.Since(t0).Seconds(), "insert-vectors/s")
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(coldP50, "cold-p50-ms")
	b.ReportMetric(coldP99, "cold-p99-ms")
	b.ReportMetric(float64(hits)/float64(total), "recall@10")
	b.ReportMetric(load.Seconds(), "load-s")
	b.ReportMetric(build.Seconds(), "index-build-s")
	b.ReportMetric(float64(stored), "vectors")
}

// normalized is v scaled to unit length.
func normalized(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / math.Sqrt(sum))
	}
	return out
}

// dot is the cosine similarity of two unit vectors.
func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
