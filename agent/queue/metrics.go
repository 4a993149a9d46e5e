package queue

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
)

func (q *Queue) registerMetrics() {
	s := q.cfg.Metrics
	q.mAppended = s.NewCounter("agent_queue_appended_records_total")
	q.mCommits = s.NewCounter("agent_queue_commits_total")
	q.mFull = s.NewCounter("agent_queue_full_rejections_total")
	q.mDiskFull = s.NewCounter("agent_queue_disk_full_rejections_total")
	q.mAcked = s.NewCounter("agent_queue_acked_records_total")
	q.mReclaims = s.NewCounter("agent_queue_reclaims_total")
	q.mDeadDeleted = s.NewCounter("agent_queue_deadletter_deleted_total")
	q.mReplayed = s.NewCounter("agent_queue_deadletter_replayed_total")
	q.mCommitD = s.NewHistogram("agent_queue_commit_fsync_seconds")
	q.mGroup = s.NewHistogram("agent_queue_commit_group_records")
	s.NewGauge("agent_queue_buffered_records", func() float64 { return float64(q.records.Load()) })
	s.NewGauge("agent_queue_buffered_bytes", func() float64 { return float64(q.bytes.Load()) })
	s.NewGauge("agent_queue_max_bytes", func() float64 { return float64(q.cfg.MaxBytes) })
	s.NewGauge("agent_queue_deadletter_records", func() float64 { return float64(q.deadRecords.Load()) })
	s.NewGauge("agent_queue_deadletter_bytes", func() float64 { return float64(q.deadBytes.Load()) })
	s.NewGauge("agent_queue_oldest_age_seconds", func() float64 {
		d := q.Depth()
		if d.Oldest.IsZero() {
			return 0
		}
		return max(0, q.cfg.Now().Sub(d.Oldest).Seconds())
	})
}

// metricDead counts dead letters by reason class (the reason is a wire error
// code or "corrupt", a small set).
func (q *Queue) metricDead(reason string) *metrics.Counter {
	return q.cfg.Metrics.GetOrCreateCounter(fmt.Sprintf(`agent_queue_deadlettered_total{reason=%q}`, reasonClass(reason)))
}

// reasonClass keeps the label's cardinality small: the part before ":".
func reasonClass(reason string) string {
	for i := range len(reason) {
		if reason[i] == ':' || reason[i] == ' ' {
			return reason[:i]
		}
	}
	if len(reason) > 40 {
		return reason[:40]
	}
	return reason
}

// badgerLogger adapts zerolog to badger.Logger; Badger's info chatter is debug.
type badgerLogger struct{ log zerolog.Logger }

func (l badgerLogger) Errorf(f string, a ...any)   { l.log.Error().Msgf("badger: "+f, a...) }
func (l badgerLogger) Warningf(f string, a ...any) { l.log.Warn().Msgf("badger: "+f, a...) }
func (l badgerLogger) Infof(f string, a ...any)    { l.log.Debug().Msgf("badger: "+f, a...) }
func (l badgerLogger) Debugf(f string, a ...any)   { l.log.Trace().Msgf("badger: "+f, a...) }
