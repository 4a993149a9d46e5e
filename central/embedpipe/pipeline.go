package embedpipe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/pgvector/pgvector-go"
	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/central/embed"
	"github.com/kubernaut/datastorage/internal/backoff"
	"github.com/kubernaut/datastorage/storage"
)

// Defaults for Config's zero values.
const (
	DefaultWorkers       = 2
	DefaultBatchSize     = 256
	DefaultPollInterval  = 500 * time.Millisecond
	DefaultMinBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff    = 10 * time.Second
	DefaultStatsInterval = 5 * time.Second
	DefaultBatchTimeout  = 60 * time.Second
	DefaultLease         = 15 * time.Second
)

// Audits is the audit database side: *storage.DB.
type Audits interface {
	ClaimOutbox(ctx context.Context, n int, lease time.Duration) (*storage.OutboxClaim, error)
	ExtendOutboxClaim(ctx context.Context, c *storage.OutboxClaim, lease time.Duration) error
	OutboxStats(ctx context.Context) (storage.OutboxStats, error)
	EnqueueByID(ctx context.Context, refs []storage.RecordRef) error
}

// Vectors is the vector database side: *storage.VectorDB.
type Vectors interface {
	KnownHashes(ctx context.Context, hashes [][]byte) (map[string]bool, error)
	Write(ctx context.Context, vectors []storage.Vector, links []storage.Link) (int, error)
	UnownedLinks(ctx context.Context, limit int) ([]storage.RecordRef, error)
	DeleteUnownedLinks(ctx context.Context, refs []storage.RecordRef) error
}

// Config configures a Pipeline. Audits, Vectors and Embedder are required.
type Config struct {
	Audits   Audits
	Vectors  Vectors
	Embedder embed.Embedder

	// Workers is the number of concurrent workers. Zero: DefaultWorkers.
	Workers int
	// BatchSize is the number of audits a worker claims at once (a claim
	// never splits one committed audit batch, so it may hold more). Zero:
	// DefaultBatchSize.
	BatchSize int
	// PollInterval is how long an idle worker waits before looking at the
	// backlog again. Zero: DefaultPollInterval.
	PollInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed batch, doubled
	// on each consecutive failure. Zero: DefaultMinBackoff, DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// StatsInterval is how often the backlog depth and age are read for the
	// metrics. Zero: DefaultStatsInterval.
	StatsInterval time.Duration
	// BatchTimeout bounds one claim-embed-write-clear round. Zero:
	// DefaultBatchTimeout.
	BatchTimeout time.Duration
	// Lease is how long claimed entries stay leased after the claim and
	// after each renewal; the worker renews every third of it while its
	// round runs. Entries whose worker died (a replica killed, its database
	// connection lost in a failover) are claimable again at most Lease after
	// its last renewal. Zero: DefaultLease.
	Lease time.Duration

	// Logger receives the pipeline's log. Zero: disabled.
	Logger zerolog.Logger
	// Metrics receives the pipeline's metrics. Nil: a private set.
	Metrics *metrics.Set
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Audits == nil:
		return errors.New("embedpipe: Config.Audits is required")
	case c.Vectors == nil:
		return errors.New("embedpipe: Config.Vectors is required")
	case c.Embedder == nil:
		return errors.New("embedpipe: Config.Embedder is required")
	case c.Workers < 0:
		return fmt.Errorf("embedpipe: Config.Workers must not be negative, got %d", c.Workers)
	case c.BatchSize < 0:
		return fmt.Errorf("embedpipe: Config.BatchSize must not be negative, got %d", c.BatchSize)
	case c.PollInterval < 0, c.MinBackoff < 0, c.MaxBackoff < 0, c.StatsInterval < 0, c.BatchTimeout < 0, c.Lease < 0:
		return errors.New("embedpipe: Config durations must not be negative")
	case c.MaxBackoff != 0 && c.MinBackoff > c.MaxBackoff:
		return fmt.Errorf("embedpipe: Config.MinBackoff (%s) exceeds MaxBackoff (%s)", c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

func (c Config) withDefaults() Config {
	c.Workers = cmp.Or(c.Workers, DefaultWorkers)
	c.BatchSize = cmp.Or(c.BatchSize, DefaultBatchSize)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	c.MinBackoff = cmp.Or(c.MinBackoff, DefaultMinBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	c.StatsInterval = cmp.Or(c.StatsInterval, DefaultStatsInterval)
	c.BatchTimeout = cmp.Or(c.BatchTimeout, DefaultBatchTimeout)
	c.Lease = cmp.Or(c.Lease, DefaultLease)
	if c.Metrics == nil { // not cmp.Or: it would build a set to throw away
		c.Metrics = metrics.NewSet()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Pipeline is the running workers.
type Pipeline struct {
	cfg     Config
	log     zerolog.Logger
	m       *pipeMetrics
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	wake    chan struct{}
	closed  atomic.Bool
	closeMu sync.Mutex
}

// New validates cfg and starts the workers and the backlog statistics loop.
func New(cfg Config) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pipeline{
		cfg:    cfg,
		log:    cfg.Logger.With().Str("component", "embedpipe").Logger(),
		m:      newPipeMetrics(cfg.Metrics, cfg.Embedder.Provider()),
		cancel: cancel,
		wake:   make(chan struct{}, cfg.Workers),
	}
	for i := range cfg.Workers {
		p.wg.Add(1)
		go p.worker(ctx, i)
	}
	p.wg.Add(2)
	go p.statsLoop(ctx)
	go p.relinkUnowned(ctx)
	return p, nil
}

// relinkBatch bounds the unowned links one round re-links.
const relinkBatch = 1000

// relinkUnowned makes again, once per writer, the links whose writer is not
// known (made before records had owners, in a vector database apart from
// the audit one: migration 0005), so that search joins every result to its
// writer's record. Their audits are enqueued before the links are deleted: a
// crash in between only enqueues them twice, and links are idempotent. It
// returns when none is left; usually there is none to begin with.
func (p *Pipeline) relinkUnowned(ctx context.Context) {
	defer p.wg.Done()
	bo := backoff.New(p.cfg.MinBackoff, p.cfg.MaxBackoff)
	total := 0
	for ctx.Err() == nil {
		refs, err := p.cfg.Vectors.UnownedLinks(ctx, relinkBatch)
		if err == nil && len(refs) == 0 {
			if total > 0 {
				p.log.Info().Int("audits", total).Msg("links without a writer re-enqueued")
			}
			return
		}
		if err == nil {
			err = p.cfg.Audits.EnqueueByID(ctx, refs)
		}
		if err == nil {
			err = p.cfg.Vectors.DeleteUnownedLinks(ctx, refs)
		}
		if err != nil {
			wait := bo.Step() // the ceiling, without jitter
			p.log.Debug().Err(err).Dur("backoff", wait).Msg("re-linking audits without a writer failed")
			backoff.Sleep(ctx, wait, nil)
			continue
		}
		bo.Reset()
		total += len(refs)
		p.Notify()
	}
}

// Notify wakes an idle worker: new entries were committed. It never blocks.
func (p *Pipeline) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Close stops the workers: a batch in flight is abandoned and its claim
// rolled back (its entries stay in the backlog). It waits for the workers up
// to ctx's deadline and is idempotent.
func (p *Pipeline) Close(ctx context.Context) error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed.Swap(true) {
		return nil
	}
	p.cancel()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedpipe: close: %w", ctx.Err())
	}
}

func (p *Pipeline) worker(ctx context.Context, id int) {
	defer p.wg.Done()
	log := p.log.With().Int("worker", id).Logger()
	bo := backoff.New(p.cfg.MinBackoff, p.cfg.MaxBackoff)
	failing := false
	for ctx.Err() == nil {
		n, err := p.RunOnce(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			ceiling := bo.Step()
			if !failing {
				log.Warn().Err(err).Msg("embedding batch failed; backlog kept, retrying with backoff")
			} else {
				log.Debug().Err(err).Dur("backoff", ceiling).Msg("embedding batch failed again")
			}
			failing = true
			p.m.failures.Inc()
			backoff.Sleep(ctx, bo.Jitter(ceiling), nil)
		case n == 0:
			if failing {
				log.Info().Msg("embedding recovered")
				failing = false
				bo.Reset()
			}
			backoff.Sleep(ctx, p.cfg.PollInterval, p.wake)
		default:
			if failing {
				log.Info().Msg("embedding recovered")
				failing = false
				bo.Reset()
			}
		}
	}
}

// RunOnce drains one batch: claim, embed the documents not stored yet, write
// vectors and links, clear. It returns how many audits it cleared (0: the
// backlog was empty). Workers call it in a loop; benchmarks and tests may
// call it directly.
func (p *Pipeline) RunOnce(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.BatchTimeout)
	defer cancel()
	// A short lease, renewed while this round runs: no other worker takes
	// the entries while this one may still store them, and a worker that
	// dies holds them for at most one lease.
	claim, err := p.cfg.Audits.ClaimOutbox(ctx, p.cfg.BatchSize, p.cfg.Lease)
	if err != nil {
		return 0, fmt.Errorf("embedpipe: claim: %w", err)
	}
	defer claim.Release(ctx)
	if len(claim.Entries) == 0 {
		return 0, nil
	}
	stopRenewing := p.renew(ctx, claim)
	defer stopRenewing()

	identity := p.cfg.Embedder.Identity()
	links := make([]storage.Link, 0, len(claim.Entries))
	hashes := make([][]byte, 0, len(claim.Entries))
	docs := make(map[string]string, len(claim.Entries)) // hash → document, one per distinct hash
	for _, e := range claim.Entries {
		if e.Record == nil {
			p.m.orphans.Inc()
			continue
		}
		doc := embed.Document(e.Record)
		h := embed.ContentHash(identity, doc)
		if _, ok := docs[string(h)]; !ok {
			docs[string(h)] = doc
			hashes = append(hashes, h)
		}
		rec := e.Record
		l := storage.Link{RecordRef: e.RecordRef, ContentHash: h, OccurredAt: storage.OccurredAt(rec)}
		if rec.Remediation != nil {
			l.Cluster, l.Namespace = rec.Remediation.Cluster, rec.Remediation.Namespace
		}
		links = append(links, l)
	}

	known, err := p.cfg.Vectors.KnownHashes(ctx, hashes)
	if err != nil {
		return 0, fmt.Errorf("embedpipe: look up hashes: %w", err)
	}
	var (
		newHashes [][]byte
		texts     []string
	)
	for _, h := range hashes {
		if !known[string(h)] {
			newHashes = append(newHashes, h)
			texts = append(texts, docs[string(h)])
		}
	}
	vectors := make([]storage.Vector, len(texts))
	if len(texts) > 0 {
		start := time.Now()
		embs, err := p.cfg.Embedder.Embed(ctx, texts)
		p.m.embedDuration.UpdateDuration(start)
		if err != nil {
			return 0, fmt.Errorf("embedpipe: embed %d documents: %w", len(texts), err)
		}
		if len(embs) != len(texts) {
			return 0, fmt.Errorf("embedpipe: embedder returned %d vectors for %d documents", len(embs), len(texts))
		}
		for i := range texts {
			vectors[i] = storage.Vector{ContentHash: newHashes[i], Embedding: pgvector.NewVector(embs[i])}
		}
	}
	written, err := p.cfg.Vectors.Write(ctx, vectors, links)
	if err != nil {
		return 0, fmt.Errorf("embedpipe: write %d vectors, %d links: %w", len(vectors), len(links), err)
	}
	if err := claim.Complete(ctx); err != nil {
		return 0, fmt.Errorf("embedpipe: clear backlog: %w", err)
	}
	p.m.vectorsWritten.Add(written)
	p.m.dedupHits.Add(len(links) - written)
	p.m.auditsEmbedded.Add(len(links))
	return len(claim.Entries), nil
}

// renew extends claim's lease every third of Lease until stop is called.
// A failed renewal is retried at the next tick; if the lease ends meanwhile,
// another worker may redo the entries, which stores nothing twice.
func (p *Pipeline) renew(ctx context.Context, claim *storage.OutboxClaim) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			backoff.Sleep(ctx, p.cfg.Lease/3, nil)
			if ctx.Err() != nil {
				return
			}
			rctx, rcancel := context.WithTimeout(ctx, p.cfg.Lease/3)
			err := p.cfg.Audits.ExtendOutboxClaim(rctx, claim, p.cfg.Lease)
			rcancel()
			if err != nil && ctx.Err() == nil {
				p.log.Debug().Err(err).Msg("embedding backlog lease not renewed")
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (p *Pipeline) statsLoop(ctx context.Context) {
	defer p.wg.Done()
	for {
		sctx, cancel := context.WithTimeout(ctx, p.cfg.StatsInterval)
		st, err := p.cfg.Audits.OutboxStats(sctx)
		cancel()
		if err == nil {
			p.m.depth.Store(st.Depth)
			age := int64(0)
			if !st.Oldest.IsZero() {
				age = int64(p.cfg.Now().Sub(st.Oldest))
			}
			p.m.oldestAge.Store(max(age, 0))
		} else if ctx.Err() == nil {
			p.log.Debug().Err(err).Msg("backlog statistics unavailable")
		}
		backoff.Sleep(ctx, p.cfg.StatsInterval, nil)
		if ctx.Err() != nil {
			return
		}
	}
}
