package central

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/storage"
)

// GET /api/v1/ledger/verify: the tamper-evidence check (package ledger) of
// the whole trail, or of entries from..through, held against the known
// checkpoints, for callers allowed authz.VerifyLedger. The answer is 200
// with the report whether or not the trail verifies ("ok", and the first
// failure); a verification is a full scan, so one runs at a time per
// replica (409 while one does). `central verify` does the same offline.

const pathLedgerVerify = "/api/v1/ledger/verify"

// DefaultVerifyTimeout bounds one verification through the API; larger
// trails are for `central verify`.
const DefaultVerifyTimeout = 5 * time.Minute

// LedgerStore is the audit database's ledger (storage.DB).
type LedgerStore interface {
	VerifyLedger(ctx context.Context, opts storage.VerifyOptions) (*ledger.Report, error)
}

// LedgerConfig enables the verification endpoint.
type LedgerConfig struct {
	Store LedgerStore
	// Checkpoints returns the checkpoints to hold the chain against, their
	// signatures checked (nil: none).
	Checkpoints func(ctx context.Context) ([]ledger.Checkpoint, error)
	// Timeout: zero is DefaultVerifyTimeout.
	Timeout time.Duration

	running atomic.Bool
}

// VerifyAnswer is the endpoint's body.
type VerifyAnswer struct {
	OK           bool            `json:"ok"`
	FirstFailure *ledger.Failure `json:"firstFailure,omitempty"`
	*ledger.Report
}

func (s *Server) verifyLedger(ctx *fasthttp.RequestCtx) error {
	lc := s.cfg.Ledger
	if lc == nil {
		return edge.NotFound()
	}
	id, err := s.caller(ctx)
	if err != nil {
		return err
	}
	if err := s.authorize(ctx, id, authz.VerifyLedger); err != nil {
		return err
	}
	params, err := queryParams(ctx.QueryArgs(), []string{"from", "through"})
	if err != nil {
		return err
	}
	var opts storage.VerifyOptions
	for name, dst := range map[string]*int64{"from": &opts.From, "through": &opts.Through} {
		if v, ok := params[name]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return badParam(name, name+" must be a sequence number (a whole number, 0 or more)")
			}
			*dst = n
		}
	}
	if opts.Through > 0 && opts.Through < opts.From {
		return badParam("through", "through must not be before from")
	}
	if !lc.running.CompareAndSwap(false, true) {
		return &conflictError{message: "A ledger verification is already running on this replica; retry when it has finished"}
	}
	defer lc.running.Store(false)
	vctx, cancel := context.WithTimeout(ctx, cmp.Or(lc.Timeout, DefaultVerifyTimeout))
	defer cancel()
	if lc.Checkpoints != nil {
		if opts.Checkpoints, err = lc.Checkpoints(vctx); err != nil {
			return fmt.Errorf("checkpoints: %w", err)
		}
	}
	report, err := lc.Store.VerifyLedger(vctx, opts)
	if err != nil {
		return err
	}
	answer := VerifyAnswer{OK: report.OK(), Report: report}
	if len(report.Failures) > 0 {
		answer.FirstFailure = &report.Failures[0]
	}
	s.log.Info().Str("caller", id.Key()).Bool("ok", answer.OK).Int64("from", report.From).Int64("through", report.Through).
		Int("failures", report.FailuresTotal).Msg("ledger verified")
	return edge.WriteJSON(ctx, fasthttp.StatusOK, answer)
}
