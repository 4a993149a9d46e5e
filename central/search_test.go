package central_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/go-json-experiment/json"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central"
	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/embed"
	"github.com/kubernaut/datastorage/central/embedpipe"
	"github.com/kubernaut/datastorage/central/ratelimit"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/internal/tstest/syncbuf"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

const pathSimilar = "/api/v1/incidents/similar"

// newSearchHarness is a central with similarity search and a running
// embedding pipeline; audits and vectors live in two databases. Of opt,
// only authn is used (nil: the writers' and the outsider's static tokens).
func newSearchHarness(t *testing.T, opt ...options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	auditDSN, vectorDSN := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	require.NoError(t, storage.Migrate(ctx, auditDSN))
	require.NoError(t, storage.Migrate(ctx, vectorDSN))
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: auditDSN})
	require.NoError(t, err)
	vdb, err := storage.OpenVectors(ctx, storage.Config{DatabaseURL: vectorDSN}, storage.HNSWConfig{})
	require.NoError(t, err)
	_, err = vdb.EnsureIndex(ctx)
	require.NoError(t, err)
	hash := embed.NewHash()
	pipe, err := embedpipe.New(embedpipe.Config{Audits: db, Vectors: vdb, Embedder: hash,
		PollInterval: 20 * time.Millisecond, Logger: zerolog.Nop(), Metrics: metrics.NewSet()})
	require.NoError(t, err)

	h := &harness{logs: &syncbuf.Buffer{}}
	h.pool, err = pgxpool.New(ctx, auditDSN)
	require.NoError(t, err)
	var csv strings.Builder
	for _, sa := range writers {
		fmt.Fprintf(&csv, "%s,system:serviceaccount:%s:%s,uid-%s\n", tokenOf(sa), ns, sa, sa)
	}
	fmt.Fprintf(&csv, "%s,system:serviceaccount:%s:outsider,uid-outsider\n", outsiderToken, ns)
	fmt.Fprintf(&csv, "%s,system:serviceaccount:%s:%s,uid-%s\n", tokenOf(holderSA), ns, holderSA, holderSA)
	var authn auth.Authenticator
	authn, err = auth.ParseStaticTokens(strings.NewReader(csv.String()))
	require.NoError(t, err)
	if len(opt) > 0 && opt[0].authn != nil {
		authn = opt[0].authn
	}
	reads := ratelimit.New(ratelimit.Config{Rate: 10000, Burst: 10000})
	srv, err := central.New(central.Config{
		Authenticator: authn, Authorizer: holderAuthz(t),
		Limiter: ratelimit.New(ratelimit.Config{Rate: 10000, Burst: 10000}),
		Store:   db, Logger: zerolog.New(h.logs), Metrics: metrics.NewSet(),
		Search: &central.SearchConfig{Embedder: hash, Vectors: vdb, Audits: db},
		Reads:  &central.ReadConfig{Store: db, Limiter: reads},
		Holds:  &central.HoldConfig{Store: db, Limiter: reads},
	})
	require.NoError(t, err)
	api, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h.url = "http://" + api.Addr().String()
	h.conf = conformance.observe(t, h.url)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, api, ml) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, pipe.Close(context.Background()))
		vdb.Close()
		db.Close()
		h.pool.Close()
	})
	return h
}

type similarAnswer struct {
	Results []central.SimilarResult `json:"results"`
}

// similar posts a search; invalid (invalidByDesign and why) marks it as
// invalid on purpose.
func (h *harness) similar(t *testing.T, token, body string, invalid ...string) (int, similarAnswer) {
	t.Helper()
	r := h.post(t, pathSimilar, token, []byte(body), invalid...)
	var ans similarAnswer
	if r.status == 200 {
		require.NoError(t, json.Unmarshal([]byte(r.body), &ans), r.body)
	}
	return r.status, ans
}

func remediationBody(alert, cluster, reasoning string) string {
	return fmt.Sprintf(`{"remediationRequestID":"rr-%d","alertName":%q,"namespace":"prod","cluster":%q,
		"actionType":"restart-pod","status":"completed","reasoning":%q}`, time.Now().UnixNano(), alert, cluster, reasoning)
}

func (h *harness) writeRemediation(t *testing.T, body string) string {
	t.Helper()
	r := h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), []byte(body))
	require.Equal(t, 201, r.status, r.body)
	var w struct {
		AuditID string `json:"auditID"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &w))
	return w.AuditID
}

func TestSimilar_RecordWrittenThroughTheAPIIsFoundFirstByItsOwnText(t *testing.T) {
	h := newSearchHarness(t)
	reader := tokenOf("aianalysis-controller-sa")
	for i := range 20 {
		h.writeRemediation(t, remediationBody(fmt.Sprintf("Noise%dAlert", i), "east", fmt.Sprintf("unrelated reason %d about disks", i)))
	}
	body := remediationBody("KubePodCrashLooping", "east", "container api restarted 12 times after image update")
	id := h.writeRemediation(t, body)

	query := `{"record":{"kind":"remediation","record":` + body + `}}`
	var ans similarAnswer
	require.Eventually(t, func() bool {
		var status int
		status, ans = h.similar(t, reader, query)
		require.Equal(t, 200, status)
		return len(ans.Results) > 0 && ans.Results[0].AuditID == id
	}, 5*time.Second, 50*time.Millisecond, "findable by similarity within seconds")
	assert.InDelta(t, 1.0, ans.Results[0].Similarity, 1e-4, "its own document")
	assert.Equal(t, "KubePodCrashLooping", ans.Results[0].Remediation.AlertName)
	assert.Len(t, ans.Results, 10, "the default limit")
	for i := 1; i < len(ans.Results); i++ {
		assert.GreaterOrEqual(t, ans.Results[i-1].Similarity, ans.Results[i].Similarity, "most similar first")
	}

	status, ans := h.similar(t, reader, `{"text":"api container crash looping after image update","limit":3}`)
	require.Equal(t, 200, status)
	require.Len(t, ans.Results, 3)
	assert.Equal(t, id, ans.Results[0].AuditID, "free text finds it first too")
}

func TestSimilar_FiltersReturnTheRequestedCount(t *testing.T) {
	h := newSearchHarness(t)
	reader := tokenOf("aianalysis-controller-sa")
	var west []string
	for i := range 40 {
		h.writeRemediation(t, remediationBody("DiskPressure", "east", fmt.Sprintf("node %d disk full", i)))
		if i%10 == 0 {
			west = append(west, h.writeRemediation(t, remediationBody("DiskPressure", "west", fmt.Sprintf("node %d disk almost full", i))))
		}
	}
	var ans similarAnswer
	require.Eventually(t, func() bool {
		var status int
		status, ans = h.similar(t, reader, `{"text":"DiskPressure node disk full","cluster":"west","limit":4}`)
		require.Equal(t, 200, status)
		return len(ans.Results) == 4
	}, 10*time.Second, 50*time.Millisecond)
	got := []string{}
	for _, r := range ans.Results {
		assert.Equal(t, "west", r.Remediation.Cluster)
		got = append(got, r.AuditID)
	}
	assert.ElementsMatch(t, west, got)

	status, ans := h.similar(t, reader, `{"text":"DiskPressure","kind":"workflow"}`)
	require.Equal(t, 200, status)
	assert.Empty(t, ans.Results)
	status, ans = h.similar(t, reader, fmt.Sprintf(`{"text":"DiskPressure","until":%q}`, time.Now().Add(-time.Hour).Format(time.RFC3339)))
	require.Equal(t, 200, status)
	assert.Empty(t, ans.Results)
}

func TestSimilar_AuthenticatesAuthorizesAndValidates(t *testing.T) {
	h := newSearchHarness(t)
	reader := tokenOf("aianalysis-controller-sa")
	status, _ := h.similar(t, "", `{"text":"x"}`, invalidByDesign, "no token")
	assert.Equal(t, 401, status)
	r := h.post(t, pathSimilar, tokenOf("gateway-sa"), []byte(`{"text":"x"}`))
	assert.Equal(t, 403, r.status, "writers may not read by default")
	assert.JSONEq(t, `{"error":"authorization_failed","message":"Service account not authorized to search similar incidents"}`, r.body)
	for _, bad := range []string{`{}`, `{"text":"x","limit":1000}`, `{"text":"x","kind":"other"}`, `{"text":"x","bogus":1}`,
		`{"text":"x","record":{"kind":"remediation","record":{"remediationRequestID":"r"}}}`, `not json`,
		`{"record":{"kind":"remediation","record":{}}}`} {
		r := h.post(t, pathSimilar, reader, []byte(bad), invalidByDesign, bad)
		assert.Equal(t, 400, r.status, bad)
		assert.Contains(t, r.body, `"validation_failed"`, bad)
	}
}

// TestSimilar_SameIDFromAnotherKindOrWriterHidesNothing: a workflow step
// and another writer's remediation stored under the ID of a remediation
// neither hide it nor stand in for it; each result names its writer.
func TestSimilar_SameIDFromAnotherKindOrWriterHidesNothing(t *testing.T) {
	h := newSearchHarness(t)
	reader := tokenOf("aianalysis-controller-sa")
	id := wire.NewID()
	batch := func(token string, items ...string) {
		r := h.post(t, "/api/v1/audit/batch", token, []byte(`{"records":[`+strings.Join(items, ",")+`]}`))
		require.Equal(t, 200, r.status, r.body)
		require.Contains(t, r.body, `"rejected":0`)
	}
	// The poisoners go first.
	batch(tokenOf("workflowexecution-controller-sa"), fmt.Sprintf(
		`{"id":%q,"kind":"workflow","record":{"workflowID":"wf-1","stepName":"drain node","stepStatus":"completed"}}`, id))
	batch(reader, fmt.Sprintf(`{"id":%q,"kind":"remediation","record":%s}`, id,
		remediationBody("CertificateExpiring", "east", "renewed the ingress certificate")))
	genuine := remediationBody("KubePodCrashLooping", "east", "container api restarted 12 times after image update")
	batch(tokenOf("gateway-sa"), fmt.Sprintf(`{"id":%q,"kind":"remediation","record":%s}`, id, genuine))

	var ans similarAnswer
	require.Eventually(t, func() bool {
		var status int
		status, ans = h.similar(t, reader, `{"record":{"kind":"remediation","record":`+genuine+`}}`)
		require.Equal(t, 200, status)
		return len(ans.Results) == 3
	}, 10*time.Second, 50*time.Millisecond, "all three are linked and found")
	first := ans.Results[0]
	assert.Equal(t, id, first.AuditID)
	assert.Equal(t, ns+"/gateway-sa", first.ServiceAccount, "the result names its writer")
	require.NotNil(t, first.Remediation)
	assert.Equal(t, "KubePodCrashLooping", first.Remediation.AlertName, "the writer's own record, not a namesake's")
	writers := map[string]wire.Kind{}
	for _, r := range ans.Results {
		assert.Equal(t, id, r.AuditID)
		writers[r.ServiceAccount] = r.Kind
		if r.ServiceAccount == ns+"/aianalysis-controller-sa" {
			assert.Equal(t, "CertificateExpiring", r.Remediation.AlertName)
		}
	}
	assert.Equal(t, map[string]wire.Kind{
		ns + "/gateway-sa": wire.KindRemediation, ns + "/aianalysis-controller-sa": wire.KindRemediation,
		ns + "/workflowexecution-controller-sa": wire.KindWorkflow,
	}, writers)
}
