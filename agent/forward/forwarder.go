package forward

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/klauspost/compress/zstd"
	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/internal/backoff"
	"github.com/kubernaut/datastorage/internal/tokenfile"
	"github.com/kubernaut/datastorage/wire"
)

// Queue is what the forwarder needs of the durable queue (*queue.Queue).
type Queue interface {
	Read(ctx context.Context, maxRecords, maxBytes int) ([]queue.Entry, error)
	Ack(ctx context.Context, upTo queue.Key) error
	DeadLetter(ctx context.Context, entries []queue.Entry, reason string) error
	Depth() queue.Depth
	Appended() <-chan struct{}
}

var _ Queue = (*queue.Queue)(nil)

// settleTimeout bounds the queue write that records a confirmed batch; it
// runs even during shutdown so that a confirmed batch is not resent.
const settleTimeout = 10 * time.Second

// Forwarder is the loop that drains the queue to the central. New starts
// it; Close drains what it can and stops it.
type Forwarder struct {
	cfg   Config
	q     Queue
	log   zerolog.Logger
	url   string
	token *tokenfile.Source // nil without a token file
	enc   *zstd.Encoder
	// access asks the central what the identity may write; the loop only
	// prompts it after a refusal for authorization.
	access *Access

	cancel   context.CancelFunc
	draining chan struct{}
	done     chan struct{}
	once     sync.Once

	state string // last outcome class, for logging changes only (loop-owned)

	mBatches    *metrics.Counter
	mRecords    *metrics.Counter
	mDuplicates *metrics.Counter
	mDead       *metrics.Counter
	mBatchRecs  *metrics.Histogram
	mBatchBytes *metrics.Histogram
	mRequest    *metrics.Histogram
}

// New validates cfg and starts forwarding from q.
func New(cfg Config, q Queue) (*Forwarder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Client == nil {
		client, err := cfg.newClient()
		if err != nil {
			return nil, fmt.Errorf("forwarder: %w", err)
		}
		cfg.Client = client
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(1<<20),
		zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("forwarder: zstd: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := cfg.Metrics
	token := tokenSource(cfg.TokenFile)
	f := &Forwarder{
		cfg:         cfg,
		q:           q,
		log:         cfg.Logger.With().Str("component", "forwarder").Logger(),
		url:         strings.TrimRight(cfg.CentralURL, "/") + "/api/v1/audit/batch",
		token:       token,
		enc:         enc,
		access:      newAccess(cfg, cfg.Client, token),
		cancel:      cancel,
		draining:    make(chan struct{}),
		done:        make(chan struct{}),
		state:       "ok",
		mBatches:    s.NewCounter("agent_forward_batches_total"),
		mRecords:    s.NewCounter("agent_forward_records_total"),
		mDuplicates: s.NewCounter("agent_forward_duplicate_records_total"),
		mDead:       s.NewCounter("agent_forward_deadlettered_records_total"),
		mBatchRecs:  s.NewHistogram("agent_forward_batch_records"),
		mBatchBytes: s.NewHistogram("agent_forward_batch_compressed_bytes"),
		mRequest:    s.NewHistogram("agent_forward_request_seconds"),
	}
	go f.run(ctx)
	if cfg.AccessRefresh > 0 {
		go f.access.run(ctx)
	} else {
		close(f.access.done)
	}
	return f, nil
}

// Access is what the central said the identity may write, for the agent's
// edge (agent.Config.Access). It lives as long as the Forwarder.
func (f *Forwarder) Access() *Access { return f.access }

// Close stops taking new batches after the queue is empty: it forwards what
// it can until ctx ends, then abandons the batch in flight (it stays on disk
// and is resent after a restart). It is idempotent.
func (f *Forwarder) Close(ctx context.Context) error {
	f.once.Do(func() { close(f.draining) })
	select {
	case <-f.done:
	case <-ctx.Done():
		f.cancel()
		<-f.done
	}
	f.cancel()
	<-f.access.done
	return nil
}

func (f *Forwarder) isDraining() bool {
	select {
	case <-f.draining:
		return true
	default:
		return false
	}
}

// run is the loop: wait for a batch worth sending, read it, deliver it.
func (f *Forwarder) run(ctx context.Context) {
	defer close(f.done)
	defer f.enc.Close()
	for ctx.Err() == nil {
		if wait := f.untilReady(); wait != 0 {
			if wait < 0 && f.isDraining() {
				d := f.q.Depth()
				f.log.Info().Int64("records", d.Records).Msg("forwarder stopped: queue drained")
				return
			}
			f.idle(ctx, wait)
			continue
		}
		entries, err := f.q.Read(ctx, f.cfg.BatchMaxRecords, f.cfg.BatchMaxBytes)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Error().Err(err).Msg("reading the queue failed")
				backoff.Sleep(ctx, f.cfg.MaxBackoff, nil)
			}
			continue
		}
		if len(entries) == 0 { // only corrupt entries, now dead-lettered
			continue
		}
		_ = f.deliver(ctx, entries) // returns an error only when ctx ends
	}
}

// untilReady is 0 when a batch should be sent now, the time to wait for
// one to fill up, or -1 when the queue is empty.
func (f *Forwarder) untilReady() time.Duration {
	d := f.q.Depth()
	switch {
	case d.Records == 0:
		return -1
	case f.isDraining(), d.Records >= int64(f.cfg.BatchMaxRecords), d.Bytes >= int64(f.cfg.BatchMaxBytes):
		return 0
	}
	if left := f.cfg.Linger - f.cfg.Now().Sub(d.Oldest); left > 0 {
		return left
	}
	return 0
}

// idle waits for new records, the linger time (wait > 0), draining or the end.
func (f *Forwarder) idle(ctx context.Context, wait time.Duration) {
	var timer <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	draining := f.draining
	if f.isDraining() {
		draining = nil
	}
	select {
	case <-ctx.Done():
	case <-f.q.Appended():
	case <-timer:
	case <-draining:
	}
}

// deliver sends entries until each is confirmed or dead-lettered, splitting
// when the central asks for it. It returns only ctx's error.
func (f *Forwarder) deliver(ctx context.Context, entries []queue.Entry) error {
	items := make([][]byte, len(entries))
	for i := range entries {
		items[i] = entries[i].Item
	}
	raw, err := wire.JoinBatch(items)
	if err != nil {
		f.log.Warn().Err(err).Int("records", len(entries)).Msg("batch cannot be encoded: splitting")
		return f.split(ctx, entries, "unencodable: "+err.Error())
	}
	body := f.enc.EncodeAll(raw, make([]byte, 0, len(raw)/4))
	bo := backoff.New(f.cfg.MinBackoff, f.cfg.MaxBackoff)
	forceToken := false
	for {
		out := f.send(ctx, body, entries, forceToken)
		f.noteOutcome(out, len(entries))
		if out.class == classForbidden {
			f.access.askSoon() // RBAC changed: the edge should know
		}
		forceToken = out.class == classUnauthorized
		var wait time.Duration
		switch out.kind {
		case kindDone:
			f.mBatchBytes.Update(float64(len(body)))
			return f.settle(ctx, entries, out.results)
		case kindSplit:
			return f.split(ctx, entries, out.reason)
		case kindWait:
			wait = out.wait
			if wait <= 0 {
				wait = bo.Next()
			}
		default:
			wait = bo.Next()
		}
		if !backoff.Sleep(ctx, wait, nil) {
			return ctx.Err()
		}
	}
}

// split delivers the halves in order; a single record cannot be split and is
// dead-lettered with reason.
func (f *Forwarder) split(ctx context.Context, entries []queue.Entry, reason string) error {
	if len(entries) == 1 {
		return f.settle(ctx, entries, []wire.ItemResult{{
			ID: entries[0].ID, Status: wire.StatusRejected,
			Error: &wire.ErrorBody{Error: "undeliverable", Message: reason},
		}})
	}
	h := len(entries) / 2
	if err := f.deliver(ctx, entries[:h]); err != nil {
		return err
	}
	return f.deliver(ctx, entries[h:])
}

// settle records the central's verdicts: rejected records to the dead
// letters (with their reason), then the whole batch acknowledged.
func (f *Forwarder) settle(ctx context.Context, entries []queue.Entry, results []wire.ItemResult) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	byReason := map[string][]queue.Entry{}
	var reasons []string
	var dup, rejected int
	for i, r := range results {
		switch r.Status {
		case wire.StatusRejected:
			if r.Error != nil && r.Error.Error == wire.CodeAuthorizationFailed {
				f.access.askSoon()
			}
			reason := rejectReason(r.Error)
			if byReason[reason] == nil {
				reasons = append(reasons, reason)
			}
			byReason[reason] = append(byReason[reason], entries[i])
			rejected++
		case wire.StatusDuplicate:
			dup++
		}
	}
	for _, reason := range reasons {
		if err := f.q.DeadLetter(ctx, byReason[reason], reason); err != nil {
			f.log.Error().Err(err).Msg("dead-lettering failed: the batch will be resent")
			return nil
		}
		f.mDead.Add(len(byReason[reason]))
	}
	if err := f.q.Ack(ctx, entries[len(entries)-1].Key); err != nil {
		f.log.Error().Err(err).Msg("acknowledging a confirmed batch failed: it will be resent")
		return nil
	}
	f.mBatches.Inc()
	f.mBatchRecs.Update(float64(len(entries)))
	f.mRecords.Add(len(entries) - rejected)
	f.mDuplicates.Add(dup)
	return nil
}

// rejectReason is the dead-letter reason of a rejected record: the error
// code first (it doubles as the metric label), then the message and field.
// The field loses its "records[i]." prefix: a position in one batch means
// nothing later, and records refused alike then share one reason (and one
// dead-letter transaction).
func rejectReason(b *wire.ErrorBody) string {
	if b == nil {
		return "rejected: no reason given"
	}
	s := b.Error + ": " + b.Message
	if field := withoutBatchIndex(b.Field); field != "" {
		s += " (field " + field + ")"
	}
	return s
}

// withoutBatchIndex is "kind" for "records[3].kind".
func withoutBatchIndex(field string) string {
	rest, ok := strings.CutPrefix(field, "records[")
	if !ok {
		return field
	}
	i := strings.Index(rest, "].")
	if i < 1 || strings.Trim(rest[:i], "0123456789") != "" {
		return field
	}
	return rest[i+2:]
}

// noteOutcome counts failures and logs a change of state once.
func (f *Forwarder) noteOutcome(out outcome, n int) {
	if out.class != classOK {
		f.cfg.Metrics.GetOrCreateCounter(`agent_forward_errors_total{class="` + out.class + `"}`).Inc()
	}
	if out.class == f.state {
		return
	}
	prev := f.state
	f.state = out.class
	if out.class == classOK {
		f.log.Info().Str("after", prev).Msg("forwarding recovered")
		return
	}
	f.log.Warn().Err(out.err).Str("class", out.class).Int("records", n).Msg("forwarding failed: retrying")
}

var errBadResponse = errors.New("unreadable batch response")

// tokenSource is the token file's reader, or nil when there is none.
func tokenSource(path string) *tokenfile.Source {
	if path == "" {
		return nil
	}
	return tokenfile.New(path)
}
