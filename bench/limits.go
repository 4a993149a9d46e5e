package bench

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/bench/loadgen"
)

// copyBatch is the rows per COPY (one transaction each) of the COPY limit.
const copyBatch = 5000

// copyLimit COPYs cfg.CopyRows records of the standard mix into the audit
// tables of a freshly migrated database (their indexes included), one
// connection, copyBatch rows per transaction. It returns rows and seconds.
func copyLimit(ctx context.Context, cfg Config, centralBin, dsn string) (int, time.Duration, error) {
	if err := migrate(ctx, centralBin, dsn); err != nil {
		return 0, 0, err
	}
	recs := genRecords(cfg, cfg.CopyRows)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	start := time.Now()
	for off := 0; off < len(recs); off += copyBatch {
		var rem, wf [][]any
		for i := off; i < min(off+copyBatch, len(recs)); i++ {
			sa := loadgen.Writers[i%4].QualifiedSA()
			if recs[i].Remediation != nil {
				rem = append(rem, rowValues(&recs[i], sa))
			} else {
				wf = append(wf, rowValues(&recs[i], sa))
			}
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return 0, 0, err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"remediation_audit"}, remediationColumns, pgx.CopyFromRows(rem)); err != nil {
			_ = tx.Rollback(ctx)
			return 0, 0, fmt.Errorf("copy: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"workflow_audit"}, workflowColumns, pgx.CopyFromRows(wf)); err != nil {
			_ = tx.Rollback(ctx)
			return 0, 0, fmt.Errorf("copy: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, 0, err
		}
	}
	return len(recs), time.Since(start), nil
}

// embeddingsDDL is the spec's vector table with its HNSW index.
const embeddingsDDL = `CREATE TABLE IF NOT EXISTS audit_embeddings (
    audit_id VARCHAR(255) PRIMARY KEY,
    embedding vector(768) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS audit_embeddings_hnsw ON audit_embeddings USING hnsw (embedding vector_cosine_ops);`

// vectorBatch is the rows per binary COPY of the vector limit.
const vectorBatch = 100

// vectorCopyLimit COPYs (binary) hash embeddings of the standard mix into
// the HNSW-indexed table for cfg.VectorDuration, vectorBatch per
// transaction, on one connection.
func vectorCopyLimit(ctx context.Context, cfg Config, dsn string) (int, time.Duration, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, embeddingsDDL); err != nil {
		return 0, 0, err
	}
	if err := pgxvec.RegisterTypes(ctx, conn); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	n := 0
	for time.Since(start) < cfg.VectorDuration && ctx.Err() == nil {
		recs := genRecords(cfg, vectorBatch)
		rows := make([][]any, len(recs))
		for i := range recs {
			rows[i] = []any{recs[i].ID, pgvector.NewVector(hashEmbed(embeddingText(&recs[i])))}
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"audit_embeddings"}, []string{"audit_id", "embedding"}, pgx.CopyFromRows(rows)); err != nil {
			return n, time.Since(start), fmt.Errorf("vector copy: %w", err)
		}
		n += len(rows)
	}
	return n, time.Since(start), nil
}

// migrate applies the audit schema with the real binary: central migrate.
func migrate(ctx context.Context, centralBin, dsn string) error {
	out, err := exec.CommandContext(ctx, centralBin, "migrate", "--database-url", dsn, "--log-level", "warn").CombinedOutput()
	if err != nil {
		return fmt.Errorf("central migrate: %w\n%s", err, out)
	}
	return nil
}

// bareServer is a fasthttp handler that answers 201 to anything: the HTTP
// ceiling of this machine for the bench's client.
func bareServer() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	body := []byte(`{"auditID":"audit-00000000-0000-7000-8000-000000000000","status":"persisted"}`)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusCreated)
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Shutdown() }, nil
}
