package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
	"k8s.io/client-go/kubernetes"

	"github.com/kubernaut/datastorage/central"
	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/central/embed"
	"github.com/kubernaut/datastorage/central/embedpipe"
	"github.com/kubernaut/datastorage/central/lifecycle"
	"github.com/kubernaut/datastorage/central/notary"
	"github.com/kubernaut/datastorage/central/ratelimit"
	"github.com/kubernaut/datastorage/central/replicas"
	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/internal/backoff"
	"github.com/kubernaut/datastorage/internal/tlsconfig"
	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/storage"
)

// serve builds the central from o, listens, and serves until ctx ends; then
// it stops the server (in-flight requests finish), the embedding pipeline
// and the pools, in that order.
func serve(ctx context.Context, log zerolog.Logger, o *options) error {
	c, err := o.build(ctx, log)
	if err != nil {
		return err
	}
	defer c.close(ctx, log)
	apiLn, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	metricsLn, err := net.Listen("tcp", o.metricsListen)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("metrics listen: %w", err)
	}
	log.Info().
		Str("listen", apiLn.Addr().String()).
		Str("metrics_listen", metricsLn.Addr().String()).
		Str("auth", o.authMode).
		Bool("tls", c.tls).
		Str("authz", c.authz).
		Float64("rate_limit", o.limits.Rate).Int("rate_burst", o.limits.Burst).
		Float64("read_rate", o.readLimits.Rate).Str("replicas", c.replicaMode()).Bool("export", o.exportKeyFile != "").
		Str("embedder", c.embedder).Bool("separate_vector_database", o.vectorURL != o.databaseURL).
		Int("embed_workers", o.embedWorkers).Int("hnsw_ef_search", o.hnsw.WithDefaults().EfSearch).
		Str("partition_period", string(o.lifecycle.Period)).Int("partitions_ahead", o.lifecycle.Ahead).
		Str("retention", cmp.Or(o.retention, "forever")).
		Bool("ledger", o.ledger).Bool("checkpoints", o.checkpointKey != "").
		Msg("central serving")
	// Partitions ahead and retention, in the background: a replica serves
	// while the database is down, and so does this loop (it retries).
	lctx, stopLifecycle := context.WithCancel(ctx)
	lifecycleDone := make(chan struct{})
	go func() {
		defer close(lifecycleDone)
		c.lifecycle.Run(lctx)
	}()
	// The ledger's sequencing and checkpoints, likewise.
	nctx, stopNotary := context.WithCancel(ctx)
	notaryDone := make(chan struct{})
	go func() {
		defer close(notaryDone)
		c.notary.Run(nctx)
	}()
	// This replica's place in the count of replicas that share the rate
	// limits: it leaves the count (deletes its row) as soon as ctx ends, while
	// in-flight requests finish.
	membershipDone := make(chan struct{})
	go func() {
		defer close(membershipDone)
		c.members.Run(ctx)
	}()
	err = c.srv.Serve(ctx, apiLn, metricsLn)
	stopLifecycle()
	stopNotary()
	<-lifecycleDone
	<-notaryDone
	<-membershipDone
	log.Info().Msg("central stopped")
	return err
}

// built is the running central, and what close stops.
type built struct {
	srv             *central.Server
	db              *storage.DB
	vdb             *storage.VectorDB
	stopIndex       func() // stops the HNSW index build (vectors)
	pipe            *embedpipe.Pipeline
	lifecycle       *lifecycle.Manager
	notary          *notary.Notary
	members         *replicas.Membership // how many replicas share the rate limits
	tls             bool                 // the API is served over TLS
	authz, embedder string               // for the start-up log line
}

// build opens the databases and starts the embedding pipeline, and wires
// the server; on error it closes what it opened.
func (o *options) build(ctx context.Context, log zerolog.Logger) (_ *built, err error) {
	set := metrics.NewSet()
	var kube kubernetes.Interface // TokenReview's and SubjectAccessReview's
	if o.authMode == "tokenreview" {
		if kube, err = auth.NewClientset(o.kubeconfig); err != nil {
			return nil, err
		}
	}
	authn, err := o.authenticator(kube, set, log)
	if err != nil {
		return nil, err
	}
	authorizer, err := o.authorizer(kube, set)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := o.serverTLS(ctx, log)
	if err != nil {
		return nil, err
	}
	emb, err := o.newEmbedder(ctx)
	if err != nil {
		return nil, err
	}
	c := &built{tls: tlsConfig != nil, authz: authorizer.String(), embedder: emb.Identity()}
	defer func() {
		if err != nil {
			c.close(ctx, log)
		}
	}()
	if c.db, err = storage.Open(ctx, storage.Config{DatabaseURL: o.databaseURL, MaxConns: int32(o.maxConns), NoLedger: !o.ledger}); err != nil {
		return nil, err
	}
	registerPoolMetrics(set, c.db)
	if c.vdb, c.stopIndex, err = o.vectors(ctx, log); err != nil {
		return nil, err
	}
	// --embed-workers 0: a write-only replica; the backlog waits for the
	// replicas that embed.
	committed := func() {}
	if o.embedWorkers > 0 {
		c.pipe, err = embedpipe.New(embedpipe.Config{
			Audits: c.db, Vectors: c.vdb, Embedder: emb,
			Workers: o.embedWorkers, BatchSize: o.embedBatch,
			Logger: log, Metrics: set,
		})
		if err != nil {
			return nil, err
		}
		committed = c.pipe.Notify
	}
	lc := o.lifecycle
	lc.Store, lc.Links, lc.Logger, lc.Metrics = c.db, c.vdb, log, set
	lc.ObserveOnly = !o.partitionMaintenance
	if c.lifecycle, err = lifecycle.New(lc); err != nil {
		return nil, err
	}
	if c.notary, err = o.newNotary(c.db, log, set); err != nil {
		return nil, err
	}
	writes := ratelimit.New(o.limits)
	reads := &central.ReadConfig{Store: c.db, Limiter: ratelimit.New(o.readLimits)}
	if c.members, err = o.membership(c.db, log, set, writes, reads.Limiter); err != nil {
		return nil, err
	}
	if o.checkpointKey != "" { // exports carry their ledger proof, ended by a checkpoint
		reads.Proofs = &central.ProofConfig{Store: c.db, Sign: c.notary.Sign}
	}
	if o.exportKeyFile != "" {
		if reads.ExportKey, err = export.OpenKeyFile(o.exportKeyFile); err != nil {
			return nil, err
		}
	}
	c.srv, err = central.New(central.Config{
		Authenticator:   authn,
		Authorizer:      authorizer,
		Limiter:         writes,
		Store:           c.db,
		Logger:          log,
		Metrics:         set,
		ShutdownTimeout: o.shutdownTimeout,
		MaxReceivedAge:  o.maxReceivedAge,
		TLS:             tlsConfig,
		Search:          &central.SearchConfig{Embedder: emb, Vectors: c.vdb, Audits: c.db},
		Reads:           reads,
		Holds:           &central.HoldConfig{Store: c.db, Limiter: reads.Limiter}, // one budget for reads and holds
		Ledger:          &central.LedgerConfig{Store: c.db, Checkpoints: checkpointSource(c.db, c.notary)},
		Committed:       committed,
		Horizon:         c.lifecycle.Horizon,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// membership counts the replicas that share the write and read limits
// (--replicas, or the database's replica table), each limiter enforcing its
// share.
func (o *options) membership(db *storage.DB, log zerolog.Logger, set *metrics.Set, limiters ...*ratelimit.Limiter) (*replicas.Membership, error) {
	cfg := o.replicas
	cfg.Store, cfg.Logger, cfg.Metrics = db, log, set
	cfg.OnChange = func(n int) {
		now := time.Now()
		for _, l := range limiters {
			l.SetShare(now, n)
		}
	}
	return replicas.New(cfg)
}

// replicaMode is "static N" or "discovered", for the start-up log line.
func (c *built) replicaMode() string {
	if c.members.Static() {
		return fmt.Sprintf("static %d", c.members.Count())
	}
	return "discovered"
}

// newNotary is the ledger's sequencer, and signer of checkpoints with
// --checkpoint-key-file.
func (o *options) newNotary(db *storage.DB, log zerolog.Logger, set *metrics.Set) (*notary.Notary, error) {
	cfg := notary.Config{Store: db, SequenceInterval: o.ledgerInterval, CheckpointInterval: o.checkpointEvery,
		CheckpointFile: o.checkpointFile, Logger: log, Metrics: set}
	if o.checkpointKey != "" {
		key, err := export.OpenKeyFile(o.checkpointKey)
		if err != nil {
			return nil, fmt.Errorf("--checkpoint-key-file: %w", err)
		}
		cfg.Key = key
	}
	return notary.New(cfg)
}

// checkpointSource is what the verification endpoint holds the chain
// against: the checkpoints in --checkpoint-file and the database's copies,
// those whose signature the checkpoint key's public key accepts. Without a
// key, none.
func checkpointSource(db *storage.DB, n *notary.Notary) func(context.Context) ([]ledger.Checkpoint, error) {
	return func(ctx context.Context) ([]ledger.Checkpoint, error) {
		pub := n.PublicKey()
		if pub == nil {
			return nil, nil
		}
		cps, err := db.Checkpoints(ctx, pub)
		if err != nil {
			return nil, err
		}
		if path := n.CheckpointFile(); path != "" {
			f, err := os.Open(path)
			if errors.Is(err, os.ErrNotExist) {
				return cps, nil // none signed yet
			}
			if err != nil {
				return nil, err
			}
			defer f.Close()
			fromFile, err := ledger.ReadCheckpoints(f, pub)
			if err != nil {
				return nil, err
			}
			cps = append(cps, fromFile...)
		}
		return cps, nil
	}
}

// close stops the embedding pipeline (within 10 s) and closes the pools.
func (c *built) close(ctx context.Context, log zerolog.Logger) {
	if c.pipe != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := c.pipe.Close(cctx); err != nil {
			log.Warn().Err(err).Msg("embedding pipeline did not stop in time")
		}
	}
	if c.stopIndex != nil {
		c.stopIndex()
	}
	if c.vdb != nil {
		c.vdb.Close()
	}
	if c.db != nil {
		c.db.Close()
	}
}

// authenticator is the --auth mode's authenticator: static reads
// --token-file again when it changes; tokenreview uses kube, the client of
// --kubeconfig (or the in-cluster configuration).
func (o *options) authenticator(kube kubernetes.Interface, set *metrics.Set, log zerolog.Logger) (auth.Authenticator, error) {
	if o.authMode == "static" {
		return auth.LoadTokenFile(o.tokenFile, func(err error) {
			log.Error().Err(err).Str("file", o.tokenFile).Msg("token file reload failed; keeping the previous tokens")
		})
	}
	cfg := o.authFailures
	cfg.Client, cfg.Audience, cfg.Metrics = kube, o.audience, set
	return auth.NewTokenReview(cfg)
}

// authorizer is the --authz mode's authorizer: the allow-list of
// --authz-file or the default one in --namespace; or SubjectAccessReviews
// in --namespace through kube, the client TokenReview uses (validate made
// sure there is one).
func (o *options) authorizer(kube kubernetes.Interface, set *metrics.Set) (authz.Authorizer, error) {
	switch {
	case o.authzMode == "sar":
		cfg := o.sar
		cfg.Client, cfg.Namespace, cfg.Metrics = kube, o.namespace, set
		return authz.NewSAR(cfg)
	case o.authzFile != "":
		return authz.LoadFile(o.authzFile)
	}
	return authz.Default(o.namespace), nil
}

// serverTLS is nil (plain HTTP) without a certificate, else a config that
// reloads the certificate and client CA as Kubernetes rotates the Secret.
func (o *options) serverTLS(ctx context.Context, log zerolog.Logger) (*tls.Config, error) {
	if o.tlsCert == "" {
		return nil, nil
	}
	cfg, err := tlsconfig.Server(ctx, o.tlsCert, o.tlsKey, o.clientCA, func(err error) {
		log.Error().Err(err).Msg("TLS certificate reload failed; keeping the previous certificate")
	})
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return cfg, nil
}

// vectors opens the vector database and makes sure of its HNSW index in the
// background, warning when the index was built with other parameters than
// configured. In the background because building the index over stored
// vectors (after migration 0011 changed their type, or a dropped index)
// takes minutes at a million vectors, longer than the liveness probe waits,
// and serving needs no index: search scans meanwhile, and vector writes
// wait for the build. stopIndex cancels a build still running (the next
// start builds it) and waits for it.
func (o *options) vectors(ctx context.Context, log zerolog.Logger) (_ *storage.VectorDB, stopIndex func(), _ error) {
	vdb, err := storage.OpenVectors(ctx, storage.Config{DatabaseURL: o.vectorURL, MaxConns: int32(o.maxConns)}, o.hnsw)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		bo := backoff.New(time.Second, 30*time.Second)
		for {
			got, err := vdb.EnsureIndex(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				log.Error().Err(err).Msg("making sure of the HNSW index failed; similarity search scans every vector meanwhile")
				if !backoff.Sleep(ctx, bo.Next(), nil) {
					return
				}
				continue
			}
			log.Info().Dur("took", time.Since(start)).Msg("HNSW index ready")
			if want := o.hnsw.WithDefaults(); got.M != want.M || got.EfConstruction != want.EfConstruction {
				log.Warn().Int("index_m", got.M).Int("index_ef_construction", got.EfConstruction).
					Msg("the HNSW index was built with other parameters than --hnsw-m/--hnsw-ef-construction; " +
						"ALTER INDEX idx_embeddings_embedding_hnsw SET (m = …, ef_construction = …), then REINDEX INDEX CONCURRENTLY, applies them")
			}
			return
		}
	}()
	return vdb, func() { cancel(); <-done }, nil
}

func (o *options) newEmbedder(ctx context.Context) (embed.Embedder, error) {
	if o.embedder == "openai" {
		return embed.NewOpenAI(ctx, embed.OpenAIConfig{URL: o.embedderURL, Model: o.embedderModel, APIKey: o.embedderKey})
	}
	return embed.NewHash(), nil
}

func registerPoolMetrics(set *metrics.Set, db *storage.DB) {
	gauge := func(name string, f func() float64) { set.NewGauge(name, f) }
	gauge(`datastorage_db_pool_acquired_conns`, func() float64 { return float64(db.Stat().AcquiredConns()) })
	gauge(`datastorage_db_pool_idle_conns`, func() float64 { return float64(db.Stat().IdleConns()) })
	gauge(`datastorage_db_pool_total_conns`, func() float64 { return float64(db.Stat().TotalConns()) })
	gauge(`datastorage_db_pool_max_conns`, func() float64 { return float64(db.Stat().MaxConns()) })
}
