package central_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central"
	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/central/ratelimit"
	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/internal/tstest/faultproxy"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/internal/tstest/syncbuf"
	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// The spec's four writers, as static tokens.
var writers = []string{"gateway-sa", "aianalysis-controller-sa", "kubernetes-executor-sa", "workflowexecution-controller-sa"}

func tokenOf(sa string) string { return "token-" + sa }

const (
	ns            = "kubernaut-system"
	outsiderToken = "token-outsider"
	// holderSA may hold:audit under holderAuthz; no default grants it.
	holderSA = "compliance-sa"
)

type options struct {
	rate      float64
	burst     int
	viaProxy  bool // put a faultproxy between the central and PostgreSQL
	authn     auth.Authenticator
	storeTime time.Duration
	readTime  time.Duration // the server's ReadTimeout, for slow-client tests
	inFlight  int           // WritesInFlight
	committed func()        // Config.Committed
	readRate  float64       // the read budget; zero: 10000 rows/s, burst 10000
	readBurst int
	authz     authz.Authorizer                     // nil: authz.Default(ns)
	exportKey string                               // Ed25519 key file that signs exports; "": none
	queryTime time.Duration                        // ReadConfig.QueryTimeout
	horizon   func(wire.Kind, time.Time) time.Time // Config.Horizon
	now       func() time.Time                     // Config.Now
	// checkpoints is LedgerConfig.Checkpoints.
	checkpoints func(context.Context) ([]ledger.Checkpoint, error)
	// proofKey, with exportKey, makes exports carry their ledger proof,
	// ended by a checkpoint it signs.
	proofKey ed25519.PrivateKey
	// share is the write limiter's SetShare: this replica's share of the
	// limit among that many. Zero: the whole limit.
	share int
}

// harness is a real central on a loopback port, writing to a fresh database.
type harness struct {
	url        string
	metricsURL string
	pool       *pgxpool.Pool // direct access, for assertions
	db         *storage.DB   // the central's store
	proxy      *faultproxy.Proxy
	logs       *syncbuf.Buffer
	conf       *observed // the OpenAPI conformance check of its API
}

func newHarness(t *testing.T, opt options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.Migrate(ctx, dsn))

	h := &harness{logs: &syncbuf.Buffer{}}
	storeDSN := dsn
	if opt.viaProxy {
		cfg, err := pgxpool.ParseConfig(dsn)
		require.NoError(t, err)
		h.proxy, err = faultproxy.Start(fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port))
		require.NoError(t, err)
		host, port, _ := net.SplitHostPort(h.proxy.Addr())
		storeDSN = strings.Replace(dsn, fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port), host+":"+port, 1)
	}
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: storeDSN, ConnectTimeout: 2 * time.Second})
	require.NoError(t, err)
	h.db = db
	h.pool, err = pgxpool.New(ctx, dsn)
	require.NoError(t, err)

	authn := opt.authn
	if authn == nil {
		var csv strings.Builder
		for _, sa := range writers {
			fmt.Fprintf(&csv, "%s,system:serviceaccount:%s:%s,uid-%s,\"system:serviceaccounts\"\n", tokenOf(sa), ns, sa, sa)
		}
		fmt.Fprintf(&csv, "%s,system:serviceaccount:%s:outsider,uid-outsider\n", outsiderToken, ns)
		fmt.Fprintf(&csv, "%s,system:serviceaccount:%s:%s,uid-%s\n", tokenOf(holderSA), ns, holderSA, holderSA)
		authn, err = auth.ParseStaticTokens(strings.NewReader(csv.String()))
		require.NoError(t, err)
	}
	limits := ratelimit.Config{Rate: opt.rate, Burst: opt.burst}
	if limits.Rate == 0 {
		limits.Rate = 10000
	}
	if limits.Burst == 0 {
		limits.Burst = 10000
	}
	writes := ratelimit.New(limits)
	writes.SetShare(time.Now(), opt.share)
	reads := &central.ReadConfig{Store: db, QueryTimeout: opt.queryTime, Limiter: ratelimit.New(ratelimit.Config{
		Rate: cmp.Or(opt.readRate, 10000), Burst: cmp.Or(opt.readBurst, 10000)})}
	if opt.exportKey != "" {
		reads.ExportKey, err = export.OpenKeyFile(opt.exportKey)
		require.NoError(t, err)
	}
	if opt.proofKey != nil {
		reads.Proofs = &central.ProofConfig{Store: db, Sign: func(_ context.Context, head storage.Head) (ledger.Checkpoint, error) {
			return ledger.Sign(opt.proofKey, head.Seq, head.Hash, time.Now()), nil
		}}
	}
	authorizer := opt.authz
	if authorizer == nil {
		authorizer = authz.Default(ns)
	}
	srv, err := central.New(central.Config{
		Authenticator:  authn,
		Authorizer:     authorizer,
		Reads:          reads,
		Holds:          &central.HoldConfig{Store: db, Limiter: reads.Limiter},
		Ledger:         &central.LedgerConfig{Store: db, Checkpoints: opt.checkpoints},
		Limiter:        writes,
		Store:          db,
		Logger:         zerolog.New(h.logs),
		Metrics:        metrics.NewSet(),
		StoreTimeout:   opt.storeTime,
		ReadTimeout:    opt.readTime,
		WritesInFlight: opt.inFlight,
		Committed:      opt.committed,
		Horizon:        opt.horizon,
		Now:            opt.now,
	})
	require.NoError(t, err)
	api, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h.url = "http://" + api.Addr().String()
	h.metricsURL = "http://" + ml.Addr().String() + "/metrics"
	h.conf = conformance.observe(t, h.url)

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, api, ml) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		db.Close()
		h.pool.Close()
		if h.proxy != nil {
			h.proxy.Close()
		}
	})
	return h
}

type response struct {
	status int
	body   string
	header http.Header
	closed bool // the server closes the connection after this answer
}

// post sends body with the writer's token ("" sends none) and extra headers.
// The pair invalidByDesign, reason marks a request invalid on purpose (see
// conformance_test.go); it is not sent.
func (h *harness) post(t *testing.T, path, token string, body []byte, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == invalidByDesign {
			req = markInvalid(req, headers[i+1])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	return h.do(t, req)
}

// get sends a GET with the reader's token ("" sends none) and extra headers
// (invalidByDesign marks it as post does).
func (h *harness) get(t *testing.T, path, token string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == invalidByDesign {
			req = markInvalid(req, headers[i+1])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	return h.do(t, req)
}

// do sends req; the exchange is validated against the OpenAPI document, and
// a violation fails t.
func (h *harness) do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(withTest(req, t))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, body: string(b), header: resp.Header, closed: resp.Close}
}

// count returns how many rows of table have id.
func (h *harness) count(t *testing.T, table, id string) int {
	t.Helper()
	var n int
	require.NoError(t, h.pool.QueryRow(context.Background(),
		"SELECT count(*) FROM "+table+" WHERE id = $1", id).Scan(&n))
	return n
}

func (h *harness) rows(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, h.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

var errUnreachable = errors.New("token review down")
