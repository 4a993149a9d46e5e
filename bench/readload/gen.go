package readload

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kubernaut/datastorage/bench/loadgen"
)

// weighted is a skewed choice among values; the last ones are rare.
type weighted struct {
	values []string
	cum    []float64 // cumulative weights, the last one 1
}

func newWeighted(pairs ...any) weighted {
	var w weighted
	var sum float64
	for i := 0; i < len(pairs); i += 2 {
		w.values = append(w.values, pairs[i].(string))
		sum += pairs[i+1].(float64)
		w.cum = append(w.cum, sum)
	}
	for i := range w.cum {
		w.cum[i] /= sum
	}
	return w
}

func (w *weighted) pick(r *rand.Rand) string {
	x := r.Float64()
	for i, c := range w.cum {
		if x < c {
			return w.values[i]
		}
	}
	return w.values[len(w.values)-1]
}

// The data's shape. Each distribution ends with a value seen about once in
// ten thousand (or rarer): the pages under those must be as fast.
var (
	clusters = newWeighted("us-west-2", 50.0, "us-east-1", 30.0, "eu-central-1", 15.0, "ap-south-1", 4.99,
		"edge-lab-7", 0.01)
	alertNames = newWeighted("KubePodCrashLooping", 30.0, "HighMemoryUsage", 20.0, "CPUThrottlingHigh", 15.0,
		"KubeDeploymentReplicasMismatch", 10.0, "TargetDown", 8.0, "HTTPErrorRateHigh", 6.0, "KubeJobFailed", 5.0,
		"NodeFilesystemAlmostOutOfSpace", 3.0, "PersistentVolumeFillingUp", 2.0, "EtcdHighCommitDurations", 0.99,
		"EtcdNoLeader", 0.01)
	actionTypes = newWeighted("restart-pod", 50.0, "scale-deployment", 25.0, "increase-memory-limit", 15.0,
		"rollback-deployment", 9.0, "cordon-node", 0.99, "drain-node", 0.01)
	statuses     = newWeighted("completed", 90.0, "failed", 8.0, "timeout", 1.99, "cancelled", 0.01)
	stepNames    = newWeighted("validate-preconditions", 25.0, "snapshot-state", 15.0, "apply-action", 25.0, "wait-for-rollout", 20.0, "verify-health", 14.99, "manual-approval", 0.01)
	stepStatuses = newWeighted("completed", 92.0, "failed", 6.0, "skipped", 1.99, "aborted", 0.01)
	priorities   = newWeighted("P0", 5.0, "P1", 20.0, "P2", 45.0, "P3", 30.0)
)

// rareWriter writes about one remediation in 20,000 (a replay tool, say):
// a page under its name must be as fast as under the Gateway's.
const rareWriter = "kubernaut-system/audit-replay-sa"

var words = strings.Fields("the pod container memory usage exceeded limit over the last fifteen minutes " +
	"while traffic rose restarts increased and the deployment rollout stalled because readiness probes failed " +
	"on three replicas; historical incidents with similar signatures were resolved by raising the limit or " +
	"rolling back the image; confidence is reduced by missing metrics from one node and a recent " +
	"configuration change in the namespace")

// generator makes the rows of one remediation at a time. Not safe for
// concurrent use.
type generator struct {
	rng        *rand.Rand
	namespaces []string
	reasonings []string // AI Analysis reasoning, a few hundred to ~1500 chars
	errors     []string
	sa         [4]string // the writers, loadgen.Writers order
}

func newGenerator(seed uint64) *generator {
	r := rand.New(rand.NewPCG(seed, 0x13))
	g := &generator{rng: r}
	for i := range 40 {
		g.namespaces = append(g.namespaces, fmt.Sprintf("team-%02d-prod", i))
	}
	sentence := func(minWords, maxWords int) string {
		n := minWords + r.IntN(maxWords-minWords+1)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = words[r.IntN(len(words))]
		}
		return strings.Join(parts, " ")
	}
	for range 2000 {
		g.reasonings = append(g.reasonings, sentence(50, 220))
	}
	for range 200 {
		g.errors = append(g.errors, "error: "+sentence(8, 30))
	}
	for i, w := range loadgen.Writers {
		g.sa[i] = w.QualifiedSA()
	}
	return g
}

// namespace is Zipf-like: team-00 is the busiest, team-39 the quietest.
func (g *generator) namespace() string {
	i := int(float64(len(g.namespaces)) * g.rng.Float64() * g.rng.Float64())
	return g.namespaces[i]
}

// id is an audit ID as the agents assign them ("audit-" + a UUIDv7 of
// the time the record was accepted).
func (g *generator) id(at time.Time) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[:8], uint64(at.UnixMilli())<<16|uint64(g.rng.Uint32()&0x0fff)|0x7000)
	binary.BigEndian.PutUint64(u[8:], g.rng.Uint64()&^(3<<62)|(1<<63))
	return "audit-" + u.String()
}

// remRow is one remediation_audit row; "" and the zero time are NULL, and
// so are conf < 0 and dur < 0.
type remRow struct {
	id, rr, alert, ns, cluster, prio, action, status, reason, target, errMsg, sa string
	conf                                                                         float64
	dur                                                                          int32
	created, executed, received                                                  time.Time
}

// wfRow is one workflow_audit row ("" errMsg and dur < 0 are NULL).
type wfRow struct {
	id, wfID, step, stepStatus, errMsg, sa string
	dur                                    int32
	executed, received                     time.Time
}

// remediation appends the 3 to 6 audits of one remediation that began at
// t0: the Gateway's, the AI Analysis's, one or two of the Kubernetes
// Executor's, and zero to two workflow steps. It returns how many rows it
// appended.
func (g *generator) remediation(t0 time.Time, rem *[]remRow, wf *[]wfRow) int {
	r := g.rng
	rr := fmt.Sprintf("rr-%s-%08x", t0.UTC().Format("20060102"), r.Uint32())
	alert, ns, cluster := alertNames.pick(r), g.namespace(), clusters.pick(r)
	action := actionTypes.pick(r)
	target := "apps/v1/Deployment/" + ns + "/api-" + fmt.Sprintf("%04x", r.Uint32()&0xffff)
	received := func(at time.Time) time.Time { return at.Add(time.Duration(r.IntN(2000)) * time.Millisecond) }
	gwSA := g.sa[0]
	if r.IntN(20000) == 0 {
		gwSA = rareWriter
	}
	n := 0
	// Gateway.
	*rem = append(*rem, remRow{id: g.id(t0), rr: rr, alert: alert, ns: ns, cluster: cluster, prio: priorities.pick(r),
		conf: -1, dur: -1, created: t0, received: received(t0), sa: gwSA})
	n++
	// AI Analysis, seconds later.
	t1 := t0.Add(time.Duration(2000+r.IntN(20000)) * time.Millisecond)
	*rem = append(*rem, remRow{id: g.id(t1), rr: rr, alert: alert, ns: ns, cluster: cluster, action: action,
		conf: 0.5 + r.Float64()/2, reason: g.reasonings[r.IntN(len(g.reasonings))], dur: -1,
		created: t1, received: received(t1), sa: g.sa[1]})
	n++
	// Kubernetes Executor: the action, retried once in a while.
	t2 := t1
	for attempt := 0; attempt < 1+boolInt(r.IntN(4) == 0); attempt++ {
		t2 = t2.Add(time.Duration(5000+r.IntN(60000)) * time.Millisecond)
		st := statuses.pick(r)
		row := remRow{id: g.id(t2), rr: rr, action: action, target: target, status: st, conf: -1,
			dur: int32(200 + r.IntN(30000)), executed: t2.Add(-time.Second), created: t2, received: received(t2), sa: g.sa[2]}
		if st != "completed" {
			row.errMsg = g.errors[r.IntN(len(g.errors))]
		}
		*rem = append(*rem, row)
		n++
	}
	// Workflow steps.
	t3 := t2
	for range r.IntN(3) {
		t3 = t3.Add(time.Duration(1000+r.IntN(120000)) * time.Millisecond)
		st := stepStatuses.pick(r)
		row := wfRow{id: g.id(t3), wfID: "wf-" + rr, step: stepNames.pick(r), stepStatus: st,
			dur: int32(50 + r.IntN(120000)), executed: t3, received: received(t3), sa: g.sa[3]}
		if st == "failed" {
			row.errMsg = g.errors[r.IntN(len(g.errors))]
		}
		*wf = append(*wf, row)
		n++
	}
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
