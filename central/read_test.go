package central_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/wire"
)

const reader = "aianalysis-controller-sa" // may read:audit by default

var t0 = time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)

// writeAt stores one remediation audit of rr by writer, created at t0+offset.
func (h *harness) writeAt(t *testing.T, writer, rr, cluster string, offset time.Duration) string {
	t.Helper()
	body := fmt.Sprintf(`{"remediationRequestID":%q,"cluster":%q,"namespace":"prod","status":"completed","createdAt":%q}`,
		rr, cluster, t0.Add(offset).Format(time.RFC3339Nano))
	r := h.post(t, "/api/v1/audit/remediation", tokenOf(writer), []byte(body))
	require.Equal(t, 201, r.status, r.body)
	var w wire.WriteResponse
	require.NoError(t, json.Unmarshal([]byte(r.body), &w))
	return w.AuditID
}

// batch stores items through the batch endpoint as writer.
func (h *harness) batch(t *testing.T, writer string, items ...string) {
	t.Helper()
	r := h.post(t, "/api/v1/audit/batch", tokenOf(writer), []byte(`{"records":[`+strings.Join(items, ",")+`]}`))
	require.Equal(t, 200, r.status, r.body)
	require.NotContains(t, r.body, `"rejected"`+`:1`, r.body)
}

func item(id, kind, record string) string {
	return fmt.Sprintf(`{"id":%q,"kind":%q,"record":%s}`, id, kind, record)
}

func (h *harness) page(t *testing.T, path string) wire.AuditPage {
	t.Helper()
	r := h.get(t, path, tokenOf(reader))
	require.Equal(t, 200, r.status, r.body)
	var p wire.AuditPage
	require.NoError(t, json.Unmarshal([]byte(r.body), &p))
	return p
}

// all pages through a query with pages of size, returning every record.
func (h *harness) all(t *testing.T, path string, size int) []wire.AuditEntry {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var out []wire.AuditEntry
	cursor := ""
	for i := 0; ; i++ {
		require.Less(t, i, 10000, "paging does not end")
		p := h.page(t, path+sep+"limit="+strconv.Itoa(size)+cursor)
		assert.LessOrEqual(t, len(p.Records), size)
		out = append(out, p.Records...)
		if p.NextCursor == "" {
			return out
		}
		cursor = "&cursor=" + url.QueryEscape(p.NextCursor)
	}
}

func ids(entries []wire.AuditEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ServiceAccount + "|" + e.AuditID
	}
	return out
}

func TestQuery_FiltersOrderAndPages(t *testing.T) {
	h := newHarness(t, options{})
	var want []string // oldest first
	for i := range 7 {
		writer := writers[i%3]
		id := h.writeAt(t, writer, "rr-"+strconv.Itoa(i%2), "prod-1", time.Duration(i)*time.Minute)
		want = append(want, ns+"/"+writer+"|"+id)
	}
	h.writeAt(t, "gateway-sa", "rr-0", "staging", time.Hour)

	got := h.all(t, "/api/v1/audit/remediation?cluster=prod-1", 2)
	require.Len(t, got, 7)
	for i := range got {
		assert.Equal(t, want[len(want)-1-i], ids(got)[i], "newest first")
		assert.Equal(t, "prod-1", got[i].Remediation.Cluster)
		assert.Equal(t, wire.KindRemediation, got[i].Kind)
	}
	assert.Equal(t, want, ids(h.all(t, "/api/v1/audit/remediation?cluster=prod-1&order=asc", 3)))

	inRange := h.all(t, "/api/v1/audit/remediation?cluster=prod-1&order=asc&since="+
		url.QueryEscape(t0.Add(2*time.Minute).Format(time.RFC3339))+"&until="+url.QueryEscape(t0.Add(5*time.Minute).Format(time.RFC3339)), 100)
	assert.Equal(t, want[2:5], ids(inRange), "since is inclusive, until exclusive")

	gw := h.all(t, "/api/v1/audit/remediation?serviceAccount="+url.QueryEscape(ns+"/gateway-sa")+"&remediationRequestID=rr-0", 100)
	require.NotEmpty(t, gw)
	for _, e := range gw {
		assert.Equal(t, ns+"/gateway-sa", e.ServiceAccount)
		assert.Equal(t, "rr-0", e.Remediation.RemediationRequestID)
	}

	h.batch(t, "workflowexecution-controller-sa",
		item("wf-step-1", "workflow", `{"workflowID":"wf-1","stepName":"drain","stepStatus":"completed"}`),
		item("wf-step-2", "workflow", `{"workflowID":"wf-1","stepName":"restart","stepStatus":"failed"}`))
	wf := h.page(t, "/api/v1/audit/workflow?workflowID=wf-1&stepStatus=failed")
	require.Len(t, wf.Records, 1)
	assert.Equal(t, "restart", wf.Records[0].Workflow.StepName)
	assert.Empty(t, wf.NextCursor)
}

func TestQuery_PagesSkipAndRepeatNothingWhileWritesGoOn(t *testing.T) {
	h := newHarness(t, options{})
	before := map[string]bool{}
	for i := range 40 {
		id := h.writeAt(t, writers[i%3], "rr-busy", "prod-1", time.Duration(i%10)*time.Second) // many ties on event time
		before[ns+"/"+writers[i%3]+"|"+id] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			// New rows land before, inside and after the range already paged.
			h.writeAt(t, writers[i%3], "rr-busy", "prod-1", time.Duration(i%12-1)*time.Second)
		}
	})
	got := h.all(t, "/api/v1/audit/remediation?remediationRequestID=rr-busy", 3)
	cancel()
	wg.Wait()

	seen := map[string]bool{}
	for _, k := range ids(got) {
		assert.False(t, seen[k], "returned twice: %s", k)
		seen[k] = true
	}
	for k := range before {
		assert.True(t, seen[k], "skipped: %s", k)
	}
}

func TestQuery_RefusesBadInputWithTheParameterNamed(t *testing.T) {
	h := newHarness(t, options{})
	for i := range 3 {
		h.writeAt(t, "gateway-sa", "rr-x", "prod-1", time.Duration(i)*time.Second)
	}
	first := h.page(t, "/api/v1/audit/remediation?cluster=prod-1&limit=1")
	require.NotEmpty(t, first.NextCursor)
	// offSchema: the document itself refuses the request (an undeclared
	// parameter, a value outside its schema); the others only the server
	// can judge.
	for path, want := range map[string]struct {
		field     string
		offSchema bool
	}{
		"/api/v1/audit/remediation?clusterName=prod":                                      {"clusterName", true},
		"/api/v1/audit/remediation?limit=5000":                                            {"limit", true},
		"/api/v1/audit/remediation?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z": {"until", false},
		"/api/v1/audit/remediation?cursor=not-a-cursor":                                   {"cursor", false},
		"/api/v1/audit/remediation?cluster=prod-2&cursor=" + first.NextCursor:             {"cursor", false},
		"/api/v1/audit/workflow?cursor=" + first.NextCursor:                               {"cursor", false},
		"/api/v1/audit/incident/audit-1":                                                  {"kind", true},
		"/api/v1/remediations/rr-x/timeline?order=asc":                                    {"order", true},
	} {
		var mark []string
		if want.offSchema {
			mark = []string{invalidByDesign, "refused by the document too"}
		}
		r := h.get(t, path, tokenOf(reader), mark...)
		require.Equal(t, 400, r.status, path+": "+r.body)
		var body wire.ErrorBody
		require.NoError(t, json.Unmarshal([]byte(r.body), &body))
		assert.Equal(t, "validation_failed", body.Error)
		assert.Equal(t, want.field, body.Field, path)
	}
	r := h.get(t, "/api/v1/audit/remediation", tokenOf(reader))
	require.Equal(t, 200, r.status)
	r = h.post(t, "/api/v1/audit/export", tokenOf(reader), nil, invalidByDesign, "POST on a GET endpoint")
	assert.Equal(t, 405, r.status)
	r = h.get(t, "/api/v1/remediations/rr-x", tokenOf(reader), invalidByDesign, "no such path")
	assert.Equal(t, 404, r.status)
}

func TestQuery_ValuesOnlyTheStorageRefusesAndQueriesThatTakeTooLong(t *testing.T) {
	h := newHarness(t, options{})
	r := h.get(t, "/api/v1/audit/remediation?cluster=prod%00", tokenOf(reader))
	require.Equal(t, 400, r.status, r.body)
	assert.Contains(t, r.body, `"field":"cluster"`)

	slow := newHarness(t, options{queryTime: time.Nanosecond, readRate: 1, readBurst: 1000})
	r = slow.get(t, "/api/v1/audit/remediation?status=failed&limit=1000", tokenOf(reader))
	require.Equal(t, 503, r.status, r.body)
	assert.Contains(t, r.body, "did not finish in time")
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	r = slow.get(t, "/api/v1/audit/remediation?status=failed&limit=1000", tokenOf(reader))
	assert.Equal(t, 429, r.status, "a query that timed out was charged a full page: %s", r.body)
}

func TestRecord_OneByIDAndAmbiguousIDs(t *testing.T) {
	h := newHarness(t, options{})
	rec := `{"remediationRequestID":"rr-1","alertName":"HighMemory","confidence":0.5,"duration":1500000000}`
	h.batch(t, "gateway-sa", item("audit-shared", "remediation", rec), item("audit-a.b:c", "remediation", rec))
	h.batch(t, "kubernetes-executor-sa", item("audit-shared", "remediation", `{"remediationRequestID":"rr-2"}`))

	r := h.get(t, "/api/v1/audit/remediation/audit-a.b:c", tokenOf(reader))
	require.Equal(t, 200, r.status, r.body)
	var e wire.AuditEntry
	require.NoError(t, json.Unmarshal([]byte(r.body), &e))
	assert.Equal(t, "audit-a.b:c", e.AuditID)
	assert.Equal(t, ns+"/gateway-sa", e.ServiceAccount)
	assert.Equal(t, "HighMemory", e.Remediation.AlertName)
	require.NotNil(t, e.Remediation.DurationNanos)
	assert.Equal(t, int64(1500*time.Millisecond), *e.Remediation.DurationNanos)

	r = h.get(t, "/api/v1/audit/remediation/audit-shared", tokenOf(reader))
	require.Equal(t, 409, r.status, r.body)
	assert.Contains(t, r.body, `"error":"conflict"`)
	assert.Contains(t, r.body, ns+"/gateway-sa")
	assert.Contains(t, r.body, ns+"/kubernetes-executor-sa")

	r = h.get(t, "/api/v1/audit/remediation/audit-shared?serviceAccount="+url.QueryEscape(ns+"/kubernetes-executor-sa"), tokenOf(reader))
	require.Equal(t, 200, r.status, r.body)
	require.NoError(t, json.Unmarshal([]byte(r.body), &e))
	assert.Equal(t, "rr-2", e.Remediation.RemediationRequestID)

	for _, path := range []string{"/api/v1/audit/remediation/audit-none", "/api/v1/audit/workflow/audit-shared",
		"/api/v1/audit/remediation/audit-shared?serviceAccount=ns%2Fnobody"} {
		r = h.get(t, path, tokenOf(reader))
		assert.Equal(t, 404, r.status, path)
		assert.Contains(t, r.body, `"error":"not_found"`)
	}
}

func TestTimeline_EveryAuditOfARemediationInEventOrderWithItsWriter(t *testing.T) {
	h := newHarness(t, options{})
	h.writeAt(t, "kubernetes-executor-sa", "rr-42", "prod-1", 3*time.Minute)
	h.writeAt(t, "gateway-sa", "rr-42", "prod-1", 0)
	h.writeAt(t, "aianalysis-controller-sa", "rr-42", "prod-1", time.Minute)
	h.writeAt(t, "gateway-sa", "rr-43", "prod-1", 2*time.Minute)

	r := h.get(t, "/api/v1/remediations/rr-42/timeline", tokenOf(reader))
	require.Equal(t, 200, r.status, r.body)
	var tl wire.Timeline
	require.NoError(t, json.Unmarshal([]byte(r.body), &tl))
	assert.Equal(t, "rr-42", tl.RemediationRequestID)
	assert.False(t, tl.Truncated)
	require.Len(t, tl.Events, 3)
	for i, want := range []struct {
		writer  string
		minutes int
	}{{"gateway-sa", 0}, {"aianalysis-controller-sa", 1}, {"kubernetes-executor-sa", 3}} {
		assert.Equal(t, ns+"/"+want.writer, tl.Events[i].ServiceAccount)
		assert.True(t, t0.Add(time.Duration(want.minutes)*time.Minute).Equal(tl.Events[i].OccurredAt))
	}

	r = h.get(t, "/api/v1/remediations/rr-none/timeline", tokenOf(reader))
	assert.Equal(t, 404, r.status)

	// A remediation ID may hold any character: a "/" travels as %2F.
	h.writeAt(t, "gateway-sa", "team-a/rr 7", "prod-1", 0)
	r = h.get(t, "/api/v1/remediations/"+url.PathEscape("team-a/rr 7")+"/timeline", tokenOf(reader))
	require.Equal(t, 200, r.status, r.body)
	require.NoError(t, json.Unmarshal([]byte(r.body), &tl))
	assert.Equal(t, "team-a/rr 7", tl.RemediationRequestID)
	assert.Len(t, tl.Events, 1)
}

func TestReads_NeedTheirOwnPermissions(t *testing.T) {
	h := newHarness(t, options{exportKey: newExportKey(t).private})
	for _, path := range []string{"/api/v1/audit/remediation", "/api/v1/audit/workflow", "/api/v1/audit/remediation/audit-1",
		"/api/v1/remediations/rr-1/timeline", "/api/v1/audit/export"} {
		assert.Equal(t, 401, h.get(t, path, "", invalidByDesign, "no token").status, path)
		for _, who := range []string{tokenOf("gateway-sa"), outsiderToken} {
			r := h.get(t, path, who)
			assert.Equal(t, 403, r.status, path)
			assert.Contains(t, r.body, `"error":"authorization_failed"`)
		}
	}
	r := h.get(t, "/api/v1/audit/export", tokenOf(reader))
	assert.Equal(t, 403, r.status, "read:audit does not grant export:audit")
	assert.Contains(t, r.body, "export")
	r = h.get(t, "/api/v1/audit/remediation?clustr=x", tokenOf("gateway-sa"), invalidByDesign, "unknown parameter")
	assert.Equal(t, 403, r.status, "a caller that may not read learns nothing of the query's validity")
}

func TestReads_HaveTheirOwnRowBudget(t *testing.T) {
	h := newHarness(t, options{readRate: 1, readBurst: 4})
	for i := range 6 {
		h.writeAt(t, "aianalysis-controller-sa", "rr-b", "prod-1", time.Duration(i)*time.Second)
	}
	p := h.page(t, "/api/v1/audit/remediation?limit=6")
	assert.Len(t, p.Records, 6, "a page is served whole, and overdraws the budget")
	r := h.get(t, "/api/v1/audit/remediation?limit=1", tokenOf(reader))
	require.Equal(t, 429, r.status, r.body)
	assert.Contains(t, r.body, "rows/s")
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, retry, 2)
	// Writes have their own budget: the reader still writes.
	h.writeAt(t, "aianalysis-controller-sa", "rr-b", "prod-1", time.Hour)
}

type keyPair struct{ private, public string } // PEM file paths

func newExportKey(t *testing.T) keyPair {
	t.Helper()
	dir := t.TempDir()
	return writeKeyPair(t, dir)
}

func writeKeyPair(t *testing.T, dir string) keyPair {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	kp := keyPair{private: filepath.Join(dir, "export.key"), public: filepath.Join(dir, "export-"+strconv.FormatInt(time.Now().UnixNano(), 10)+".pub")}
	tmp := kp.private + ".tmp"
	require.NoError(t, os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	require.NoError(t, os.Rename(tmp, kp.private)) // as a Secret volume swaps it
	require.NoError(t, os.WriteFile(kp.public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644))
	return kp
}

func exporter(t *testing.T) *authz.AllowList {
	t.Helper()
	a, err := authz.Parse([]byte(`serviceAccounts:
- {name: aianalysis-controller-sa, namespace: ` + ns + `, actions: [write:remediation, read:audit, export:audit]}
- {name: gateway-sa, namespace: ` + ns + `, actions: [write:remediation]}
- {name: workflowexecution-controller-sa, namespace: ` + ns + `, actions: [write:workflow]}
`))
	require.NoError(t, err)
	return a
}

func verify(t *testing.T, body []byte, publicKey string) (*export.Trailer, error) {
	t.Helper()
	pub, err := export.LoadPublicKey(publicKey)
	require.NoError(t, err)
	return export.Verify(bytes.NewReader(body), pub)
}

func TestExport_StreamsEveryRecordWithAVerifiableTrailer(t *testing.T) {
	keys := newExportKey(t)
	h := newHarness(t, options{exportKey: keys.private, authz: exporter(t)})
	for i := range 25 {
		h.writeAt(t, "gateway-sa", "rr-e", "prod-1", time.Duration(i)*time.Second)
	}
	h.batch(t, "workflowexecution-controller-sa",
		item("wf-1", "workflow", `{"workflowID":"wf-1","stepName":"drain","stepStatus":"completed"}`))

	r := h.get(t, "/api/v1/audit/export", tokenOf(reader))
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, "application/x-ndjson", r.header.Get("Content-Type"))
	tr, err := verify(t, []byte(r.body), keys.public)
	require.NoError(t, err)
	assert.EqualValues(t, 26, tr.Records)
	assert.Equal(t, []wire.Kind{wire.KindRemediation, wire.KindWorkflow}, tr.Kinds)
	assert.Equal(t, ns+"/"+reader, tr.ExportedBy)
	lines := strings.Split(strings.TrimSuffix(r.body, "\n"), "\n")
	require.Len(t, lines, 27)
	var first wire.AuditEntry
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	assert.True(t, first.OccurredAt.Equal(t0), "oldest first")

	// A range and one kind; gzip when asked (net/http's transparent gzip is
	// off once the header is set by hand, so the body arrives compressed).
	since, until := t0.Add(5*time.Second), t0.Add(15*time.Second)
	r = h.get(t, "/api/v1/audit/export?kind=remediation&since="+url.QueryEscape(since.Format(time.RFC3339))+
		"&until="+url.QueryEscape(until.Format(time.RFC3339)), tokenOf(reader), "Accept-Encoding", "gzip")
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, "gzip", r.header.Get("Content-Encoding"))
	zr, err := gzip.NewReader(strings.NewReader(r.body))
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	tr, err = verify(t, plain, keys.public)
	require.NoError(t, err)
	assert.EqualValues(t, 10, tr.Records)
	require.NotNil(t, tr.Since)
	assert.True(t, since.Equal(*tr.Since))
	assert.True(t, until.Equal(tr.Until))

	// One changed byte in a record fails verification.
	tampered := strings.Replace(string(plain), `"prod-1"`, `"prod-2"`, 1)
	_, err = verify(t, []byte(tampered), keys.public)
	require.ErrorIs(t, err, export.ErrAltered)

	// The key rotates without a restart; the old public key no longer fits.
	rotated := writeKeyPair(t, filepath.Dir(keys.private))
	r = h.get(t, "/api/v1/audit/export?kind=workflow", tokenOf(reader))
	require.Equal(t, 200, r.status)
	_, err = verify(t, []byte(r.body), rotated.public)
	require.NoError(t, err)
	_, err = verify(t, []byte(r.body), keys.public)
	require.ErrorIs(t, err, export.ErrWrongKey)

	for path, want := range map[string]struct {
		field     string
		offSchema bool
	}{
		"/api/v1/audit/export?kind=incident":                                         {"kind", true},
		"/api/v1/audit/export?limit=5":                                               {"limit", true},
		"/api/v1/audit/export?since=2999-01-01T00:00:00Z":                            {"since", false},
		"/api/v1/audit/export?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z": {"until", false},
	} {
		var mark []string
		if want.offSchema {
			mark = []string{invalidByDesign, "refused by the document too"}
		}
		r := h.get(t, path, tokenOf(reader), mark...)
		require.Equal(t, 400, r.status, path)
		assert.Contains(t, r.body, `"field":"`+want.field+`"`, path)
	}
}

func TestExport_NotConfiguredIsNotFound(t *testing.T) {
	h := newHarness(t, options{authz: exporter(t)})
	r := h.get(t, "/api/v1/audit/export", tokenOf(reader))
	assert.Equal(t, 404, r.status)
}

func TestExport_AClientThatGoesAwayStopsTheQuery(t *testing.T) {
	keys := newExportKey(t)
	h := newHarness(t, options{exportKey: keys.private, authz: exporter(t)})
	// Enough rows that the export outlives the client's first read.
	_, err := h.pool.Exec(context.Background(), `INSERT INTO remediation_audit
		(id, remediation_request_id, created_at, service_account, received_at, reasoning)
		SELECT 'audit-' || g, 'rr-' || (g % 1000), now() - g * interval '1 ms', 'ns/bulk', now(), repeat('x', 400)
		FROM generate_series(1, 200000) g`)
	require.NoError(t, err)

	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "GET /api/v1/audit/export?kind=remediation HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tokenOf(reader))
	require.NoError(t, err)
	buf := make([]byte, 64<<10)
	_, err = io.ReadAtLeast(conn, buf, len(buf))
	require.NoError(t, err)
	assert.Contains(t, string(buf), "200 OK")
	require.NoError(t, conn.Close())

	// The export's query ends soon after: no session is left running it.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
			AND query ILIKE '%remediation_audit%'`).Scan(&n))
		return n == 0
	}, 20*time.Second, 50*time.Millisecond)
}
