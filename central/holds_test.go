package central_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

const pathHolds = "/api/v1/legal-holds"

// holderAuthz is the default allow-list and holderSA with hold:audit.
func holderAuthz(t testing.TB) *authz.AllowList {
	t.Helper()
	a, err := authz.Parse([]byte(`serviceAccounts:
- {name: gateway-sa, namespace: ` + ns + `, actions: [write:remediation]}
- {name: aianalysis-controller-sa, namespace: ` + ns + `, actions: [write:remediation, read:similar, read:audit]}
- {name: kubernetes-executor-sa, namespace: ` + ns + `, actions: [write:remediation]}
- {name: workflowexecution-controller-sa, namespace: ` + ns + `, actions: [write:workflow]}
- {name: ` + holderSA + `, namespace: ` + ns + `, actions: [hold:audit]}
`))
	require.NoError(t, err)
	return a
}

// sendHold sends method path with token ("" sends none), body (nil: none)
// and extra headers (invalidByDesign marks it as post does).
func (h *harness) sendHold(t *testing.T, method, path, token string, body []byte, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, nil)
	require.NoError(t, err)
	if body != nil {
		req, err = http.NewRequest(method, h.url+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == invalidByDesign {
			req = markInvalid(req, headers[i+1])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	return h.do(t, req)
}

// placeHold places a hold as holderSA and returns it.
func (h *harness) placeHold(t *testing.T, body string, headers ...string) wire.LegalHold {
	t.Helper()
	r := h.sendHold(t, http.MethodPost, pathHolds, tokenOf(holderSA), []byte(body), headers...)
	require.Equal(t, 201, r.status, r.body)
	var hold wire.LegalHold
	require.NoError(t, json.Unmarshal([]byte(r.body), &hold))
	assert.Equal(t, pathHolds+"/"+hold.ID, r.header.Get("Location"))
	return hold
}

func decodeHold(t *testing.T, r response, status int) wire.LegalHold {
	t.Helper()
	require.Equal(t, status, r.status, r.body)
	var hold wire.LegalHold
	require.NoError(t, json.Unmarshal([]byte(r.body), &hold))
	return hold
}

func (h *harness) listHolds(t *testing.T, query string) wire.LegalHoldList {
	t.Helper()
	r := h.sendHold(t, http.MethodGet, pathHolds+query, tokenOf(holderSA), nil)
	require.Equal(t, 200, r.status, r.body)
	var list wire.LegalHoldList
	require.NoError(t, json.Unmarshal([]byte(r.body), &list))
	return list
}

func holdIDs(holds []wire.LegalHold) []string {
	out := make([]string, len(holds))
	for i, h := range holds {
		out[i] = h.ID
	}
	return out
}

func TestHolds_PlaceListReadAndReleaseSayWhoWhenAndWhy(t *testing.T) {
	h := newHarness(t, options{authz: holderAuthz(t)})
	before := time.Now().Add(-time.Second)
	rem := h.placeHold(t, `{"remediationRequestID":"rr-42","reason":"Litigation 2026-117: keep the incident of 2 Nov"}`)
	assert.True(t, strings.HasPrefix(rem.ID, "hold-"), rem.ID)
	assert.Equal(t, "rr-42", rem.RemediationRequestID)
	assert.Empty(t, rem.WorkflowID)
	assert.Equal(t, "Litigation 2026-117: keep the incident of 2 Nov", rem.Reason)
	assert.Equal(t, ns+"/"+holderSA, rem.PlacedBy, "who")
	assert.True(t, rem.PlacedAt.After(before) && rem.PlacedAt.Before(time.Now().Add(time.Second)), "when: %s", rem.PlacedAt)
	assert.True(t, rem.Active)
	assert.Nil(t, rem.ReleasedAt)
	wf := h.placeHold(t, `{"workflowID":"wf-7","reason":"regulator's request"}`)
	assert.Equal(t, "wf-7", wf.WorkflowID)

	// An Idempotency-Key places one hold however often it is sent.
	keyed := h.placeHold(t, `{"remediationRequestID":"rr-43","reason":"r"}`, "Idempotency-Key", "hold-request-1")
	again := h.placeHold(t, `{"remediationRequestID":"rr-43","reason":"r"}`, "Idempotency-Key", "hold-request-1")
	assert.Equal(t, keyed, again)

	got := decodeHold(t, h.sendHold(t, http.MethodGet, pathHolds+"/"+rem.ID, tokenOf(holderSA), nil), 200)
	assert.Equal(t, rem, got)

	all := h.listHolds(t, "")
	assert.Equal(t, []string{rem.ID, wf.ID, keyed.ID}, holdIDs(all.Holds), "in the order placed")
	assert.Empty(t, all.NextCursor)
	first := h.listHolds(t, "?limit=2")
	require.NotEmpty(t, first.NextCursor)
	rest := h.listHolds(t, "?limit=2&cursor="+url.QueryEscape(first.NextCursor))
	assert.Equal(t, holdIDs(all.Holds), append(holdIDs(first.Holds), holdIDs(rest.Holds)...))
	assert.Empty(t, rest.NextCursor)
	assert.Empty(t, h.listHolds(t, "?active=false").Holds)

	// The release: who, when, why; the placement stays as it was.
	r := h.sendHold(t, http.MethodDelete, pathHolds+"/"+wf.ID+"?reason="+url.QueryEscape("settled, see ticket LEGAL-9"), tokenOf(holderSA), nil)
	released := decodeHold(t, r, 200)
	assert.False(t, released.Active)
	assert.Equal(t, ns+"/"+holderSA, released.ReleasedBy)
	assert.Equal(t, "settled, see ticket LEGAL-9", released.ReleaseReason)
	require.NotNil(t, released.ReleasedAt)
	assert.False(t, released.ReleasedAt.Before(wf.PlacedAt))
	assert.Equal(t, wf.Reason, released.Reason)
	assert.Equal(t, wf.PlacedAt, released.PlacedAt)

	r = h.sendHold(t, http.MethodDelete, pathHolds+"/"+wf.ID+"?reason=again", tokenOf(holderSA), nil)
	require.Equal(t, 409, r.status, r.body)
	assert.Contains(t, r.body, `"error":"conflict"`)
	assert.Contains(t, r.body, "released already")
	assert.Contains(t, r.body, ns+"/"+holderSA)

	assert.Equal(t, []string{wf.ID}, holdIDs(h.listHolds(t, "?active=false").Holds))
	assert.Equal(t, []string{rem.ID, keyed.ID}, holdIDs(h.listHolds(t, "?active=true").Holds))
	assert.Equal(t, released, h.listHolds(t, "?active=false").Holds[0], "the list answers the whole hold")

	unknown := pathHolds + "/hold-00000000-0000-7000-8000-000000000000"
	for _, r := range []response{
		h.sendHold(t, http.MethodGet, unknown, tokenOf(holderSA), nil),
		h.sendHold(t, http.MethodDelete, unknown+"?reason=x", tokenOf(holderSA), nil),
	} {
		assert.Equal(t, 404, r.status, r.body)
		assert.Contains(t, r.body, "No such legal hold")
	}
}

func TestHolds_KeepTheirAuditsInTheDatabaseUntilReleased(t *testing.T) {
	h := newHarness(t, options{authz: holderAuthz(t)})
	h.writeAt(t, "gateway-sa", "rr-7", "prod-1", 0)
	h.writeAt(t, "gateway-sa", "rr-8", "prod-1", 0)
	hold := h.placeHold(t, `{"remediationRequestID":"rr-7","reason":"audit by the regulator"}`)

	ctx := context.Background()
	_, err := h.pool.Exec(ctx, "DELETE FROM remediation_audit")
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "%v", err)
	assert.Equal(t, storage.SQLStateHeld, pgErr.Code)
	assert.Contains(t, pgErr.Hint, hold.ID)
	assert.Equal(t, 2, h.rows(t, "remediation_audit"), "nothing went")

	// Released, the rows are no longer held, and still append-only: only
	// retention's partition drop removes them (migration 0009).
	decodeHold(t, h.sendHold(t, http.MethodDelete, pathHolds+"/"+hold.ID+"?reason=closed", tokenOf(holderSA), nil), 200)
	_, err = h.pool.Exec(ctx, "DELETE FROM remediation_audit")
	require.True(t, errors.As(err, &pgErr), "%v", err)
	assert.Equal(t, "LG001", pgErr.Code)
	assert.Equal(t, 2, h.rows(t, "remediation_audit"))
}

func TestHolds_RefuseBadRequestsNamingTheField(t *testing.T) {
	h := newHarness(t, options{authz: holderAuthz(t)})
	tok := tokenOf(holderSA)
	// The validator does not apply the document's patterns to a NUL: the
	// server refuses it, the document's check lets it pass.
	passesTheDocument := map[string]bool{"a NUL in the ID": true}
	for _, c := range []struct {
		name, body, field string
	}{
		{"both IDs", `{"remediationRequestID":"rr-1","workflowID":"wf-1","reason":"r"}`, "workflowID"},
		{"an empty second ID", `{"remediationRequestID":"rr-1","workflowID":"","reason":"r"}`, "workflowID"},
		{"neither", `{"reason":"r"}`, "remediationRequestID"},
		{"a blank ID", `{"remediationRequestID":"  ","reason":"r"}`, "remediationRequestID"},
		{"a NUL in the ID", `{"remediationRequestID":"rr\u0000","reason":"r"}`, "remediationRequestID"},
		{"too long an ID", `{"workflowID":"` + strings.Repeat("w", wire.MaxNameLen+1) + `","reason":"r"}`, "workflowID"},
		{"no reason", `{"remediationRequestID":"rr-1"}`, "reason"},
		{"a blank reason", `{"remediationRequestID":"rr-1","reason":"   "}`, "reason"},
		{"a line break in the reason", `{"remediationRequestID":"rr-1","reason":"a\nb"}`, "reason"},
		{"a bidirectional override", `{"remediationRequestID":"rr-1","reason":"a\u202eb"}`, "reason"},
		{"too long a reason", `{"remediationRequestID":"rr-1","reason":"` + strings.Repeat("r", wire.MaxHoldReasonLen+1) + `"}`, "reason"},
		{"an unknown key", `{"remediationRequestID":"rr-1","reason":"r","until":"2027-01-01T00:00:00Z"}`, "until"},
		{"not an object", `["rr-1"]`, ""},
	} {
		mark := []string{invalidByDesign, c.name}
		if passesTheDocument[c.name] {
			mark = nil
		}
		r := h.sendHold(t, http.MethodPost, pathHolds, tok, []byte(c.body), mark...)
		require.Equal(t, 400, r.status, "%s: %s", c.name, r.body)
		var body wire.ErrorBody
		require.NoError(t, json.Unmarshal([]byte(r.body), &body))
		assert.Equal(t, "validation_failed", body.Error, c.name)
		assert.Equal(t, c.field, body.Field, "%s: %s", c.name, body.Message)
	}
	// An empty header is absent to the document's validator.
	r := h.sendHold(t, http.MethodPost, pathHolds, tok, []byte(`{"remediationRequestID":"rr-1","reason":"r"}`), "Idempotency-Key", "")
	require.Equal(t, 400, r.status, r.body)
	assert.Contains(t, r.body, `"field":"Idempotency-Key"`)
	assert.Empty(t, h.listHolds(t, "").Holds, "nothing was placed")

	hold := h.placeHold(t, `{"remediationRequestID":"rr-1","reason":"r"}`)
	h.placeHold(t, `{"remediationRequestID":"rr-2","reason":"r"}`)
	active := h.listHolds(t, "?active=true&limit=1")
	require.NotEmpty(t, active.NextCursor)
	for _, c := range []struct {
		method, path, field string
		offSchema           bool
	}{
		{"GET", pathHolds + "?active=yes", "active", true},
		{"GET", pathHolds + "?limit=0", "limit", true},
		{"GET", pathHolds + "?kind=remediation", "kind", true},
		{"GET", pathHolds + "?cursor=junk", "cursor", false},
		{"GET", pathHolds + "?cursor=" + active.NextCursor, "cursor", false},
		{"GET", pathHolds + "?active=false&cursor=" + active.NextCursor, "cursor", false},
		{"GET", pathHolds + "/" + hold.ID + "?active=true", "active", true},
		{"DELETE", pathHolds + "/" + hold.ID, "reason", true},
		{"DELETE", pathHolds + "/" + hold.ID + "?reason=", "reason", true},
		{"DELETE", pathHolds + "/" + hold.ID + "?reason=%20%20", "reason", true},
		{"DELETE", pathHolds + "/" + hold.ID + "?reason=a%0Ab", "reason", true},
		{"DELETE", pathHolds + "/" + hold.ID + "?reason=" + strings.Repeat("r", wire.MaxHoldReasonLen+1), "reason", true},
		{"DELETE", pathHolds + "/" + hold.ID + "?reason=r&reason=s", "reason", false},
		{"DELETE", pathHolds + "/" + hold.ID + "?reason=r&by=me", "by", true},
	} {
		var mark []string
		if c.offSchema {
			mark = []string{invalidByDesign, "refused by the document too"}
		}
		r := h.sendHold(t, c.method, c.path, tok, nil, mark...)
		require.Equal(t, 400, r.status, "%s %.80s: %s", c.method, c.path, r.body)
		assert.Contains(t, r.body, `"field":"`+c.field+`"`, "%s %.80s", c.method, c.path)
	}
	assert.True(t, decodeHold(t, h.sendHold(t, http.MethodGet, pathHolds+"/"+hold.ID, tok, nil), 200).Active, "no refused release released it")

	// Paths and methods no operation takes.
	r = h.sendHold(t, http.MethodPut, pathHolds+"/"+hold.ID, tok, nil, invalidByDesign, "PUT")
	assert.Equal(t, 405, r.status)
	assert.Equal(t, "DELETE, GET", r.header.Get("Allow"))
	r = h.sendHold(t, http.MethodDelete, pathHolds, tok, nil, invalidByDesign, "DELETE of the collection")
	assert.Equal(t, 405, r.status)
	assert.Equal(t, "GET, POST", r.header.Get("Allow"))
	r = h.sendHold(t, http.MethodGet, pathHolds+"/"+hold.ID+"/history", tok, nil, invalidByDesign, "no such path")
	assert.Equal(t, 404, r.status)
}

func TestHolds_NeedHoldAudit(t *testing.T) {
	h := newHarness(t, options{authz: holderAuthz(t)})
	hold := h.placeHold(t, `{"workflowID":"wf-1","reason":"r"}`)
	for _, c := range []struct{ method, path, body string }{
		{"POST", pathHolds, `{"workflowID":"wf-2","reason":"r"}`},
		{"GET", pathHolds, ""},
		{"GET", pathHolds + "/" + hold.ID, ""},
		{"DELETE", pathHolds + "/" + hold.ID + "?reason=r", ""},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		r := h.sendHold(t, c.method, c.path, "", body, invalidByDesign, "no token")
		assert.Equal(t, 401, r.status, "%s %s", c.method, c.path)
		// Writers, readers and an outsider: none holds hold:audit.
		for _, who := range []string{tokenOf("gateway-sa"), tokenOf(reader), tokenOf("workflowexecution-controller-sa"), outsiderToken} {
			r := h.sendHold(t, c.method, c.path, who, body)
			assert.Equal(t, 403, r.status, "%s %s", c.method, c.path)
			assert.Contains(t, r.body, "not authorized to manage legal holds")
		}
	}
	assert.True(t, decodeHold(t, h.sendHold(t, http.MethodGet, pathHolds+"/"+hold.ID, tokenOf(holderSA), nil), 200).Active)
	assert.Len(t, h.listHolds(t, "").Holds, 1)

	r := h.get(t, "/api/v1/access", tokenOf(holderSA))
	require.Equal(t, 200, r.status)
	assert.JSONEq(t, `{"identity":"`+ns+`/`+holderSA+`","actions":["hold:audit"]}`, r.body)

	// Nobody holds it by default.
	d := newHarness(t, options{})
	for _, who := range []string{tokenOf(holderSA), tokenOf(reader), tokenOf("gateway-sa")} {
		r := d.sendHold(t, http.MethodGet, pathHolds, who, nil)
		assert.Equal(t, 403, r.status, r.body)
	}
}

func TestHolds_AreChargedToTheReadBudget(t *testing.T) {
	h := newHarness(t, options{authz: holderAuthz(t), readRate: 1, readBurst: 2})
	h.placeHold(t, `{"workflowID":"wf-1","reason":"r"}`)
	h.placeHold(t, `{"workflowID":"wf-2","reason":"r"}`)
	r := h.sendHold(t, http.MethodGet, pathHolds, tokenOf(holderSA), nil)
	require.Equal(t, 429, r.status, r.body)
	assert.Contains(t, r.body, "rows/s")
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	assert.Equal(t, 2, h.rows(t, "legal_holds"))
}

func TestHolds_DatabaseGoneIs503(t *testing.T) {
	h := newHarness(t, options{authz: holderAuthz(t), viaProxy: true, storeTime: 2 * time.Second})
	hold := h.placeHold(t, `{"workflowID":"wf-1","reason":"r"}`)
	h.proxy.SetDown(true)
	for _, c := range []struct {
		method, path string
		body         []byte
	}{
		{"POST", pathHolds, []byte(`{"workflowID":"wf-2","reason":"r"}`)},
		{"GET", pathHolds, nil},
		{"GET", pathHolds + "/" + hold.ID, nil},
		{"DELETE", pathHolds + "/" + hold.ID + "?reason=r", nil},
	} {
		r := h.sendHold(t, c.method, c.path, tokenOf(holderSA), c.body)
		assert.Equal(t, 503, r.status, "%s %s: %s", c.method, c.path, r.body)
		assert.Contains(t, r.body, "PostgreSQL")
	}
	h.proxy.SetDown(false)
	require.Eventually(t, func() bool {
		return h.sendHold(t, http.MethodGet, pathHolds+"/"+hold.ID, tokenOf(holderSA), nil).status == 200
	}, 10*time.Second, 100*time.Millisecond)
	assert.True(t, decodeHold(t, h.sendHold(t, http.MethodGet, pathHolds+"/"+hold.ID, tokenOf(holderSA), nil), 200).Active,
		"the release that met no database released nothing")
}

func TestHolds_CursorOfAnAuditQueryIsNotAHoldCursor(t *testing.T) {
	h := newHarness(t, options{authz: holderAuthz(t)})
	for i := range 2 {
		h.writeAt(t, "gateway-sa", "rr-c", "prod-1", time.Duration(i)*time.Second)
	}
	p := h.page(t, "/api/v1/audit/remediation?limit=1")
	require.NotEmpty(t, p.NextCursor)
	r := h.sendHold(t, http.MethodGet, pathHolds+"?cursor="+url.QueryEscape(p.NextCursor), tokenOf(holderSA), nil)
	require.Equal(t, 400, r.status, r.body)
	assert.Contains(t, r.body, fmt.Sprintf(`"field":%q`, "cursor"))
}
