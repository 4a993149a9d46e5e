package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kubernaut/datastorage/central"
	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/central/embedpipe"
	"github.com/kubernaut/datastorage/central/lifecycle"
	"github.com/kubernaut/datastorage/central/notary"
	"github.com/kubernaut/datastorage/central/ratelimit"
	"github.com/kubernaut/datastorage/central/replicas"
	"github.com/kubernaut/datastorage/internal/cli"
	"github.com/kubernaut/datastorage/storage"
)

// options are the command and its flags, as parsed (each flag falls back to
// its environment variable: internal/cli). parseOptions fills them,
// validate checks what can be checked without I/O, and build (serve.go)
// turns them into the running parts.
type options struct {
	command string // "serve" (the default), "migrate" or "maintain"

	listen, metricsListen  string
	databaseURL, vectorURL string // vectorURL "" means databaseURL
	maxConns               int

	authMode, tokenFile, audience, kubeconfig string
	authFailures                              auth.TokenReviewConfig // the failed-review budget and negative cache
	namespace, authzMode, authzFile           string
	sar                                       authz.SARConfig // --authz sar's cache; Client, Namespace and Metrics are set by build
	limits                                    ratelimit.Config
	readLimits                                ratelimit.Config // the read API's budget, in rows
	replicas                                  replicas.Config  // how many replicas share the limits; Store, OnChange, Logger and Metrics are set by build
	exportKeyFile                             string

	ledger          bool          // false: no ledger entries (Config.NoLedger), for measuring its cost
	ledgerInterval  time.Duration // how often this replica sequences
	checkpointKey   string        // signs checkpoints; "" none
	checkpointEvery time.Duration
	checkpointFile  string

	maxReceivedAge, shutdownTimeout time.Duration
	tlsCert, tlsKey, clientCA       string

	lifecycle            lifecycle.Config // partitions and retention; Store and Links are set by build
	retention            string           // --retention as given, parsed into lifecycle.Retention
	partitionMaintenance bool             // false: lifecycle.ObserveOnly

	embedder, embedderURL, embedderModel, embedderKey string
	embedWorkers, embedBatch                          int
	hnsw                                              storage.HNSWConfig

	logLevel, logFormat string
}

// parseOptions reads the command ("serve", "migrate" or "maintain",
// optional) and flags.
func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{command: "serve"}
	if len(args) > 0 && (args[0] == "serve" || args[0] == "migrate" || args[0] == "maintain") {
		o.command, args = args[0], args[1:]
	}
	fs := cli.NewFlagSet("central "+o.command, stderr)
	fs.StringVar(&o.listen, "listen", "DATASTORAGE_LISTEN", ":8080", "API and health address")
	fs.StringVar(&o.metricsListen, "metrics-listen", "DATASTORAGE_METRICS_LISTEN", ":9090", "Prometheus /metrics address")
	fs.StringVar(&o.databaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the audit database (required)")
	fs.StringVar(&o.authMode, "auth", "DATASTORAGE_AUTH", "tokenreview", "how callers are authenticated: tokenreview or static")
	fs.StringVar(&o.tokenFile, "token-file", "DATASTORAGE_TOKEN_FILE", "", "static token CSV (token,user,uid,\"groups\"), with --auth static; read again when it changes")
	fs.StringVar(&o.audience, "token-audience", "DATASTORAGE_TOKEN_AUDIENCE", "datastorage", "audience a TokenReview must confirm")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "KUBECONFIG", "", "kubeconfig for TokenReview; empty: in-cluster config")
	fs.Float64Var(&o.authFailures.PeerFailureRate, "auth-failure-rate", "DATASTORAGE_AUTH_FAILURE_RATE", auth.DefaultPeerFailureRate, "failed token reviews per second per client address, with --auth tokenreview; beyond the burst: 429")
	fs.IntVar(&o.authFailures.PeerFailureBurst, "auth-failure-burst", "DATASTORAGE_AUTH_FAILURE_BURST", auth.DefaultPeerFailureBurst, "failed token reviews a client address may cause at once")
	fs.IntVar(&o.authFailures.MaxPeers, "auth-failure-peers", "DATASTORAGE_AUTH_FAILURE_PEERS", auth.DefaultMaxPeers, "client addresses whose failed-review budgets are tracked (least recently seen forgotten)")
	fs.IntVar(&o.authFailures.NegativeCacheSize, "auth-negative-cache-size", "DATASTORAGE_AUTH_NEGATIVE_CACHE_SIZE", auth.DefaultNegativeCacheSize, "failed authentications cached, apart from the identities")
	fs.StringVar(&o.namespace, "namespace", "DATASTORAGE_NAMESPACE", "kubernaut-system", "namespace of the default writer service accounts; with --authz sar, the namespace whose RoleBindings grant the actions")
	fs.StringVar(&o.authzMode, "authz", "DATASTORAGE_AUTHZ", "allowlist", "how callers are authorized: allowlist (the default service accounts, or --authz-file) or sar (Kubernetes RBAC through SubjectAccessReview; needs --auth tokenreview)")
	fs.StringVar(&o.authzFile, "authz-file", "DATASTORAGE_AUTHZ_FILE", "", "allow-list YAML replacing the default service accounts, with --authz allowlist")
	fs.DurationVar(&o.sar.AllowedTTL, "authz-allowed-ttl", "DATASTORAGE_AUTHZ_ALLOWED_TTL", authz.DefaultAllowedTTL, "with --authz sar, how long an allowed decision is reused (a revoked RoleBinding takes effect within it)")
	fs.DurationVar(&o.sar.DeniedTTL, "authz-denied-ttl", "DATASTORAGE_AUTHZ_DENIED_TTL", authz.DefaultDeniedTTL, "with --authz sar, how long a denied decision is reused (a new RoleBinding takes effect within it)")
	fs.Float64Var(&o.limits.Rate, "rate-limit", "DATASTORAGE_RATE_LIMIT", 100, "records per second per service account")
	fs.IntVar(&o.limits.Burst, "rate-burst", "DATASTORAGE_RATE_BURST", 1000, "records a service account may send at once; larger batches get 413")
	fs.Float64Var(&o.readLimits.Rate, "read-rate", "DATASTORAGE_READ_RATE", central.DefaultReadRate, "rows per second a service account may read (queries, records, timelines, exports), apart from its writes")
	fs.IntVar(&o.readLimits.Burst, "read-burst", "DATASTORAGE_READ_BURST", central.DefaultReadBurst, "rows a service account may read at once after being idle")
	fs.IntVar(&o.replicas.Static, "replicas", "DATASTORAGE_REPLICAS", 0, "number of central replicas that share --rate-limit and --read-rate, each enforcing its share; 0: count the live replicas through the database")
	fs.DurationVar(&o.replicas.Heartbeat, "replica-heartbeat", "DATASTORAGE_REPLICA_HEARTBEAT", replicas.DefaultHeartbeat, "how often a replica renews its row in the database's replica table and counts the live replicas, with --replicas 0")
	fs.DurationVar(&o.replicas.TTL, "replica-ttl", "DATASTORAGE_REPLICA_TTL", replicas.DefaultTTL, "how long a replica that stopped renewing its row (killed, cut off) is still counted; more than --replica-heartbeat")
	fs.StringVar(&o.exportKeyFile, "export-key-file", "DATASTORAGE_EXPORT_KEY_FILE", "", "Ed25519 private key (PKCS#8 PEM) that signs exports; reloaded when it changes; empty: no export")
	fs.BoolVar(&o.ledger, "ledger", "DATASTORAGE_LEDGER", true, "write the tamper-evident ledger; false only to measure what it costs (the rows written so fail `central verify`)")
	fs.DurationVar(&o.ledgerInterval, "ledger-sequence-interval", "DATASTORAGE_LEDGER_SEQUENCE_INTERVAL", notary.DefaultSequenceInterval, "how often this replica gives committed ledger entries their place in the chain")
	fs.StringVar(&o.checkpointKey, "checkpoint-key-file", "DATASTORAGE_CHECKPOINT_KEY_FILE", "", "Ed25519 private key (PKCS#8 PEM) that signs ledger checkpoints; reloaded when it changes; empty: no checkpoints")
	fs.DurationVar(&o.checkpointEvery, "checkpoint-interval", "DATASTORAGE_CHECKPOINT_INTERVAL", notary.DefaultCheckpointInterval, "how often the ledger's head is signed (when it moved; hourly when not)")
	fs.StringVar(&o.checkpointFile, "checkpoint-file", "DATASTORAGE_CHECKPOINT_FILE", "", "append each checkpoint to this file (fsynced), on storage the database's administrators cannot write; needs --checkpoint-key-file")
	fs.IntVar(&o.maxConns, "database-max-conns", "DATASTORAGE_DATABASE_MAX_CONNS", int(storage.DefaultMaxConns), "PostgreSQL connection pool size")
	fs.DurationVar(&o.maxReceivedAge, "max-received-age", "DATASTORAGE_MAX_RECEIVED_AGE", central.DefaultMaxReceivedAge, "oldest receivedAt a batch item may carry (when an agent first accepted it); older items are rejected")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", "DATASTORAGE_SHUTDOWN_TIMEOUT", central.DefaultShutdownTimeout, "time in-flight requests get to finish on SIGTERM")
	fs.StringVar(&o.tlsCert, "tls-cert-file", "DATASTORAGE_TLS_CERT_FILE", "", "serve the API over TLS with this certificate (PEM; reloaded when it changes)")
	fs.StringVar(&o.tlsKey, "tls-key-file", "DATASTORAGE_TLS_KEY_FILE", "", "private key of --tls-cert-file (PEM)")
	fs.StringVar(&o.clientCA, "client-ca-file", "DATASTORAGE_CLIENT_CA_FILE", "", "require client certificates signed by this CA (PEM)")
	fs.StringVar((*string)(&o.lifecycle.Period), "partition-period", "DATASTORAGE_PARTITION_PERIOD", string(storage.PeriodMonth), "span of one time partition of the audit tables: month, week or day (new partitions only)")
	fs.IntVar(&o.lifecycle.Ahead, "partitions-ahead", "DATASTORAGE_PARTITIONS_AHEAD", lifecycle.DefaultAhead, "partitions kept created after the current one")
	fs.StringVar(&o.retention, "retention", "DATASTORAGE_RETENTION", "", "days each kind is kept, by event time, e.g. remediation=365,workflow=365 (at least 30; a kind left out, or empty: forever); whole expired partitions are dropped, except under a legal hold")
	fs.BoolVar(&o.partitionMaintenance, "partition-maintenance", "DATASTORAGE_PARTITION_MAINTENANCE", true, "create partitions ahead and apply --retention in this replica; false where the serving role may not change the schema and `central maintain` runs as the owner (the replica then only reports how far ahead partitions exist)")
	fs.DurationVar(&o.lifecycle.Interval, "partition-check-interval", "DATASTORAGE_PARTITION_CHECK_INTERVAL", lifecycle.DefaultInterval, "how often partitions ahead and retention are checked")
	fs.StringVar(&o.vectorURL, "vector-database-url", "VECTOR_DATABASE_URL", "", "PostgreSQL+pgvector URL of the vector database; empty: --database-url")
	fs.StringVar(&o.embedder, "embedder", "DATASTORAGE_EMBEDDER", "hash", "embedding provider: hash (built in) or openai (an OpenAI-compatible /v1/embeddings)")
	fs.StringVar(&o.embedderURL, "embedder-url", "DATASTORAGE_EMBEDDER_URL", "", "base URL of the OpenAI-compatible API, with --embedder openai")
	fs.StringVar(&o.embedderModel, "embedder-model", "DATASTORAGE_EMBEDDER_MODEL", "", "model name sent to the API, with --embedder openai (must give 768 dimensions)")
	fs.StringVar(&o.embedderKey, "embedder-api-key", "DATASTORAGE_EMBEDDER_API_KEY", "", "bearer key for the embeddings API, if it needs one")
	fs.IntVar(&o.embedWorkers, "embed-workers", "DATASTORAGE_EMBED_WORKERS", embedpipe.DefaultWorkers, "concurrent embedding workers; 0: none in this replica (a write-only replica: the backlog waits for replicas that embed)")
	fs.IntVar(&o.embedBatch, "embed-batch-size", "DATASTORAGE_EMBED_BATCH_SIZE", embedpipe.DefaultBatchSize, "audits per embedding batch")
	fs.IntVar(&o.hnsw.M, "hnsw-m", "DATASTORAGE_HNSW_M", storage.DefaultHNSWM, "HNSW index m (graph degree), applied when the index is created")
	fs.IntVar(&o.hnsw.EfConstruction, "hnsw-ef-construction", "DATASTORAGE_HNSW_EF_CONSTRUCTION", storage.DefaultHNSWEfConstruction, "HNSW index ef_construction, applied when the index is created")
	fs.IntVar(&o.hnsw.EfSearch, "hnsw-ef-search", "DATASTORAGE_HNSW_EF_SEARCH", storage.DefaultHNSWEfSearch, "HNSW ef_search of each similarity query")
	fs.StringVar(&o.logLevel, "log-level", "DATASTORAGE_LOG_LEVEL", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "DATASTORAGE_LOG_FORMAT", "json", "json or console")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.databaseURL == "" {
		return nil, fmt.Errorf("--database-url (or %s) is required", fs.Env("database-url"))
	}
	if o.vectorURL == "" {
		o.vectorURL = o.databaseURL
	}
	return o, nil
}

// validate checks, before anything is opened, what the packages' own
// Validate cannot phrase in flag terms, then lets them check the rest.
func (o *options) validate() error {
	switch o.authMode {
	case "static":
		if o.tokenFile == "" {
			return errors.New("--auth static needs --token-file")
		}
	case "tokenreview":
		if o.audience == "" {
			return errors.New("--auth tokenreview needs --token-audience")
		}
	default:
		return fmt.Errorf("--auth %q: want tokenreview or static", o.authMode)
	}
	if err := o.validateAuthz(); err != nil {
		return err
	}
	switch {
	case o.tlsCert == "" && o.tlsKey == "" && o.clientCA != "":
		return errors.New("--client-ca-file needs --tls-cert-file and --tls-key-file")
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return errors.New("--tls-cert-file and --tls-key-file go together")
	}
	switch o.embedder {
	case "hash":
	case "openai":
		if o.embedderURL == "" || o.embedderModel == "" {
			return errors.New("--embedder openai needs --embedder-url and --embedder-model")
		}
	default:
		return fmt.Errorf("--embedder %q: want hash or openai", o.embedder)
	}
	if err := o.hnsw.Validate(); err != nil {
		return err
	}
	var err error
	if o.lifecycle.Retention, err = lifecycle.ParseRetention(o.retention); err != nil {
		return fmt.Errorf("--retention: %w", err)
	}
	if o.embedWorkers < 0 {
		return fmt.Errorf("--embed-workers %d: want 0 (none in this replica) or more", o.embedWorkers)
	}
	if o.lifecycle.Ahead < 1 {
		return errors.New("--partitions-ahead must be at least 1")
	}
	if o.lifecycle.Interval <= 0 {
		return errors.New("--partition-check-interval must be positive")
	}
	if o.ledgerInterval <= 0 || o.checkpointEvery <= 0 {
		return errors.New("--ledger-sequence-interval and --checkpoint-interval must be positive")
	}
	if o.checkpointFile != "" && o.checkpointKey == "" {
		return errors.New("--checkpoint-file needs --checkpoint-key-file")
	}
	if err := o.lifecycle.Validate(); err != nil {
		return fmt.Errorf("--partition-period/--partitions-ahead/--retention: %w", err)
	}
	if o.readLimits.Burst > 0 && o.readLimits.Burst < central.MaxPageSize {
		return fmt.Errorf("--read-burst %d: must be at least a full page, %d rows", o.readLimits.Burst, central.MaxPageSize)
	}
	switch {
	case o.replicas.Static < 0:
		return fmt.Errorf("--replicas %d: want 0 (count the live replicas through the database) or the number of replicas", o.replicas.Static)
	case o.replicas.Heartbeat <= 0:
		return errors.New("--replica-heartbeat must be positive")
	case o.replicas.TTL <= o.replicas.Heartbeat:
		return fmt.Errorf("--replica-ttl %s must exceed --replica-heartbeat %s", o.replicas.TTL, o.replicas.Heartbeat)
	}
	if err := o.readLimits.Validate(); err != nil {
		return fmt.Errorf("--read-rate/--read-burst: %w", err)
	}
	return o.limits.Validate()
}

// validateAuthz checks --authz and the flags that go with it. SAR needs
// TokenReview: a static token file's identities are the central's own
// assertion, not users the API server authenticated, and RBAC would grant
// them whatever their made-up groups hold.
func (o *options) validateAuthz() error {
	switch o.authzMode {
	case "allowlist":
		return nil
	case "sar":
	default:
		return fmt.Errorf("--authz %q: want allowlist or sar", o.authzMode)
	}
	switch {
	case o.authzFile != "":
		return errors.New("--authz-file is an allow-list: it goes with --authz allowlist, not sar (RBAC grants the actions)")
	case o.authMode != "tokenreview":
		return errors.New("--authz sar needs --auth tokenreview: static tokens are not Kubernetes identities")
	case o.namespace == "":
		return errors.New("--authz sar needs --namespace, where the RoleBindings live")
	case o.sar.AllowedTTL <= 0 || o.sar.DeniedTTL <= 0:
		return errors.New("--authz-allowed-ttl and --authz-denied-ttl must be positive")
	}
	return nil
}
