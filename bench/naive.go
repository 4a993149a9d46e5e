package bench

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/wire"
)

// naiveServer is the spec's own design (integration-points.md, "Complete
// Audit Write Flow" and "Pattern 2"), in-process: per request decode and
// validate, INSERT the audit row, generate the embedding, INSERT it into the
// HNSW-indexed vector(768) table (as the spec's text literal), then answer
// 201. It authenticates nobody and uses no idempotency key: both favour it.
// It runs inside the bench process, so its CPU is the bench's.
type naiveServer struct {
	pool *pgxpool.Pool
	srv  *fasthttp.Server
	addr string
}

// naiveEmbeddingsDDL is the spec's vector table, renamed: the migrated
// schema has its own audit_embeddings.
const naiveEmbeddingsDDL = `CREATE TABLE naive_audit_embeddings (
    audit_id VARCHAR(255) PRIMARY KEY,
    embedding vector(768) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX ON naive_audit_embeddings USING hnsw (embedding vector_cosine_ops);`

func startNaive(ctx context.Context, dsn string) (*naiveServer, error) {
	conn, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, naiveEmbeddingsDDL); err != nil {
		conn.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		conn.Close()
		return nil, err
	}
	n := &naiveServer{pool: conn, addr: ln.Addr().String()}
	n.srv = &fasthttp.Server{Handler: n.handle}
	go func() { _ = n.srv.Serve(ln) }()
	return n, nil
}

func (n *naiveServer) close() {
	_ = n.srv.Shutdown()
	n.pool.Close()
}

func (n *naiveServer) fail(ctx *fasthttp.RequestCtx, b *wire.ErrorBody) {
	ctx.SetStatusCode(b.HTTPStatus())
	ctx.SetContentType("application/json")
	ctx.SetBody(b.Marshal())
}

func (n *naiveServer) handle(ctx *fasthttp.RequestCtx) {
	var kind wire.Kind
	switch string(ctx.Path()) {
	case "/api/v1/audit/remediation":
		kind = wire.KindRemediation
	case "/api/v1/audit/workflow":
		kind = wire.KindWorkflow
	default:
		n.fail(ctx, wire.NotFound())
		return
	}
	now := time.Now().UTC()
	rec, err := wire.DecodeAudit(kind, ctx.PostBody(), now)
	if err != nil {
		n.fail(ctx, wire.ValidationFailed("", err.Error()))
		return
	}
	rec.ID, rec.ReceivedAt = wire.NewID(), now
	qctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Step 6: the audit row.
	table, cols := "remediation_audit", remediationColumns
	if kind == wire.KindWorkflow {
		table, cols = "workflow_audit", workflowColumns
	}
	ph := make([]string, len(cols))
	for i := range ph {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	if _, err := n.pool.Exec(qctx, "INSERT INTO "+table+" ("+strings.Join(cols, ",")+") VALUES ("+strings.Join(ph, ",")+")",
		rowValues(&rec, "naive")...); err != nil {
		n.fail(ctx, wire.InternalError("naive"))
		return
	}
	// Steps 5 and 7: the embedding, best effort (the spec logs and answers 201).
	vec := hashEmbed(embeddingText(&rec))
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range vec {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(float64(x), 'f', -1, 32))
	}
	b.WriteByte(']')
	_, _ = n.pool.Exec(qctx, "INSERT INTO naive_audit_embeddings (audit_id, embedding, created_at) VALUES ($1, $2::vector, $3)",
		rec.ID, b.String(), time.Now())
	out, _ := json.Marshal(wire.WriteResponse{AuditID: rec.ID, Status: "persisted"})
	ctx.SetStatusCode(fasthttp.StatusCreated)
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
}
