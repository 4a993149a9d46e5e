package central_test

import (
	"encoding/json"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/internal/tstest/fakekube"
	"github.com/kubernaut/datastorage/wire"
)

// sarHarness is a central that authorizes with SubjectAccessReview against
// a fake API server, where RBAC grants gateway-sa write:remediation and
// workflowexecution-controller-sa write:workflow in ns.
func sarHarness(t *testing.T) (*harness, *fakekube.Server) {
	t.Helper()
	api := fakekube.New(t)
	for sa, act := range map[string]authz.Action{"gateway-sa": authz.WriteRemediation, "workflowexecution-controller-sa": authz.WriteWorkflow} {
		r, _ := authz.RuleFor(act)
		api.Grant("system:serviceaccount:"+ns+":"+sa, authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: r.Verb, Group: authz.APIGroup, Resource: r.Resource, Subresource: r.Subresource})
	}
	a, err := authz.NewSAR(authz.SARConfig{Client: api.Clientset(), Namespace: ns, Metrics: metrics.NewSet()})
	require.NoError(t, err)
	return newHarness(t, options{authz: a}), api
}

func TestSAR_RBACDecidesWhoWrites(t *testing.T) {
	h, _ := sarHarness(t)
	rec := []byte(`{"remediationRequestID":"rr-sar"}`)

	t.Run("a writer RBAC allows gets 201", func(t *testing.T) {
		decodeWrite(t, h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), rec))
	})
	t.Run("one RBAC does not allow gets the spec's 403", func(t *testing.T) {
		for _, token := range []string{outsiderToken, tokenOf("aianalysis-controller-sa"), tokenOf("workflowexecution-controller-sa")} {
			r := h.post(t, "/api/v1/audit/remediation", token, rec)
			require.Equal(t, 403, r.status, r.body)
			assert.JSONEq(t, `{"error":"authorization_failed","message":"Service account not authorized for write operations"}`, r.body)
		}
	})
	t.Run("a batch item of a kind RBAC does not allow is rejected alone", func(t *testing.T) {
		r := h.post(t, "/api/v1/audit/batch", tokenOf("gateway-sa"),
			[]byte(`{"records":[{"kind":"remediation","record":{"remediationRequestID":"rr-1"}},`+
				`{"kind":"workflow","record":{"workflowID":"wf-1","stepName":"s","stepStatus":"completed","duration":1}}]}`))
		require.Equal(t, 200, r.status, r.body)
		var resp wire.BatchResponse
		require.NoError(t, json.Unmarshal([]byte(r.body), &resp))
		assert.Equal(t, 1, resp.Persisted)
		assert.Equal(t, 1, resp.Rejected)
		require.NotNil(t, resp.Results[1].Error)
		assert.Equal(t, wire.CodeAuthorizationFailed, resp.Results[1].Error.Error)
	})
	t.Run("access lists what RBAC grants", func(t *testing.T) {
		r := h.get(t, "/api/v1/access", tokenOf("workflowexecution-controller-sa"))
		require.Equal(t, 200, r.status, r.body)
		assert.JSONEq(t, `{"identity":"kubernaut-system/workflowexecution-controller-sa","actions":["write:workflow"]}`, r.body)
	})
}

func TestSAR_UnreachableIs503WithRetryAfterAndNothingStored(t *testing.T) {
	h, api := sarHarness(t)
	api.Close()

	for name, send := range map[string]func() response{
		"write": func() response {
			return h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), []byte(`{"remediationRequestID":"rr-down"}`))
		},
		"batch": func() response {
			return h.post(t, "/api/v1/audit/batch", tokenOf("gateway-sa"), batchBody(t, 2, wire.KindRemediation))
		},
		"read":   func() response { return h.get(t, "/api/v1/audit/remediation", tokenOf("aianalysis-controller-sa")) },
		"access": func() response { return h.get(t, "/api/v1/access", tokenOf("gateway-sa")) },
	} {
		t.Run(name, func(t *testing.T) {
			r := send()
			require.Equal(t, 503, r.status, r.body)
			assert.JSONEq(t, `{"error":"service_unavailable","message":"Authorization is unavailable"}`, r.body)
			assert.Equal(t, "1", r.header.Get("Retry-After"))
		})
	}
	assert.Zero(t, h.rows(t, "remediation_audit"), "nothing is written without a decision")
}
