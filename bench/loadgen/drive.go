package loadgen

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/internal/backoff"
	"github.com/kubernaut/datastorage/wire"
)

// Config is the shape of the load.
type Config struct {
	Controllers int // closed-loop controllers, each with its own client
	// RepeatFraction is the share of records that repeat one of AlertTexts
	// alert texts (an alert storm).
	RepeatFraction float64
	AlertTexts     int
	Seed           uint64 // of the record generator
	// EventTimeSpread, when positive, dates each record's createdAt or
	// executedAt (whichever its writer sends) a random 0 to EventTimeSpread
	// before it is written, so that the load's event times, and so its rows,
	// spread over that much of the past: over several time partitions.
	// Zero: the records carry the time they are written, and the generator's
	// sequence is unchanged.
	EventTimeSpread time.Duration
}

// Target is where the load sends its records.
type Target struct {
	// Name prefixes every Idempotency-Key, unique per run on one database.
	Name string
	// URLs: controller i writes to URLs[i%len(URLs)].
	URLs []string
	// Tokens[w] is writer w's bearer token ("" for none).
	Tokens [4]string
	// IDSA is the service account under which the server derives the ID of
	// controller i's Idempotency-Key; nil when the server ignores the key
	// (the naive design), and then no ID can be predicted.
	IDSA func(ctrl int) string
}

// Ack is one acknowledged write.
type Ack struct {
	ID      string
	At      time.Time
	Latency time.Duration // from the request to the answer; zero when unknown
}

// Run is the ledger of one load: what was attempted and acknowledged.
type Run struct {
	// Began and Ended bound the load; Drive sets them.
	Began, Ended time.Time
	Attempts     atomic.Int64
	Accepted     atomic.Int64
	// Recent, when set before Drive, receives each controller's latest
	// acknowledged remediation record. Nil: not kept.
	Recent *Recent
	// OnAck, when set before Drive, is called by controller ctrl with each
	// record it had acknowledged, its ID set to the acknowledged one. It is
	// called from every controller at once and must be quick; rec must not
	// change afterwards. Nil: none.
	OnAck func(ctrl int, rec wire.Record)

	mu       sync.Mutex
	acks     []Ack
	expected map[string]struct{} // IDs every attempted write would get (nil: unknown)
	mismatch int                 // acknowledged IDs that differ from the predicted one
	errors   map[string]int
}

// NewRun is an empty ledger for a load against t.
func NewRun(t Target) *Run {
	run := &Run{errors: map[string]int{}}
	if t.IDSA != nil {
		run.expected = map[string]struct{}{}
	}
	return run
}

// Expect records that a write with this ID was attempted outside Drive: it
// may be stored without an acknowledgement. It needs a Target with IDSA.
func (r *Run) Expect(id string) {
	r.mu.Lock()
	r.expected[id] = struct{}{}
	r.mu.Unlock()
}

// Acked records an acknowledgement of a write made outside Drive.
func (r *Run) Acked(id string, at time.Time) {
	r.mu.Lock()
	r.acks = append(r.acks, Ack{ID: id, At: at})
	r.mu.Unlock()
}

// Acks is a copy of the acknowledgements so far.
func (r *Run) Acks() []Ack {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Ack(nil), r.acks...)
}

// Errors counts the failed attempts by ErrorClass.
func (r *Run) Errors() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.errors)
}

// ErrorClass names a failed write for the report.
func ErrorClass(err error) string {
	var apiErr *client.APIError
	var ne net.Error
	switch {
	case errors.As(err, &apiErr):
		return strconv.Itoa(apiErr.StatusCode) + " " + apiErr.Body.Error
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "network"
	}
}

// Drive runs cfg.Controllers closed-loop controllers against t for d. With
// limit > 0 they share a pacer of limit writes/s. sample receives every
// SampleEvery-th acknowledgement (for a lag poller); it may be nil.
func Drive(ctx context.Context, cfg Config, t Target, d time.Duration, limit float64, sample chan<- Ack, run *Run) error {
	clients := make([]*client.Client, cfg.Controllers)
	for i := range clients {
		c, err := client.New(client.Config{BaseURL: t.URLs[i%len(t.URLs)], Token: t.Tokens[i%4],
			MaxIdleConnsPerHost: 2, Backoff: 50 * time.Millisecond})
		if err != nil {
			return err
		}
		clients[i] = c
		defer c.Close(ctx)
	}
	var pacer *rate.Limiter
	if limit > 0 {
		pacer = rate.NewLimiter(rate.Limit(limit), max(1, cfg.Controllers/4))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	run.Began = time.Now()
	for i := range cfg.Controllers {
		wg.Go(func() { run.controller(ctx, cfg, t, i, clients[i], pacer, stop, sample) })
	}
	backoff.Sleep(ctx, d, nil)
	close(stop)
	wg.Wait()
	run.Ended = time.Now()
	return ctx.Err()
}

// SampleEvery is how often a controller samples an acknowledgement.
const SampleEvery = 16

func (r *Run) controller(ctx context.Context, cfg Config, t Target, i int, c *client.Client, pacer *rate.Limiter,
	stop <-chan struct{}, sample chan<- Ack) {
	w := i % 4
	gen := NewGenerator(cfg.Seed, uint64(i), cfg.RepeatFraction, cfg.AlertTexts)
	var skew *rand.Rand // dates of EventTimeSpread, apart from the generator's sequence
	if cfg.EventTimeSpread > 0 {
		skew = rand.New(rand.NewPCG(cfg.Seed, uint64(i)+0x5be3d))
	}
	var (
		acks      []Ack
		expected  []string
		errs      = map[string]int{}
		mismatch  int
		sa        string
		sampleCnt int
	)
	if t.IDSA != nil {
		sa = t.IDSA(i)
	}
	for n := 0; ; n++ {
		select {
		case <-stop:
			r.mu.Lock()
			r.acks = append(r.acks, acks...)
			for _, id := range expected {
				r.expected[id] = struct{}{}
			}
			for k, v := range errs {
				r.errors[k] += v
			}
			r.mismatch += mismatch
			r.mu.Unlock()
			return
		default:
		}
		if pacer != nil {
			if err := pacer.Wait(ctx); err != nil {
				continue
			}
		}
		key := t.Name + "-" + strconv.Itoa(i) + "-" + strconv.Itoa(n)
		at := time.Now()
		if skew != nil {
			at = at.Add(-time.Duration(skew.Int64N(int64(cfg.EventTimeSpread))))
		}
		rec := gen.Record(w, key, at)
		if t.IDSA != nil {
			expected = append(expected, wire.IDForKey(sa, rec.Kind, key))
		}
		// In-flight writes finish after the stop: a cancelled write would
		// leave an unanswered record behind.
		wctx, cancel := context.WithTimeout(client.WithIdempotencyKey(context.WithoutCancel(ctx), key), 30*time.Second)
		r.Attempts.Add(1)
		t0 := time.Now()
		var (
			resp *wire.WriteResponse
			err  error
		)
		if rec.Kind == wire.KindWorkflow {
			resp, err = c.WriteWorkflowAudit(wctx, rec.Workflow)
		} else {
			resp, err = c.WriteRemediationAudit(wctx, rec.Remediation)
		}
		cancel()
		now := time.Now()
		if err != nil {
			errs[ErrorClass(err)]++
			continue
		}
		r.Accepted.Add(1)
		a := Ack{ID: resp.AuditID, At: now, Latency: now.Sub(t0)}
		acks = append(acks, a)
		if t.IDSA != nil && resp.AuditID != expected[len(expected)-1] {
			mismatch++
		}
		if r.Recent != nil && rec.Remediation != nil {
			r.Recent.Put(i, rec.Remediation)
		}
		if r.OnAck != nil {
			rec.ID = resp.AuditID
			r.OnAck(i, rec)
		}
		if sample != nil {
			if sampleCnt++; sampleCnt%SampleEvery == 0 {
				select {
				case sample <- a:
				default: // the poller is behind: skip this sample
				}
			}
		}
	}
}
