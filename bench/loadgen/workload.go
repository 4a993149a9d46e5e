package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/kubernaut/datastorage/wire"
)

// alertText is the repeated part of an alert storm: what one alert says.
type alertText struct {
	alertName, namespace, cluster, reasoning, errorMessage, action, target, step string
}

var (
	alertNames = []string{"HighMemoryUsage", "KubePodCrashLooping", "KubeDeploymentReplicasMismatch",
		"NodeFilesystemAlmostOutOfSpace", "CPUThrottlingHigh", "KubeJobFailed", "TargetDown",
		"PersistentVolumeFillingUp", "EtcdHighCommitDurations", "HTTPErrorRateHigh"}
	actions    = []string{"restart-pod", "scale-deployment", "increase-memory-limit", "rollback-deployment", "cordon-node", "expand-pvc"}
	steps      = []string{"validate-preconditions", "snapshot-state", "apply-action", "wait-for-rollout", "verify-health", "notify"}
	words      = strings.Fields("the pod container memory usage exceeded limit over the last fifteen minutes while traffic rose restarts increased and the deployment rollout stalled because readiness probes failed on three replicas; historical incidents with similar signatures were resolved by raising the limit or rolling back the image; confidence is reduced by missing metrics from one node and a recent configuration change in the namespace")
	clusters   = []string{"us-west-2", "us-east-1", "eu-central-1", "ap-south-1"}
	priorities = []string{"P0", "P1", "P2", "P3"}
)

// Generator makes realistic records: one per call, for one writer. It is not
// safe for concurrent use: each controller has its own.
type Generator struct {
	rng    *rand.Rand
	repeat float64
	texts  []alertText
}

// NewGenerator makes the generator of one stream: the alert texts come from
// seed alone (every stream repeats the same ones), the rest from seed and
// stream. repeat is the share of records that repeat one of nTexts texts.
func NewGenerator(seed uint64, stream uint64, repeat float64, nTexts int) *Generator {
	// The alert texts come from the seed alone, so every controller repeats
	// the same ones.
	base := rand.New(rand.NewPCG(seed, 0xa1e47))
	texts := make([]alertText, nTexts)
	for i := range texts {
		texts[i] = randomText(base)
	}
	return &Generator{rng: rand.New(rand.NewPCG(seed, stream+1)), repeat: repeat, texts: texts}
}

func sentence(r *rand.Rand, minWords, maxWords int) string {
	n := minWords + r.IntN(maxWords-minWords+1)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = words[r.IntN(len(words))]
	}
	return strings.Join(parts, " ")
}

func randomText(r *rand.Rand) alertText {
	ns := fmt.Sprintf("team-%02d-prod", r.IntN(40))
	name := fmt.Sprintf("api-%04x", r.Uint32()&0xffff)
	return alertText{
		alertName: alertNames[r.IntN(len(alertNames))],
		namespace: ns,
		cluster:   clusters[r.IntN(len(clusters))],
		// Reasoning of an LLM-backed analysis: a few hundred to ~1500 chars.
		reasoning:    sentence(r, 50, 220),
		errorMessage: "error: " + sentence(r, 8, 30),
		action:       actions[r.IntN(len(actions))],
		target:       "apps/v1/Deployment/" + ns + "/" + name,
		step:         steps[r.IntN(len(steps))],
	}
}

func (g *Generator) text() alertText {
	if g.rng.Float64() < g.repeat && len(g.texts) > 0 {
		return g.texts[g.rng.IntN(len(g.texts))]
	}
	return randomText(g.rng)
}

// Record makes one record for writer w (an index of Writers); seq makes its
// request IDs unique.
func (g *Generator) Record(w int, seq string, now time.Time) wire.Record {
	t := g.text()
	r := g.rng
	now = now.UTC()
	switch w {
	case 0: // Gateway: after creating the RemediationRequest CRD.
		return wire.Record{Kind: wire.KindRemediation, Remediation: &wire.RemediationAudit{
			RemediationRequestID: "rr-" + seq, AlertName: t.alertName, Namespace: t.namespace,
			Cluster: t.cluster, Priority: priorities[r.IntN(len(priorities))], CreatedAt: &now}}
	case 1: // AI Analysis: the decision and its reasoning.
		conf := 0.5 + r.Float64()/2
		return wire.Record{Kind: wire.KindRemediation, Remediation: &wire.RemediationAudit{
			RemediationRequestID: "rr-" + seq, AlertName: t.alertName, Namespace: t.namespace,
			Cluster: t.cluster, ActionType: t.action, Confidence: &conf, Reasoning: t.reasoning, CreatedAt: &now}}
	case 2: // Kubernetes Executor: the action and its outcome.
		d := int64(time.Duration(200+r.IntN(30000)) * time.Millisecond)
		a := &wire.RemediationAudit{RemediationRequestID: "rr-" + seq, ActionType: t.action,
			TargetResource: t.target, Status: "completed", DurationNanos: &d, ExecutedAt: &now}
		if r.IntN(10) == 0 {
			a.Status, a.ErrorMessage = "failed", t.errorMessage
		}
		return wire.Record{Kind: wire.KindRemediation, Remediation: a}
	default: // Workflow Execution: one step.
		d := int64(time.Duration(50+r.IntN(120000)) * time.Millisecond)
		a := &wire.WorkflowAudit{WorkflowID: "wf-" + seq, StepName: t.step, StepStatus: "completed",
			DurationNanos: &d, ExecutedAt: &now}
		if r.IntN(10) == 0 {
			a.StepStatus, a.ErrorMessage = "failed", t.errorMessage
		}
		return wire.Record{Kind: wire.KindWorkflow, Workflow: a}
	}
}
