package forward

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/go-json-experiment/json"
	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/internal/backoff"
	"github.com/kubernaut/datastorage/internal/tokenfile"
	"github.com/kubernaut/datastorage/wire"
)

// accessMinGap spaces the questions that refusals prompt: refusals come in
// bursts (every batch of a refused kind, every retry of a 403).
const accessMinGap = time.Second

// Bits of Access.state.
const (
	accessKnown uint32 = 1 << iota
	accessRemediation
	accessWorkflow
)

// Access is what the central last said the agent's identity may write
// (GET /api/v1/access), so that the agent's edge refuses at once a record the
// central would refuse. Until the central has answered (unreachable, 401,
// 503, or 404 from a central older than the endpoint) every kind is allowed
// and the central decides per record, as before. A failed question keeps the
// last answer (an outage is not a change of RBAC); a 404 forgets it (the
// central was rolled back to before the endpoint).
//
// The Forwarder owns it and lends it its client, TLS and token: it asks at
// start (without holding up New), every Config.AccessRefresh, and soon after
// the central refuses a record or a batch for authorization.
type Access struct {
	state atomic.Uint32 // accessKnown | accessRemediation | accessWorkflow

	url     string
	client  *http.Client
	token   *tokenfile.Source // nil: no Authorization
	timeout time.Duration
	refresh time.Duration // < 0: never ask
	log     zerolog.Logger
	metrics *metrics.Set

	nudge chan struct{} // cap 1: ask soon
	done  chan struct{}
	class string // last outcome, for logging changes only (loop-owned)
}

func newAccess(cfg Config, client *http.Client, token *tokenfile.Source) *Access {
	a := &Access{
		url:     strings.TrimRight(cfg.CentralURL, "/") + "/api/v1/access",
		client:  client,
		token:   token,
		timeout: cfg.RequestTimeout,
		refresh: cfg.AccessRefresh,
		log:     cfg.Logger.With().Str("component", "access").Logger(),
		metrics: cfg.Metrics,
		nudge:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		class:   "unknown",
	}
	cfg.Metrics.NewGauge("agent_access_known", func() float64 {
		return float64(a.state.Load() & accessKnown)
	})
	return a
}

// Allows reports whether the identity may write kind: true while the
// central's answer is unknown. One atomic load; a nil Access allows all.
func (a *Access) Allows(kind wire.Kind) bool {
	if a == nil {
		return true
	}
	s := a.state.Load()
	switch {
	case s&accessKnown == 0:
		return true
	case kind == wire.KindRemediation:
		return s&accessRemediation != 0
	case kind == wire.KindWorkflow:
		return s&accessWorkflow != 0
	default:
		return true // not a kind the central knows: it will say so itself
	}
}

// askSoon makes the loop ask again within accessMinGap; it never blocks.
func (a *Access) askSoon() {
	select {
	case a.nudge <- struct{}{}:
	default:
	}
}

// run asks at once, then every refresh and after each nudge.
func (a *Access) run(ctx context.Context) {
	defer close(a.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-a.nudge:
			if wait := accessMinGap - time.Since(last); wait > 0 && !backoff.Sleep(ctx, wait, nil) {
				return
			}
		}
		last = time.Now()
		a.ask(ctx)
		timer.Reset(a.refresh)
	}
}

// ask puts one question and records the answer; it logs changes only.
func (a *Access) ask(ctx context.Context) {
	class, err := a.fetch(ctx)
	if ctx.Err() != nil {
		return
	}
	a.metrics.GetOrCreateCounter(`agent_access_requests_total{result="` + class + `"}`).Inc()
	if class == a.class || class == classOK { // a learnt answer is logged by learn
		a.class = class
		return
	}
	a.class = class
	if class == classNotSupported {
		a.log.Info().Msg("the central does not serve GET /api/v1/access: every kind is accepted, the central decides per record")
		return
	}
	msg := "asking the central what this identity may write failed: every kind is accepted until it answers"
	if a.state.Load()&accessKnown != 0 {
		msg = "asking the central what this identity may write failed: its last answer stands"
	}
	a.log.Warn().Err(err).Str("class", class).Msg(msg)
}

// classNotSupported: a central without GET /api/v1/access (404).
const classNotSupported = "not_supported"

// maxAccessBytes bounds what is read of an answer to GET /api/v1/access.
const maxAccessBytes = 64 << 10

func (a *Access) fetch(ctx context.Context) (string, error) {
	var tok string
	if a.token != nil {
		var err error
		if tok, err = a.token.Token(); err != nil {
			return classToken, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return classNetwork, err
	}
	req.Header.Set("Accept", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return classNetwork, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAccessBytes))
	if err != nil {
		return classNetwork, fmt.Errorf("read answer: %w", err)
	}
	statusErr := fmt.Errorf("central answered %d: %s", resp.StatusCode, errorSummary(body))
	switch status := resp.StatusCode; {
	case status == http.StatusOK:
		var ans wire.AccessResponse
		if err := json.Unmarshal(body, &ans); err != nil || ans.Actions == nil {
			return classBadResponse, fmt.Errorf("%w: GET /api/v1/access: no list of actions", errBadResponse)
		}
		a.learn(ans)
		return classOK, nil
	case status == http.StatusNotFound:
		a.state.Store(0)
		return classNotSupported, statusErr
	case status == http.StatusUnauthorized:
		if a.token != nil {
			a.token.Invalidate() // rotated within the same second and size, maybe
		}
		return classUnauthorized, statusErr
	case status == http.StatusServiceUnavailable, status == http.StatusTooManyRequests:
		return classUnavailable, statusErr
	case status >= 500:
		return classServer, statusErr
	default:
		return classUnexpected, statusErr
	}
}

// learn stores an answer and logs it when it changes what is allowed.
func (a *Access) learn(ans wire.AccessResponse) {
	s := accessKnown
	var writes []string
	for _, act := range ans.Actions {
		switch act {
		case "write:" + string(wire.KindRemediation):
			s |= accessRemediation
		case "write:" + string(wire.KindWorkflow):
			s |= accessWorkflow
		default:
			continue
		}
		writes = append(writes, strings.TrimPrefix(act, "write:"))
	}
	if a.state.Swap(s) != s {
		a.log.Info().Str("identity", ans.Identity).Strs("writes", writes).
			Msg("access learnt from the central: writes of other kinds are refused with 403")
	}
}
