package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/internal/backoff"
	"github.com/kubernaut/datastorage/wire"
)

// target is where a load scenario sends its records.
type target struct {
	name string
	// urls: controller i writes to urls[i%len(urls)].
	urls []string
	// tokens[w] is writer w's bearer token ("" for none).
	tokens [4]string
	// idSA is the service account under which the server derives the ID of
	// controller i's Idempotency-Key; nil when the server ignores the key
	// (the naive design), and then no ID can be predicted.
	idSA func(ctrl int) string
	// dsn is the database the records land in; "" when none (bare HTTP).
	dsn string
	// embTable counts embedded records; "": the central's, if any.
	embTable string
}

// ack is one acknowledged write.
type ack struct {
	id string
	at time.Time
}

// loadRun is what one load phase produced.
type loadRun struct {
	start, stop time.Time
	attempts    atomic.Int64
	accepted    atomic.Int64

	mu        sync.Mutex
	acks      []ack
	expected  map[string]struct{} // IDs every attempted write would get (nil: unknown)
	mismatch  int                 // acknowledged IDs that differ from the predicted one
	latencies []time.Duration
	errors    map[string]int
}

// errorClass names a failed write for the report.
func errorClass(err error) string {
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

// drive runs cfg.Controllers closed-loop controllers against t for d. With
// limit > 0 they share a pacer of limit writes/s. sample receives every
// sampleEvery-th acknowledgement (for the lag poller); it may be nil.
func drive(ctx context.Context, cfg Config, t target, d time.Duration, limit float64, sample chan<- ack, run *loadRun) error {
	clients := make([]*client.Client, cfg.Controllers)
	for i := range clients {
		c, err := client.New(client.Config{BaseURL: t.urls[i%len(t.urls)], Token: t.tokens[i%4],
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
	run.start = time.Now()
	for i := range cfg.Controllers {
		wg.Go(func() { run.controller(ctx, cfg, t, i, clients[i], pacer, stop, sample) })
	}
	backoff.Sleep(ctx, d, nil)
	close(stop)
	wg.Wait()
	run.stop = time.Now()
	return ctx.Err()
}

func newLoadRun(t target) *loadRun {
	run := &loadRun{errors: map[string]int{}}
	if t.idSA != nil {
		run.expected = map[string]struct{}{}
	}
	return run
}

const sampleEvery = 16

func (run *loadRun) controller(ctx context.Context, cfg Config, t target, i int, c *client.Client, pacer *rate.Limiter,
	stop <-chan struct{}, sample chan<- ack) {
	w := i % 4
	gen := newGenerator(cfg.Seed, uint64(i), cfg.RepeatFraction, cfg.AlertTexts)
	var (
		acks      []ack
		lats      []time.Duration
		expected  []string
		errs      = map[string]int{}
		mismatch  int
		sa        string
		sampleCnt int
	)
	if t.idSA != nil {
		sa = t.idSA(i)
	}
	for n := 0; ; n++ {
		select {
		case <-stop:
			run.mu.Lock()
			run.acks = append(run.acks, acks...)
			run.latencies = append(run.latencies, lats...)
			for _, id := range expected {
				run.expected[id] = struct{}{}
			}
			for k, v := range errs {
				run.errors[k] += v
			}
			run.mismatch += mismatch
			run.mu.Unlock()
			return
		default:
		}
		if pacer != nil {
			if err := pacer.Wait(ctx); err != nil {
				continue
			}
		}
		key := t.name + "-" + strconv.Itoa(i) + "-" + strconv.Itoa(n)
		rec := gen.record(w, key, time.Now())
		if t.idSA != nil {
			expected = append(expected, wire.IDForKey(sa, rec.Kind, key))
		}
		// In-flight writes finish after the stop: a cancelled write would
		// leave an unanswered record behind.
		wctx, cancel := context.WithTimeout(client.WithIdempotencyKey(context.WithoutCancel(ctx), key), 30*time.Second)
		run.attempts.Add(1)
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
			errs[errorClass(err)]++
			continue
		}
		run.accepted.Add(1)
		lats = append(lats, now.Sub(t0))
		a := ack{id: resp.AuditID, at: now}
		acks = append(acks, a)
		if t.idSA != nil && resp.AuditID != expected[len(expected)-1] {
			mismatch++
		}
		if sample != nil {
			if sampleCnt++; sampleCnt%sampleEvery == 0 {
				select {
				case sample <- a:
				default: // the poller is behind: skip this sample
				}
			}
		}
	}
}

// Percentiles of a distribution, in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
	N    int     `json:"n"`
}

func percentiles(ds []time.Duration) *Percentiles {
	if len(ds) == 0 {
		return nil
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	at := func(q float64) float64 { return ms(s[min(len(s)-1, int(q*float64(len(s))))]) }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return &Percentiles{P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: ms(s[len(s)-1]),
		Mean: ms(sum / time.Duration(len(s))), N: len(s)}
}

// progress prints a live line every second until done.
func progress(w io.Writer, name string, start time.Time, accepted *atomic.Int64, persisted func() int64, done <-chan struct{}) {
	if w == io.Discard {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastA, lastP int64
	for {
		select {
		case <-done:
			fmt.Fprintln(w)
			return
		case <-tick.C:
			a, p := accepted.Load(), persisted()
			fmt.Fprintf(w, "\r%-13s %5.1fs  accepted %9d (%7d/s)  persisted %9d (%7d/s)   ",
				name, time.Since(start).Seconds(), a, a-lastA, p, p-lastP)
			lastA, lastP = a, p
		}
	}
}
