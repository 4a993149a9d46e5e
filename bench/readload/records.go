package readload

import (
	"time"

	"github.com/kubernaut/datastorage/wire"
)

// Generator makes the audits Load stores, as the records their writers
// send, for measurements that write through storage (bench/lifecycle):
// the same remediations, writers and field values as Load's rows for the
// same seed and times. Not safe for concurrent use.
type Generator struct {
	g   *generator
	rem []remRow
	wf  []wfRow
}

// NewGenerator returns a Generator of the data seed makes.
func NewGenerator(seed uint64) *Generator { return &Generator{g: newGenerator(seed)} }

// Remediation calls add with each audit of one remediation that began at
// t0 (3 to 6, from the four writers, over the next minutes), in the order
// its writers send them, with the service account of its writer.
func (g *Generator) Remediation(t0 time.Time, add func(serviceAccount string, rec wire.Record)) {
	g.rem, g.wf = g.rem[:0], g.wf[:0]
	g.g.remediation(t0, &g.rem, &g.wf)
	for i := range g.rem {
		add(g.rem[i].sa, g.rem[i].record())
	}
	for i := range g.wf {
		add(g.wf[i].sa, g.wf[i].record())
	}
}

// record is the record whose row r is (an empty field, or a negative
// number, was not sent). A value receiver: the record points into its own
// copy of the row, not into the generator's reused slices.
func (r remRow) record() wire.Record {
	a := &wire.RemediationAudit{RemediationRequestID: r.rr, AlertName: r.alert, Namespace: r.ns, Cluster: r.cluster,
		Priority: r.prio, ActionType: r.action, Reasoning: r.reason, TargetResource: r.target, Status: r.status,
		ErrorMessage: r.errMsg, DurationNanos: nanos(r.dur), CreatedAt: &r.created}
	if r.conf >= 0 {
		a.Confidence = &r.conf
	}
	if !r.executed.IsZero() {
		a.ExecutedAt = &r.executed
	}
	return wire.Record{ID: r.id, Kind: wire.KindRemediation, ReceivedAt: r.received, Remediation: a}
}

// record is the record whose row w is (a copy, as remRow's).
func (w wfRow) record() wire.Record {
	return wire.Record{ID: w.id, Kind: wire.KindWorkflow, ReceivedAt: w.received, Workflow: &wire.WorkflowAudit{
		WorkflowID: w.wfID, StepName: w.step, StepStatus: w.stepStatus, DurationNanos: nanos(w.dur),
		ErrorMessage: w.errMsg, ExecutedAt: &w.executed}}
}

// nanos is a duration in milliseconds as the wire's nanoseconds; nil when
// negative (not sent).
func nanos(ms int32) *int64 {
	if ms < 0 {
		return nil
	}
	n := int64(ms) * int64(time.Millisecond)
	return &n
}
