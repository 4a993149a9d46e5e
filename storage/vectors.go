package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/kubernaut/datastorage/wire"
)

// Dimensions is the size of every stored embedding (halfvec(768)).
const Dimensions = 768

// HNSW defaults, measured by BenchmarkSearch at 100k vectors against
// pgvector's own (m 16, ef_construction 64, ef_search 40): ef_search raised
// so that recall@10 stays above 0.95, ef_construction halved, which makes
// inserts into a large graph about 1.6× as fast for a recall@10 of 0.98
// instead of 0.985.
const (
	DefaultHNSWM              = 16
	DefaultHNSWEfConstruction = 32
	DefaultHNSWEfSearch       = 100
)

// pgvector's defaults, in force for an index created without options.
const pgvectorM, pgvectorEfConstruction = 16, 64

// HNSWConfig is the HNSW index on embeddings.embedding (cosine distance).
// M and EfConstruction shape the graph when the index is built: higher is
// better recall and slower inserts. They apply when EnsureIndex creates the
// index; changing them later needs ALTER INDEX … SET and a REINDEX
// (EnsureIndex reports the stored values). EfSearch is the candidate list
// of each query (hnsw.ef_search): higher is better recall and slower
// search; it applies per query.
type HNSWConfig struct {
	M              int // pgvector allows 2..100. Zero: DefaultHNSWM.
	EfConstruction int // 4..1000, and ≥ 2·M. Zero: DefaultHNSWEfConstruction.
	EfSearch       int // 1..1000. Zero: DefaultHNSWEfSearch.
}

// WithDefaults returns c with its zero fields set (exported: cmd/central
// reports the effective values).
func (c HNSWConfig) WithDefaults() HNSWConfig {
	c.M = cmp.Or(c.M, DefaultHNSWM)
	c.EfConstruction = cmp.Or(c.EfConstruction, DefaultHNSWEfConstruction)
	c.EfSearch = cmp.Or(c.EfSearch, DefaultHNSWEfSearch)
	return c
}

// Validate checks the ranges pgvector accepts (zero means the default).
func (c HNSWConfig) Validate() error {
	d := c.WithDefaults()
	switch {
	case d.M < 2 || d.M > 100:
		return fmt.Errorf("storage: HNSWConfig.M must be in 2..100, got %d", c.M)
	case d.EfConstruction < 4 || d.EfConstruction > 1000:
		return fmt.Errorf("storage: HNSWConfig.EfConstruction must be in 4..1000, got %d", c.EfConstruction)
	case d.EfConstruction < 2*d.M:
		return fmt.Errorf("storage: HNSWConfig.EfConstruction (%d) must be at least 2·M (%d)", d.EfConstruction, 2*d.M)
	case d.EfSearch < 1 || d.EfSearch > 1000:
		return fmt.Errorf("storage: HNSWConfig.EfSearch must be in 1..1000, got %d", c.EfSearch)
	}
	return nil
}

// VectorDB is the vector database (pgvector): embeddings, the audit links
// and similarity search. It may be the audit database itself.
type VectorDB struct {
	pool      *pgxpool.Pool
	hnsw      HNSWConfig
	closeOnce sync.Once
}

// OpenVectors validates cfg and creates the pool; each connection registers
// pgvector's types (the vector extension must exist: run Migrate first).
func OpenVectors(ctx context.Context, cfg Config, hnsw HNSWConfig) (*VectorDB, error) {
	const op = "storage: open vectors"
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := hnsw.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cfg = cfg.withDefaults()
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	pcfg.MaxConns = cfg.MaxConns
	pcfg.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	pcfg.AfterConnect = pgxvec.RegisterTypes
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &VectorDB{pool: pool, hnsw: hnsw.WithDefaults()}, nil
}

// Close closes the pool. It is idempotent.
func (v *VectorDB) Close() { v.closeOnce.Do(v.pool.Close) }

// HNSW is the index configuration in force.
func (v *VectorDB) HNSW() HNSWConfig { return v.hnsw }

const hnswIndex = "idx_embeddings_embedding_hnsw"

// EnsureIndex creates the HNSW index (cosine distance over the halfvec
// column) with the configured m and ef_construction unless it exists, under
// an advisory lock so that replicas starting together build it once. It
// returns the parameters of the index as stored, which differ from the
// configuration when the index was built earlier with others.
func (v *VectorDB) EnsureIndex(ctx context.Context) (HNSWConfig, error) {
	const op = "storage: ensure HNSW index"
	got := v.hnsw
	err := pgx.BeginFunc(ctx, v.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('datastorage.embeddings.hnsw'))`); err != nil {
			return err
		}
		// Building the index on a loaded table takes long: lift the memory
		// limit for this transaction so the graph is built in memory.
		if _, err := tx.Exec(ctx, `SET LOCAL maintenance_work_mem = '512MB'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON embeddings
			USING hnsw (embedding halfvec_cosine_ops) WITH (m = %d, ef_construction = %d)`,
			hnswIndex, v.hnsw.M, v.hnsw.EfConstruction)); err != nil {
			return err
		}
		var opts []string
		if err := tx.QueryRow(ctx, `SELECT coalesce(reloptions, '{}') FROM pg_class WHERE relname = $1`, hnswIndex).Scan(&opts); err != nil {
			return err
		}
		got.M, got.EfConstruction = pgvectorM, pgvectorEfConstruction
		for _, o := range opts {
			k, val, _ := strings.Cut(o, "=")
			var n int
			if _, err := fmt.Sscan(val, &n); err != nil {
				continue
			}
			switch k {
			case "m":
				got.M = n
			case "ef_construction":
				got.EfConstruction = n
			}
		}
		return nil
	})
	if err != nil {
		return HNSWConfig{}, wrapErr(op, err)
	}
	return got, nil
}

// Vector is one embedding document's vector, keyed by the document's
// content hash. It is stored in half precision (see halfOf).
type Vector struct {
	ContentHash []byte
	Embedding   pgvector.Vector
}

// Link ties an audit to the vector of its embedding document, with the
// columns search filters on.
type Link struct {
	RecordRef
	ContentHash []byte
	Cluster     string // "" stored as NULL
	Namespace   string // "" stored as NULL
	OccurredAt  time.Time
}

// KnownHashes returns which of hashes already have a stored vector.
func (v *VectorDB) KnownHashes(ctx context.Context, hashes [][]byte) (map[string]bool, error) {
	if len(hashes) == 0 {
		return map[string]bool{}, nil
	}
	known, err := collectHashes(v.pool.Query(ctx, knownHashesSQL, hashes))
	if err != nil {
		return nil, wrapErr("storage: known hashes", err)
	}
	return known, nil
}

const knownHashesSQL = `SELECT content_hash FROM embeddings WHERE content_hash = ANY($1)`

func collectHashes(rows pgx.Rows, err error) (map[string]bool, error) {
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool)
	var h []byte
	_, err = pgx.ForEachRow(rows, []any{&h}, func() error {
		known[string(h)] = true
		return nil
	})
	return known, err
}

// Write stores vectors and links in one transaction, idempotently: a vector
// whose content hash is stored already, or a link whose audit is linked
// already, changes nothing. It returns how many vectors were inserted.
// Writes that insert vectors run one at a time (an advisory lock).
//
// Vectors go in by binary COPY, those stored meanwhile left out: once the
// lock is held, the hashes are looked up again, so that a vector another
// worker stored since the caller looked (the same alert text, embedded by
// both) does not fail the COPY, whose inserts into the graph would all be
// undone and done again. Should a COPY still meet a stored hash (a writer
// that does not take the lock), the transaction is retried with INSERT …
// ON CONFLICT DO NOTHING. Links go in with one INSERT … unnest.
func (v *VectorDB) Write(ctx context.Context, vectors []Vector, links []Link) (int, error) {
	const op = "storage: write vectors"
	n, err := v.write(ctx, vectors, links, true)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		n, err = v.write(ctx, vectors, links, false)
	}
	if err != nil {
		return 0, wrapErr(op, err)
	}
	return n, nil
}

const insertVectors = `INSERT INTO embeddings (content_hash, embedding)
SELECT * FROM unnest($1::bytea[], $2::halfvec[]) ON CONFLICT (content_hash) DO NOTHING`

// halfOf is v as stored: scaled to unit length, then in half precision.
// Cosine distance ignores length, and a unit vector's components are all
// within half precision's range (±65504), whatever scale an embedder
// returns. A zero vector stays zero.
func halfOf(v pgvector.Vector) pgvector.HalfVector {
	f := v.Slice()
	var sum float64
	for _, x := range f {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return pgvector.NewHalfVector(f)
	}
	scale := 1 / math.Sqrt(sum)
	unit := make([]float32, len(f))
	for i, x := range f {
		unit[i] = float32(float64(x) * scale)
	}
	return pgvector.NewHalfVector(unit)
}

const insertLinks = `INSERT INTO audit_embeddings (audit_id, kind, service_account, content_hash, cluster, namespace, occurred_at)
SELECT id, kind, sa, hash, NULLIF(cluster, ''), NULLIF(namespace, ''), occurred_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::timestamptz[])
    AS t(id, kind, sa, hash, cluster, namespace, occurred_at)
ON CONFLICT (audit_id, kind, service_account) DO NOTHING`

func (v *VectorDB) write(ctx context.Context, vectors []Vector, links []Link, useCopy bool) (int, error) {
	var inserted int
	err := pgx.BeginFunc(ctx, v.pool, func(tx pgx.Tx) error {
		if len(vectors) > 0 {
			fresh, err := lockVectorWrites(ctx, tx, vectors)
			if err != nil {
				return err
			}
			switch {
			case len(fresh) == 0: // all stored meanwhile
			case useCopy:
				n, err := tx.CopyFrom(ctx, pgx.Identifier{"embeddings"}, []string{"content_hash", "embedding"},
					pgx.CopyFromSlice(len(fresh), func(i int) ([]any, error) {
						return []any{fresh[i].ContentHash, halfOf(fresh[i].Embedding)}, nil
					}))
				if err != nil {
					return fmt.Errorf("copy: %w", err)
				}
				inserted = int(n)
			default:
				hashes := make([][]byte, len(fresh))
				vecs := make([]pgvector.HalfVector, len(fresh))
				for i := range fresh {
					hashes[i], vecs[i] = fresh[i].ContentHash, halfOf(fresh[i].Embedding)
				}
				tag, err := tx.Exec(ctx, insertVectors, hashes, vecs)
				if err != nil {
					return fmt.Errorf("insert: %w", err)
				}
				inserted = int(tag.RowsAffected())
			}
		}
		if len(links) > 0 {
			n := len(links)
			ids, kinds, sas, clusters, namespaces := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			hashes, times := make([][]byte, n), make([]time.Time, n)
			for i, l := range links {
				ids[i], kinds[i], sas[i], hashes[i] = l.ID, string(l.Kind), l.ServiceAccount, l.ContentHash
				clusters[i], namespaces[i], times[i] = l.Cluster, l.Namespace, l.OccurredAt
			}
			if _, err := tx.Exec(ctx, insertLinks, ids, kinds, sas, hashes, clusters, namespaces, times); err != nil {
				return fmt.Errorf("links: %w", err)
			}
		}
		return nil
	})
	return inserted, err
}

// lockVectorWrites takes the lock that lets one vector writer at a time
// into the graph, across workers and replicas (concurrent inserts into the
// HNSW graph contend so much that two at once took 3-5× as long as the same
// two in turn: pipeline benchmark, 2.1× → 4.0× the raw vector rate on the
// 80/20 mix), and returns the vectors not stored by the writers before it.
// The look-up rides in the same round trip; it runs after the lock is
// granted, so it sees what they committed.
func lockVectorWrites(ctx context.Context, tx pgx.Tx, vectors []Vector) ([]Vector, error) {
	hashes := make([][]byte, len(vectors))
	for i := range vectors {
		hashes[i] = vectors[i].ContentHash
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock(hashtext('datastorage.embeddings.insert'))`)
	b.Queue(knownHashesSQL, hashes)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	stored, err := collectHashes(br.Query())
	if err != nil {
		return nil, fmt.Errorf("look up hashes: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("look up hashes: %w", err)
	}
	return slices.DeleteFunc(slices.Clone(vectors), func(v Vector) bool { return stored[string(v.ContentHash)] }), nil
}

// UnownedLinks returns up to limit links whose writer is not known (made
// before records had owners, in a vector database apart from the audit one:
// migration 0005), as refs with an empty ServiceAccount.
func (v *VectorDB) UnownedLinks(ctx context.Context, limit int) ([]RecordRef, error) {
	rows, err := v.pool.Query(ctx, `SELECT kind, audit_id FROM audit_embeddings
		WHERE service_account = '' ORDER BY kind, audit_id LIMIT $1`, limit)
	if err != nil {
		return nil, wrapErr("storage: unowned links", err)
	}
	var (
		out      []RecordRef
		kind, id string
	)
	_, err = pgx.ForEachRow(rows, []any{&kind, &id}, func() error {
		out = append(out, RecordRef{Kind: wire.Kind(kind), ID: id})
		return nil
	})
	if err != nil {
		return nil, wrapErr("storage: unowned links", err)
	}
	return out, nil
}

// DeleteUnownedLinks deletes the links of refs (kind and ID) whose writer
// is not known; links with a writer are left alone.
func (v *VectorDB) DeleteUnownedLinks(ctx context.Context, refs []RecordRef) error {
	kinds, ids := make([]string, len(refs)), make([]string, len(refs))
	for i, r := range refs {
		kinds[i], ids[i] = string(r.Kind), r.ID
	}
	_, err := v.pool.Exec(ctx, `DELETE FROM audit_embeddings l USING unnest($1::text[], $2::text[]) AS k(kind, id)
		WHERE l.service_account = '' AND l.kind = k.kind AND l.audit_id = k.id`, kinds, ids)
	if err != nil {
		return wrapErr("storage: delete unowned links", err)
	}
	return nil
}

// SearchFilter narrows a similarity search; zero fields do not filter.
type SearchFilter struct {
	Cluster   string
	Namespace string
	Kind      wire.Kind
	Since     time.Time // occurred at or after
	Until     time.Time // occurred before
}

// Match is one audit found by similarity.
type Match struct {
	RecordRef
	Similarity float64 // 1 − cosine distance
	OccurredAt time.Time
}

// Search returns the limit audits most similar to query (cosine), most
// similar first, among those that pass the filter. It runs with the
// configured hnsw.ef_search and pgvector 0.8's iterative index scan
// (relaxed_order), so a selective filter still yields limit results when
// that many exist; the results are re-sorted exactly.
func (v *VectorDB) Search(ctx context.Context, query pgvector.Vector, f SearchFilter, limit int) ([]Match, error) {
	const op = "storage: similarity search"
	if limit <= 0 {
		return nil, fmt.Errorf("%s: limit must be positive, got %d", op, limit)
	}
	var (
		where []string
		args  = []any{halfOf(query), limit}
	)
	add := func(cond string, val any) {
		args = append(args, val)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Cluster != "" {
		add("l.cluster = $%d", f.Cluster)
	}
	if f.Namespace != "" {
		add("l.namespace = $%d", f.Namespace)
	}
	if f.Kind != "" {
		add("l.kind = $%d", string(f.Kind))
	}
	if !f.Since.IsZero() {
		add("l.occurred_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("l.occurred_at < $%d", f.Until)
	}
	cond := ""
	if len(where) > 0 {
		cond = "WHERE " + strings.Join(where, " AND ")
	}
	sql := `WITH nearest AS MATERIALIZED (
		SELECT l.audit_id, l.kind, l.service_account, l.occurred_at, e.embedding <=> $1 AS distance
		FROM embeddings e JOIN audit_embeddings l ON l.content_hash = e.content_hash
		` + cond + `
		ORDER BY e.embedding <=> $1 LIMIT $2)
	SELECT audit_id, kind, service_account, 1 - distance, occurred_at FROM nearest
	ORDER BY distance, audit_id, kind, service_account`

	// The settings hold for this transaction only; the transaction, its
	// settings and the query go in one round trip.
	var out []Match
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{AccessMode: pgx.ReadOnly})
	b.Queue(fmt.Sprintf("SET LOCAL hnsw.ef_search = %d", v.hnsw.EfSearch))
	b.Queue("SET LOCAL hnsw.iterative_scan = relaxed_order")
	b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		var (
			m    Match
			kind string
			sim  pgtype.Float8
		)
		_, err := pgx.ForEachRow(rows, []any{&m.ID, &kind, &m.ServiceAccount, &sim, &m.OccurredAt}, func() error {
			m.Kind, m.Similarity = wire.Kind(kind), sim.Float64
			out = append(out, m)
			return nil
		})
		return err
	})
	b.Queue("COMMIT")
	conn, err := v.pool.Acquire(ctx)
	if err != nil {
		return nil, wrapErr(op, err)
	}
	defer conn.Release()
	br := conn.SendBatch(ctx, b)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		// A failed statement aborted the transaction and the server skipped
		// COMMIT: end it, so the connection goes back to the pool idle.
		rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		_ = tx.Rollback(rbCtx)
		cancel()
		return nil, wrapErr(op, err)
	}
	return out, nil
}

// Ping checks the vector database answers.
func (v *VectorDB) Ping(ctx context.Context) error {
	if err := v.pool.Ping(ctx); err != nil {
		return wrapErr("storage: ping vectors", err)
	}
	return nil
}

// linkDeleteBatch bounds each DELETE of links.
const linkDeleteBatch = 10_000

// DeleteLinks deletes the embedding links of kind's audits whose event time
// is in [from, to) (from zero: no lower bound), in batches: retention's
// clean-up after it dropped that partition. The vectors stay: one may be
// shared with audits still kept, and a vector is a function of its
// document only.
func (v *VectorDB) DeleteLinks(ctx context.Context, kind wire.Kind, from, to time.Time) (int64, error) {
	var lower *time.Time
	if !from.IsZero() {
		lower = &from
	}
	var total int64
	for {
		tag, err := v.pool.Exec(ctx, `DELETE FROM audit_embeddings WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM audit_embeddings WHERE kind = $1
			AND occurred_at >= coalesce($2, '-infinity'::timestamptz) AND occurred_at < $3
			LIMIT $4))`, string(kind), lower, to, linkDeleteBatch)
		if err != nil {
			return total, wrapErr("storage: delete links", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < linkDeleteBatch {
			return total, nil
		}
	}
}
