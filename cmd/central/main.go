// Command central is the audit writer: it authenticates, authorizes and
// rate-limits every caller and persists audits to PostgreSQL.
//
//	central [serve] [flags]   apply migrations, then serve the API (default)
//	central migrate [flags]   apply migrations and exit
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/central"
	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/central/embed"
	"github.com/kubernaut/datastorage/central/embedpipe"
	"github.com/kubernaut/datastorage/central/ratelimit"
	"github.com/kubernaut/datastorage/internal/cli"
	"github.com/kubernaut/datastorage/internal/tlsconfig"
	"github.com/kubernaut/datastorage/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "central:", err)
			os.Exit(1)
		}
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "migrate") {
		cmd, args = args[0], args[1:]
	}

	fs := cli.NewFlagSet("central "+cmd, stderr)
	listen := fs.String("listen", "DATASTORAGE_LISTEN", ":8080", "API and health address")
	metricsListen := fs.String("metrics-listen", "DATASTORAGE_METRICS_LISTEN", ":9090", "Prometheus /metrics address")
	databaseURL := fs.String("database-url", "DATABASE_URL", "", "PostgreSQL URL of the audit database (required)")
	authMode := fs.String("auth", "DATASTORAGE_AUTH", "tokenreview", "how callers are authenticated: tokenreview or static")
	tokenFile := fs.String("token-file", "DATASTORAGE_TOKEN_FILE", "", "static token CSV (token,user,uid,\"groups\"), with --auth static")
	audience := fs.String("token-audience", "DATASTORAGE_TOKEN_AUDIENCE", "datastorage", "audience a TokenReview must confirm")
	kubeconfig := fs.String("kubeconfig", "KUBECONFIG", "", "kubeconfig for TokenReview; empty: in-cluster config")
	authFailureRate := fs.Float64("auth-failure-rate", "DATASTORAGE_AUTH_FAILURE_RATE", auth.DefaultPeerFailureRate, "failed token reviews per second per client address, with --auth tokenreview; beyond the burst: 429")
	authFailureBurst := fs.Int("auth-failure-burst", "DATASTORAGE_AUTH_FAILURE_BURST", auth.DefaultPeerFailureBurst, "failed token reviews a client address may cause at once")
	authFailurePeers := fs.Int("auth-failure-peers", "DATASTORAGE_AUTH_FAILURE_PEERS", auth.DefaultMaxPeers, "client addresses whose failed-review budgets are tracked (least recently seen forgotten)")
	authNegativeCache := fs.Int("auth-negative-cache-size", "DATASTORAGE_AUTH_NEGATIVE_CACHE_SIZE", auth.DefaultNegativeCacheSize, "failed authentications cached, apart from the identities")
	namespace := fs.String("namespace", "DATASTORAGE_NAMESPACE", "kubernaut-system", "namespace of the default writer service accounts")
	authzFile := fs.String("authz-file", "DATASTORAGE_AUTHZ_FILE", "", "allow-list YAML replacing the default service accounts")
	rateLimit := fs.Float64("rate-limit", "DATASTORAGE_RATE_LIMIT", 100, "records per second per service account")
	rateBurst := fs.Int("rate-burst", "DATASTORAGE_RATE_BURST", 1000, "records a service account may send at once; larger batches get 413")
	maxConns := fs.Int("database-max-conns", "DATASTORAGE_DATABASE_MAX_CONNS", int(storage.DefaultMaxConns), "PostgreSQL connection pool size")
	maxReceivedAge := fs.Duration("max-received-age", "DATASTORAGE_MAX_RECEIVED_AGE", central.DefaultMaxReceivedAge, "oldest receivedAt a batch item may carry (when an agent first accepted it); older items are rejected")
	shutdownTimeout := fs.Duration("shutdown-timeout", "DATASTORAGE_SHUTDOWN_TIMEOUT", central.DefaultShutdownTimeout, "time in-flight requests get to finish on SIGTERM")
	tlsCert := fs.String("tls-cert-file", "DATASTORAGE_TLS_CERT_FILE", "", "serve the API over TLS with this certificate (PEM; reloaded when it changes)")
	tlsKey := fs.String("tls-key-file", "DATASTORAGE_TLS_KEY_FILE", "", "private key of --tls-cert-file (PEM)")
	clientCA := fs.String("client-ca-file", "DATASTORAGE_CLIENT_CA_FILE", "", "require client certificates signed by this CA (PEM)")
	vectorURL := fs.String("vector-database-url", "VECTOR_DATABASE_URL", "", "PostgreSQL+pgvector URL of the vector database; empty: --database-url")
	embedder := fs.String("embedder", "DATASTORAGE_EMBEDDER", "hash", "embedding provider: hash (built in) or openai (an OpenAI-compatible /v1/embeddings)")
	embedderURL := fs.String("embedder-url", "DATASTORAGE_EMBEDDER_URL", "", "base URL of the OpenAI-compatible API, with --embedder openai")
	embedderModel := fs.String("embedder-model", "DATASTORAGE_EMBEDDER_MODEL", "", "model name sent to the API, with --embedder openai (must give 768 dimensions)")
	embedderKey := fs.String("embedder-api-key", "DATASTORAGE_EMBEDDER_API_KEY", "", "bearer key for the embeddings API, if it needs one")
	embedWorkers := fs.Int("embed-workers", "DATASTORAGE_EMBED_WORKERS", embedpipe.DefaultWorkers, "concurrent embedding workers")
	embedBatch := fs.Int("embed-batch-size", "DATASTORAGE_EMBED_BATCH_SIZE", embedpipe.DefaultBatchSize, "audits per embedding batch")
	hnswM := fs.Int("hnsw-m", "DATASTORAGE_HNSW_M", storage.DefaultHNSWM, "HNSW index m (graph degree), applied when the index is created")
	hnswEfC := fs.Int("hnsw-ef-construction", "DATASTORAGE_HNSW_EF_CONSTRUCTION", storage.DefaultHNSWEfConstruction, "HNSW index ef_construction, applied when the index is created")
	hnswEfS := fs.Int("hnsw-ef-search", "DATASTORAGE_HNSW_EF_SEARCH", storage.DefaultHNSWEfSearch, "HNSW ef_search of each similarity query")
	logLevel := fs.String("log-level", "DATASTORAGE_LOG_LEVEL", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "DATASTORAGE_LOG_FORMAT", "json", "json or console")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := cli.NewLogger(stderr, *logLevel, *logFormat, "central")
	if err != nil {
		return err
	}
	if *databaseURL == "" {
		return fmt.Errorf("--database-url (or %s) is required", fs.Env("database-url"))
	}

	if *vectorURL == "" {
		*vectorURL = *databaseURL
	}
	hnsw := storage.HNSWConfig{M: *hnswM, EfConstruction: *hnswEfC, EfSearch: *hnswEfS}
	if err := hnsw.Validate(); err != nil {
		return err
	}
	if err := migrate(ctx, log, *databaseURL); err != nil {
		return err
	}
	if *vectorURL != *databaseURL {
		if err := migrate(ctx, log, *vectorURL); err != nil {
			return fmt.Errorf("vector database: %w", err)
		}
	}
	if cmd == "migrate" {
		fmt.Fprintln(stdout, "migrations applied")
		return nil
	}

	set := metrics.NewSet()
	authn, err := newAuthenticator(*authMode, *tokenFile, *kubeconfig, auth.TokenReviewConfig{
		Audience:          *audience,
		NegativeCacheSize: *authNegativeCache,
		PeerFailureRate:   *authFailureRate,
		PeerFailureBurst:  *authFailureBurst,
		MaxPeers:          *authFailurePeers,
		Metrics:           set,
	})
	if err != nil {
		return err
	}
	authorizer := authz.Default(*namespace)
	if *authzFile != "" {
		if authorizer, err = authz.LoadFile(*authzFile); err != nil {
			return err
		}
	}
	tlsConfig, err := serverTLS(ctx, log, *tlsCert, *tlsKey, *clientCA)
	if err != nil {
		return err
	}
	limits := ratelimit.Config{Rate: *rateLimit, Burst: *rateBurst}
	if err := limits.Validate(); err != nil {
		return err
	}
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: *databaseURL, MaxConns: int32(*maxConns)})
	if err != nil {
		return err
	}
	defer db.Close()
	registerPoolMetrics(set, db)

	vdb, err := storage.OpenVectors(ctx, storage.Config{DatabaseURL: *vectorURL, MaxConns: int32(*maxConns)}, hnsw)
	if err != nil {
		return err
	}
	defer vdb.Close()
	if got, err := vdb.EnsureIndex(ctx); err != nil {
		return err
	} else if got.M != hnsw.WithDefaults().M || got.EfConstruction != hnsw.WithDefaults().EfConstruction {
		log.Warn().Int("index_m", got.M).Int("index_ef_construction", got.EfConstruction).
			Msg("the HNSW index was built with other parameters than --hnsw-m/--hnsw-ef-construction; REINDEX to apply them")
	}
	emb, err := newEmbedder(ctx, *embedder, *embedderURL, *embedderModel, *embedderKey)
	if err != nil {
		return err
	}
	pipe, err := embedpipe.New(embedpipe.Config{
		Audits: db, Vectors: vdb, Embedder: emb,
		Workers: *embedWorkers, BatchSize: *embedBatch,
		Logger: log, Metrics: set,
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := pipe.Close(cctx); err != nil {
			log.Warn().Err(err).Msg("embedding pipeline did not stop in time")
		}
	}()

	srv, err := central.New(central.Config{
		Authenticator:   authn,
		Authorizer:      authorizer,
		Limiter:         ratelimit.New(limits),
		Store:           db,
		Logger:          log,
		Metrics:         set,
		ShutdownTimeout: *shutdownTimeout,
		MaxReceivedAge:  *maxReceivedAge,
		TLS:             tlsConfig,
		Search:          &central.SearchConfig{Embedder: emb, Vectors: vdb, Audits: db},
		Committed:       pipe.Notify,
	})
	if err != nil {
		return err
	}
	apiLn, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	metricsLn, err := net.Listen("tcp", *metricsListen)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("metrics listen: %w", err)
	}
	log.Info().
		Str("listen", apiLn.Addr().String()).
		Str("metrics_listen", metricsLn.Addr().String()).
		Str("auth", *authMode).
		Bool("tls", tlsConfig != nil).
		Str("authz", authorizer.String()).
		Float64("rate_limit", limits.Rate).Int("rate_burst", limits.Burst).
		Str("embedder", emb.Identity()).Bool("separate_vector_database", *vectorURL != *databaseURL).
		Int("embed_workers", *embedWorkers).Int("hnsw_ef_search", hnsw.WithDefaults().EfSearch).
		Msg("central serving")
	err = srv.Serve(ctx, apiLn, metricsLn)
	log.Info().Msg("central stopped")
	return err
}

// migrate applies migrations, waiting for the database to come up: a
// central started before PostgreSQL retries rather than crash-looping.
func migrate(ctx context.Context, log zerolog.Logger, databaseURL string) error {
	for delay := 500 * time.Millisecond; ; delay = min(delay*2, 10*time.Second) {
		err := storage.Migrate(ctx, databaseURL)
		if err == nil {
			return nil
		}
		if !errors.Is(err, storage.ErrUnavailable) {
			return fmt.Errorf("migrate: %w", err)
		}
		log.Warn().Err(err).Dur("retry_in", delay).Msg("database not reachable; retrying migrations")
		select {
		case <-ctx.Done():
			return fmt.Errorf("migrate: %w", ctx.Err())
		case <-time.After(delay):
		}
	}
}

func newEmbedder(ctx context.Context, name, url, model, key string) (embed.Embedder, error) {
	switch name {
	case "hash":
		return embed.NewHash(), nil
	case "openai":
		if url == "" || model == "" {
			return nil, errors.New("--embedder openai needs --embedder-url and --embedder-model")
		}
		return embed.NewOpenAI(ctx, embed.OpenAIConfig{URL: url, Model: model, APIKey: key})
	default:
		return nil, fmt.Errorf("--embedder %q: want hash or openai", name)
	}
}

// newAuthenticator builds the authenticator of mode; with tokenreview, cfg
// gets its Client from kubeconfig.
func newAuthenticator(mode, tokenFile, kubeconfig string, cfg auth.TokenReviewConfig) (auth.Authenticator, error) {
	switch mode {
	case "static":
		if tokenFile == "" {
			return nil, errors.New("--auth static needs --token-file")
		}
		return auth.LoadStaticTokens(tokenFile)
	case "tokenreview":
		if cfg.Audience == "" {
			return nil, errors.New("--auth tokenreview needs --token-audience")
		}
		client, err := auth.NewClientset(kubeconfig)
		if err != nil {
			return nil, err
		}
		cfg.Client = client
		return auth.NewTokenReview(cfg)
	default:
		return nil, fmt.Errorf("--auth %q: want tokenreview or static", mode)
	}
}

// serverTLS is nil (plain HTTP) without a certificate, else a config that
// reloads the certificate and client CA as Kubernetes rotates the Secret.
func serverTLS(ctx context.Context, log zerolog.Logger, cert, key, clientCA string) (*tls.Config, error) {
	switch {
	case cert == "" && key == "":
		if clientCA != "" {
			return nil, errors.New("--client-ca-file needs --tls-cert-file and --tls-key-file")
		}
		return nil, nil
	case cert == "" || key == "":
		return nil, errors.New("--tls-cert-file and --tls-key-file go together")
	}
	cfg, err := tlsconfig.Server(ctx, cert, key, clientCA, func(err error) {
		log.Error().Err(err).Msg("TLS certificate reload failed; keeping the previous certificate")
	})
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return cfg, nil
}

func registerPoolMetrics(set *metrics.Set, db *storage.DB) {
	gauge := func(name string, f func() float64) { set.NewGauge(name, f) }
	gauge(`datastorage_db_pool_acquired_conns`, func() float64 { return float64(db.Stat().AcquiredConns()) })
	gauge(`datastorage_db_pool_idle_conns`, func() float64 { return float64(db.Stat().IdleConns()) })
	gauge(`datastorage_db_pool_total_conns`, func() float64 { return float64(db.Stat().TotalConns()) })
	gauge(`datastorage_db_pool_max_conns`, func() float64 { return float64(db.Stat().MaxConns()) })
}
