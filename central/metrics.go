package central

import (
	"fmt"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/wire"
)

// serverMetrics are the central's own series; auth, storage pool and rate
// limiter series are registered on the same set by their owners and cmd.
type serverMetrics struct {
	set            *metrics.Set
	writeDuration  *metrics.Histogram
	batchSize      *metrics.Histogram
	rowsRead       *metrics.Counter
	exportDuration *metrics.Histogram
}

func newServerMetrics(set *metrics.Set) *serverMetrics {
	return &serverMetrics{
		set:           set,
		writeDuration: set.NewHistogram(`datastorage_write_duration_seconds`),
		batchSize:     set.NewHistogram(`datastorage_batch_records`),
		// Rows answered by the read API, exports included: what the read
		// budget charges.
		rowsRead:       set.NewCounter(`datastorage_read_rows_total`),
		exportDuration: set.NewHistogram(`datastorage_export_duration_seconds`),
	}
}

func (m *serverMetrics) observeRequest(endpoint string, status int, d time.Duration) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`datastorage_http_requests_total{endpoint=%q,code="%s"}`,
		endpoint, strconv.Itoa(status))).Inc()
	m.set.GetOrCreateHistogram(fmt.Sprintf(`datastorage_http_request_duration_seconds{endpoint=%q}`, endpoint)).Update(d.Seconds())
}

// records counts records by kind and outcome (persisted, duplicate, rejected).
func (m *serverMetrics) records(kind wire.Kind, outcome string, n int) {
	if kind != wire.KindRemediation && kind != wire.KindWorkflow {
		kind = "unknown" // never a client-chosen label value
	}
	m.set.GetOrCreateCounter(fmt.Sprintf(`datastorage_records_total{kind=%q,outcome=%q}`, kind, outcome)).Add(n)
}

// rateLimited counts refusals by service account; the label set is bounded
// by the authorized service accounts, since only they reach the limiter.
func (m *serverMetrics) rateLimited(serviceAccount string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`datastorage_ratelimit_rejections_total{service_account=%q}`, serviceAccount)).Inc()
}

// metricsHandler serves the metrics port: /metrics, and /healthz and /readyz
// as on the API port, for probes that cannot pass the API port's TLS (a
// central with --client-ca-file refuses the kubelet, which presents no
// client certificate).
func (s *Server) metricsHandler(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4")
		s.cfg.Metrics.WritePrometheus(ctx)
	case "/healthz":
		healthy(ctx)
	case "/readyz":
		s.ready(ctx)
	default:
		edge.WriteError(ctx, wire.NotFound(), 0)
	}
}
