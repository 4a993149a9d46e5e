package embedpipe

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// pipeMetrics are the pipeline's series:
//
//	datastorage_embed_backlog_audits               audits waiting for an embedding
//	datastorage_embed_backlog_oldest_age_seconds   age of the oldest backlog entry
//	datastorage_embed_vectors_written_total        vectors inserted (distinct documents)
//	datastorage_embed_dedup_hits_total             audits linked to a vector stored already
//	datastorage_embed_audits_total                 audits embedded (linked) in all
//	datastorage_embed_orphans_total                backlog entries whose audit row is gone
//	datastorage_embed_batch_failures_total         failed rounds (backlog kept, retried)
//	datastorage_embed_duration_seconds{provider=…} one Embed call
type pipeMetrics struct {
	depth, oldestAge atomic.Int64
	vectorsWritten   *metrics.Counter
	dedupHits        *metrics.Counter
	auditsEmbedded   *metrics.Counter
	orphans          *metrics.Counter
	failures         *metrics.Counter
	embedDuration    *metrics.Histogram
}

func newPipeMetrics(set *metrics.Set, provider string) *pipeMetrics {
	m := &pipeMetrics{
		vectorsWritten: set.NewCounter(`datastorage_embed_vectors_written_total`),
		dedupHits:      set.NewCounter(`datastorage_embed_dedup_hits_total`),
		auditsEmbedded: set.NewCounter(`datastorage_embed_audits_total`),
		orphans:        set.NewCounter(`datastorage_embed_orphans_total`),
		failures:       set.NewCounter(`datastorage_embed_batch_failures_total`),
		embedDuration:  set.NewHistogram(fmt.Sprintf(`datastorage_embed_duration_seconds{provider=%q}`, provider)),
	}
	set.NewGauge(`datastorage_embed_backlog_audits`, func() float64 { return float64(m.depth.Load()) })
	set.NewGauge(`datastorage_embed_backlog_oldest_age_seconds`, func() float64 {
		return time.Duration(m.oldestAge.Load()).Seconds()
	})
	return m
}
