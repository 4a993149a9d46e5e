package central_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/pb33f/jsonschema/v6"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi/datamodel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kubernaut/datastorage/central"
	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/internal/tstest/hostile"
	"github.com/kubernaut/datastorage/wire"
)

// documentProblems is every problem found in spec: parsing and building
// its model, its validation against the OpenAPI 3.1 schema (both by the
// library), and each of its schemas compiled as JSON Schema 2020-12 (which
// the OpenAPI schema leaves unchecked: a misspelt type, a bad pattern).
func documentProblems(spec []byte) []string {
	if problems := schemaProblems(spec); len(problems) > 0 {
		return problems
	}
	cfg := datamodel.NewDocumentConfiguration()
	cfg.Logger = slog.New(slog.DiscardHandler) // what it logs, it returns
	doc, err := libopenapi.NewDocumentWithConfiguration(spec, cfg)
	if err != nil {
		return []string{err.Error()}
	}
	if _, err := doc.BuildV3Model(); err != nil {
		return []string{err.Error()}
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		return []string{errors.Join(errs...).Error()}
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		return describe(verrs)
	}
	return nil
}

// schemaProblems compiles every schema of spec (components/schemas and
// each "schema" of a parameter, header or media type) against the JSON
// Schema 2020-12 meta-schema, resolving its references in the document.
func schemaProblems(spec []byte) []string {
	var tree any
	if err := yaml.Unmarshal(spec, &tree); err != nil {
		return []string{err.Error()}
	}
	j, err := json.Marshal(tree)
	if err != nil {
		return []string{err.Error()}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return []string{err.Error()}
	}
	const url = "file:///openapi.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(url, doc); err != nil {
		return []string{err.Error()}
	}
	var pointers []string
	var walk func(node any, pointer string, parent string)
	walk = func(node any, pointer, parent string) {
		switch n := node.(type) {
		case map[string]any:
			for k, v := range n {
				p := pointer + "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
				if k == "schema" || parent == "schemas" {
					pointers = append(pointers, p)
					continue
				}
				walk(v, p, k)
			}
		case []any:
			for i, v := range n {
				walk(v, fmt.Sprintf("%s/%d", pointer, i), parent)
			}
		}
	}
	walk(doc, "", "")
	slices.Sort(pointers)
	var problems []string
	for _, p := range pointers {
		if _, err := c.Compile(url + "#" + p); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return problems
}

func TestOpenAPI_DocumentIsValid(t *testing.T) {
	assert.Empty(t, documentProblems(central.OpenAPI), "central/openapi.yaml")
	assert.True(t, strings.HasPrefix(string(central.OpenAPI), "openapi: 3.1."), "an OpenAPI 3.1 document")

	// The check catches what a careless edit does.
	for name, edit := range map[string][2]string{
		"a misspelt type":      {"type: integer", "type: intger"},
		"a dangling reference": {"'#/components/schemas/AuditID'", "'#/components/schemas/AuditId'"},
		"a response without a description": {"      description: The record is committed (or was already, under this Idempotency-Key).\n",
			""},
		"a member the specification does not have": {"      operationId: getAccess\n", "      operationId: getAccess\n      resposes: {}\n"},
		"a pattern that is no regular expression":  {`pattern: '^[A-Za-z0-9._:-]{1,255}$'`, `pattern: '^[A-Za-z0-9._:-{1,255}$'`},
	} {
		broken := strings.Replace(string(central.OpenAPI), edit[0], edit[1], 1)
		require.NotEqual(t, string(central.OpenAPI), broken, name)
		assert.NotEmpty(t, documentProblems([]byte(broken)), "%s goes unnoticed", name)
	}
}

func TestOpenAPI_TheDocumentIsServedToAnyone(t *testing.T) {
	h := newHarness(t, options{})
	req, err := http.NewRequest(http.MethodGet, h.url+"/api/v1/openapi.yaml", nil)
	require.NoError(t, err)
	r := h.do(t, req)
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, "application/yaml", r.header.Get("Content-Type"))
	assert.Equal(t, string(central.OpenAPI), r.body)

	p := h.post(t, "/api/v1/openapi.yaml", "", nil, invalidByDesign, "POST")
	assert.Equal(t, 405, p.status)
	assert.Equal(t, "GET", p.header.Get("Allow"))
}

// endpoint is one authenticated endpoint with a request it accepts.
type endpoint struct {
	method, path string
	token        string // a caller that may use it
	body         string
}

var authenticated = []endpoint{
	{"POST", "/api/v1/audit/remediation", tokenOf("gateway-sa"), `{"remediationRequestID":"rr-1"}`},
	{"POST", "/api/v1/audit/workflow", tokenOf("workflowexecution-controller-sa"), `{"workflowID":"wf-1","stepName":"s","stepStatus":"completed"}`},
	{"POST", "/api/v1/audit/batch", tokenOf("gateway-sa"), `{"records":[{"kind":"remediation","record":{"remediationRequestID":"rr-1"}}]}`},
	{"POST", "/api/v1/incidents/similar", tokenOf("aianalysis-controller-sa"), `{"text":"pod crash looping"}`},
	{"GET", "/api/v1/access", tokenOf("gateway-sa"), ""},
	{"GET", "/api/v1/audit/remediation", tokenOf(reader), ""},
	{"GET", "/api/v1/audit/workflow", tokenOf(reader), ""},
	{"GET", "/api/v1/audit/remediation/audit-1", tokenOf(reader), ""},
	{"GET", "/api/v1/remediations/rr-1/timeline", tokenOf(reader), ""},
	{"GET", "/api/v1/audit/export", tokenOf(reader), ""},
	{"POST", "/api/v1/legal-holds", tokenOf(holderSA), `{"remediationRequestID":"rr-1","reason":"litigation"}`},
	{"GET", "/api/v1/legal-holds", tokenOf(holderSA), ""},
	{"GET", "/api/v1/legal-holds/hold-none", tokenOf(holderSA), ""},
	{"DELETE", "/api/v1/legal-holds/hold-none?reason=done", tokenOf(holderSA), ""},
}

func (h *harness) send(t *testing.T, e endpoint, token, body string, headers ...string) response {
	t.Helper()
	if e.method == http.MethodPost {
		return h.post(t, e.path, token, []byte(body), headers...)
	}
	req, err := http.NewRequest(e.method, h.url+e.path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	return h.do(t, req)
}

// brokenAuthenticator fails in a way no answer is mapped to: a bug.
type brokenAuthenticator struct{}

func (brokenAuthenticator) Authenticate(context.Context, string, netip.Addr) (auth.Identity, error) {
	return auth.Identity{}, errors.New("authenticator bug")
}

// TestOpenAPI_EveryEndpointAnswersAnAuthenticationItCannotComplete: a
// client address over its failed-review budget (429), TokenReview
// unreachable (503), an unexpected failure (500), on every endpoint that
// authenticates.
func TestOpenAPI_EveryEndpointAnswersAnAuthenticationItCannotComplete(t *testing.T) {
	for _, c := range []struct {
		authn  auth.Authenticator
		status int
	}{
		{throttledAuthenticator{retryAfter: time.Second}, 429},
		{downAuthenticator{}, 503},
		{brokenAuthenticator{}, 500},
	} {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			h := newSearchHarness(t, options{authn: c.authn})
			for _, e := range authenticated {
				r := h.send(t, e, "some-token", e.body)
				assert.Equal(t, c.status, r.status, "%s %s: %s", e.method, e.path, r.body)
			}
		})
	}
}

// TestOpenAPI_EveryWriteEndpointAnswersEachRequestError: no token, a caller
// without the action, an invalid body, one beyond the endpoint's limit,
// another media type.
func TestOpenAPI_EveryWriteEndpointAnswersEachRequestError(t *testing.T) {
	h := newSearchHarness(t)
	tooLarge := map[string]string{
		"/api/v1/audit/remediation": fmt.Sprintf(`{"remediationRequestID":"rr-1","reasoning":%q}`, strings.Repeat("x", 65<<10)),
		"/api/v1/audit/workflow":    fmt.Sprintf(`{"workflowID":"w","stepName":"s","stepStatus":"ok","errorMessage":%q}`, strings.Repeat("x", 65<<10)),
		"/api/v1/incidents/similar": fmt.Sprintf(`{"text":%q}`, strings.Repeat("x", 1<<20)),
		"/api/v1/legal-holds":       fmt.Sprintf(`{"remediationRequestID":"rr-1","reason":%q}`, strings.Repeat("x", 32<<10)),
	}
	forbidden := map[string]string{
		"/api/v1/audit/remediation": tokenOf("workflowexecution-controller-sa"),
		"/api/v1/audit/workflow":    tokenOf("gateway-sa"),
		"/api/v1/audit/batch":       outsiderToken,
		"/api/v1/incidents/similar": tokenOf("gateway-sa"),
		"/api/v1/legal-holds":       tokenOf(reader),
	}
	for _, e := range authenticated {
		if e.method != http.MethodPost {
			continue
		}
		t.Run(e.path, func(t *testing.T) {
			r := h.send(t, e, e.token, e.body)
			require.Less(t, r.status, 300, r.body)
			assert.Equal(t, 401, h.send(t, e, "", e.body, invalidByDesign, "no token").status)
			assert.Equal(t, 403, h.send(t, e, forbidden[e.path], e.body).status)
			assert.Equal(t, 400, h.send(t, e, e.token, `{"bogus":1}`, invalidByDesign, "unknown member").status)
			assert.Equal(t, 415, h.send(t, e, e.token, e.body, "Content-Type", "text/plain", invalidByDesign, "text/plain").status)
			if big, ok := tooLarge[e.path]; ok {
				// Compressed, so that the server reads it all before it
				// refuses it: refused from its Content-Length, a large body
				// races the server's close with the client's writing.
				r := h.send(t, e, e.token, string(hostile.Gzip([]byte(big))), "Content-Encoding", "gzip",
					invalidByDesign, "too large")
				assert.Equal(t, 413, r.status, r.body)
			}
		})
	}
}

func TestOpenAPI_SimilarWithoutAVectorDatabaseIs404(t *testing.T) {
	h := newHarness(t, options{})
	r := h.post(t, "/api/v1/incidents/similar", tokenOf("aianalysis-controller-sa"), []byte(`{"text":"x"}`))
	require.Equal(t, 404, r.status, r.body)
}

// TestOpenAPI_ReadAnswersOfTheWireTypesConform validates the answers of the
// x-pending read operations as the wire types encode them (as
// edge.WriteJSON does), every member set, until the reads are served and
// their real exchanges are validated; and an export's lines as the export
// format writes them.
func TestOpenAPI_ReadAnswersOfTheWireTypesConform(t *testing.T) {
	at := time.Date(2025, 10, 6, 10, 0, 0, 123456789, time.UTC)
	conf, dur := 0.87, int64(2500*time.Millisecond)
	rem := wire.AuditEntry{Kind: wire.KindRemediation, AuditID: wire.NewID(), ServiceAccount: ns + "/gateway-sa",
		OccurredAt: at, ReceivedAt: at.Add(time.Second), Remediation: &wire.RemediationAudit{
			RemediationRequestID: "rr-1", AlertName: "HighMemoryUsage", Namespace: "prod", Cluster: "east",
			Priority: "P0", ActionType: "restart-pod", Confidence: &conf, Reasoning: "r", TargetResource: "prod/Deployment/web",
			Status: "failed", DurationNanos: &dur, ErrorMessage: "e", CreatedAt: &at, ExecutedAt: &at}}
	wf := wire.AuditEntry{Kind: wire.KindWorkflow, AuditID: "step-7", ServiceAccount: ns + "/workflowexecution-controller-sa",
		OccurredAt: at, ReceivedAt: at, Workflow: &wire.WorkflowAudit{WorkflowID: "wf-1", StepName: "drain",
			StepStatus: "completed", DurationNanos: &dur, ErrorMessage: "e", ExecutedAt: &at}}

	for _, c := range []struct {
		path   string
		answer any
	}{
		{"/api/v1/audit/remediation?limit=2", wire.AuditPage{Records: []wire.AuditEntry{rem, wf}, NextCursor: "opaque"}},
		{"/api/v1/audit/workflow", wire.AuditPage{}},
		{"/api/v1/audit/remediation/" + rem.AuditID, rem},
		{"/api/v1/audit/workflow/step-7?serviceAccount=" + ns + "/workflowexecution-controller-sa", wf},
		{"/api/v1/remediations/rr-1/timeline", wire.Timeline{RemediationRequestID: "rr-1", Events: []wire.AuditEntry{rem}}},
	} {
		body, err := jsonv2.Marshal(c.answer)
		require.NoError(t, err)
		req := httptest.NewRequest(http.MethodGet, "http://central"+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+tokenOf("aianalysis-controller-sa"))
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(bytes.NewReader(body)), Request: req}
		ok, errs := conformance.validator.ValidateHttpResponse(req, resp)
		assert.True(t, ok, "%s: %s\n%s", c.path, strings.Join(describe(errs), "\n"), body)
	}

	export := conformance.model.Paths.PathItems.GetOrZero("/api/v1/audit/export").Get
	var ndjson bytes.Buffer
	for _, e := range []wire.AuditEntry{rem, wf} {
		b, err := jsonv2.Marshal(e)
		require.NoError(t, err)
		ndjson.Write(append(b, '\n'))
	}
	ndjson.WriteString(`{"trailer":{"format":"kubernaut-audit-export/v1","records":2,"digest":"sha256:` + strings.Repeat("ab", 32) +
		`","kinds":["remediation","workflow"],"until":"2025-10-07T00:00:00Z","exportedAt":"2025-10-07T00:00:01Z",` +
		`"exportedBy":"kubernaut-system/auditor","keyID":"0123456789abcdef"},"signature":"c2ln"}` + "\n")
	x := exchange{resp: &http.Response{StatusCode: 200, Header: http.Header{}}, answer: ndjson.Bytes()}
	assert.Empty(t, conformance.checkNDJSON(export, "200", x), "a valid export")
	x.answer = append(bytes.Clone(ndjson.Bytes()), `{"trailer":{"format":"v0"},"signature":"c2ln"}`+"\n"...)
	assert.NotEmpty(t, conformance.checkNDJSON(export, "200", x), "a line of neither schema")
}
