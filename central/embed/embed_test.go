package embed_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/embed"
	"github.com/kubernaut/datastorage/wire"
)

func remediation(alert, reasoning string) *wire.Record {
	now := time.Now()
	return &wire.Record{ID: "audit-1", Kind: wire.KindRemediation, ReceivedAt: now, Remediation: &wire.RemediationAudit{
		RemediationRequestID: "rr-1", AlertName: alert, ActionType: "restart-pod", Status: "completed",
		Reasoning: reasoning, ErrorMessage: "", Namespace: "prod", Cluster: "east", TargetResource: "deployment/api",
		Priority: "P1", CreatedAt: &now,
	}}
}

func cosine(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestDocument_HasTheSemanticFieldsInOrderAndNoIDsOrTimes(t *testing.T) {
	rec := remediation("HighMemoryUsage", "memory\n  grew   steadily")
	got := embed.Document(rec)
	assert.Equal(t, "alert: HighMemoryUsage\naction: restart-pod\nstatus: completed\nreasoning: memory grew steadily\n"+
		"namespace: prod\ncluster: east\ntarget: deployment/api\n", got)
	assert.NotContains(t, got, "rr-1")
	assert.NotContains(t, got, "audit-1")
	assert.NotContains(t, got, "P1")

	other := remediation("HighMemoryUsage", "memory grew steadily")
	other.ID, other.Remediation.RemediationRequestID = "audit-2", "rr-2"
	later := time.Now().Add(time.Hour)
	other.Remediation.CreatedAt = &later
	assert.Equal(t, got, embed.Document(other), "IDs and times do not change the document")

	wf := &wire.Record{Kind: wire.KindWorkflow, Workflow: &wire.WorkflowAudit{WorkflowID: "wf-9", StepName: "drain-node", StepStatus: "failed", ErrorMessage: "timeout"}}
	assert.Equal(t, "step: drain-node\nstatus: failed\nerror: timeout\n", embed.Document(wf))
}

func TestContentHash_DependsOnIdentityAndDocument(t *testing.T) {
	a := embed.ContentHash("hash/v1", "x")
	assert.Len(t, a, 32)
	assert.Equal(t, a, embed.ContentHash("hash/v1", "x"))
	assert.NotEqual(t, a, embed.ContentHash("openai/m", "x"))
	assert.NotEqual(t, a, embed.ContentHash("hash/v1", "y"))
}

func TestHash_IsDeterministicNormalisedAndRanksRelatedTextHigher(t *testing.T) {
	h := embed.NewHash()
	texts := []string{
		"alert: HighMemoryUsage\nreasoning: memory leak in api pod\n",
		"alert: HighMemoryUsage\nreasoning: memory leak in worker pod\n",
		"step: drain-node\nstatus: failed\nerror: eviction blocked by PDB\n",
		"",
	}
	vecs, err := h.Embed(context.Background(), texts)
	require.NoError(t, err)
	require.Len(t, vecs, len(texts))
	for i, v := range vecs {
		require.Len(t, v, embed.Dimensions)
		assert.InDelta(t, 1.0, math.Sqrt(cosine(v, v)), 1e-5, "vector %d is unit length", i)
	}
	again, err := h.Embed(context.Background(), texts[:1])
	require.NoError(t, err)
	assert.Equal(t, vecs[0], again[0])
	assert.Greater(t, cosine(vecs[0], vecs[1]), 0.6)
	assert.Less(t, cosine(vecs[0], vecs[2]), 0.3)
	assert.Greater(t, cosine(vecs[0], vecs[1]), cosine(vecs[0], vecs[2]))
}

func TestHash_LabelsAndCaseAreNotFeatures(t *testing.T) {
	a := make([]float32, embed.Dimensions)
	b := make([]float32, embed.Dimensions)
	embed.EmbedInto("alert: OOMKilled\n", a)
	embed.EmbedInto("oomkilled", b)
	assert.Equal(t, a, b)
	embed.EmbedInto("error: OOMKilled\n", b)
	assert.Equal(t, a, b, "a different label gives the same vector")
}

func TestHash_BigramsMakeWordOrderMatter(t *testing.T) {
	a := make([]float32, embed.Dimensions)
	b := make([]float32, embed.Dimensions)
	embed.EmbedInto("node disk pressure", a)
	embed.EmbedInto("pressure disk node", b)
	assert.NotEqual(t, a, b)
	assert.Greater(t, cosine(a, b), 0.4, "the same words still overlap")
}

func TestEmbedInto_DoesNotAllocate(t *testing.T) {
	dst := make([]float32, embed.Dimensions)
	text := strings.Repeat("pod api-server CrashLoopBackOff after deploy ", 20)
	allocs := testing.AllocsPerRun(100, func() { embed.EmbedInto(text, dst) })
	assert.Zero(t, allocs)
}

func BenchmarkHashEmbed(b *testing.B) {
	dst := make([]float32, embed.Dimensions)
	text := embed.Document(remediation("KubePodCrashLooping", "container api restarted 12 times in 10 minutes after image update"))
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		embed.EmbedInto(text, dst)
	}
}
