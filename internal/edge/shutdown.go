package edge

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Shutdown stops srv accepting and lets the requests in flight finish until
// ctx ends. Connections still open then are left to the process's exit, and
// that is not an error: fasthttp counts a keep-alive connection that has sent
// nothing yet as busy for its first five seconds (an HTTP client dials ahead
// of need), and a request cut short was never acknowledged, so its client
// sends it again.
func Shutdown(ctx context.Context, srv *fasthttp.Server, log zerolog.Logger) error {
	err := srv.ShutdownWithContext(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		log.Warn().Msg("shutdown grace over with connections open: they close with the process")
		return nil
	}
	return err
}
