package wire_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

func TestDecodeAudit_AcceptsSpecExamples(t *testing.T) {
	created := testNow.Add(-time.Second).In(time.FixedZone("CEST", 2*60*60))
	started := testNow.Add(-3 * time.Second)
	reasoning := "Memory usage has grown linearly for 40 minutes; restarting the pod frees it. " +
		"Similar incidents were resolved by a restart."

	t.Run("gateway sends zero confidence, duration and executedAt", func(t *testing.T) {
		body := marshalV1(t, RemediationAuditRequest{
			RemediationRequestID: "rr-abc123",
			AlertName:            "HighMemoryUsage",
			Namespace:            "production",
			Cluster:              "us-west-2",
			Priority:             "P0",
			CreatedAt:            created,
		})
		require.Contains(t, string(body), `"executedAt":"0001-01-01T00:00:00Z"`)
		require.Contains(t, string(body), `"confidence":0`)

		rec, err := wire.DecodeAudit(wire.KindRemediation, body, testNow)
		require.NoError(t, err)
		assert.Equal(t, wire.Record{Kind: wire.KindRemediation, Remediation: &wire.RemediationAudit{
			RemediationRequestID: "rr-abc123",
			AlertName:            "HighMemoryUsage",
			Namespace:            "production",
			Cluster:              "us-west-2",
			Priority:             "P0",
			Confidence:           ptr(0.0),
			DurationNanos:        ptr(int64(0)),
			CreatedAt:            ptr(created.UTC()),
		}}, rec)
	})

	t.Run("AI analysis sends action, confidence and reasoning", func(t *testing.T) {
		body := marshalV1(t, RemediationAuditRequest{
			RemediationRequestID: "rr-abc123",
			AlertName:            "HighMemoryUsage",
			Namespace:            "production",
			Cluster:              "us-west-2",
			ActionType:           "restart_pod",
			Confidence:           0.87,
			Reasoning:            reasoning,
			CreatedAt:            created,
		})
		rec, err := wire.DecodeAudit(wire.KindRemediation, body, testNow)
		require.NoError(t, err)
		a := rec.Remediation
		require.NotNil(t, a)
		assert.Equal(t, "restart_pod", a.ActionType)
		assert.Equal(t, ptr(0.87), a.Confidence)
		assert.Equal(t, reasoning, a.Reasoning)
		assert.Nil(t, a.ExecutedAt, "the zero time means absent")
		assert.Equal(t, created.UTC(), *a.CreatedAt)
	})

	t.Run("kubernetes executor leaves alert, namespace and cluster empty", func(t *testing.T) {
		body := marshalV1(t, RemediationAuditRequest{
			RemediationRequestID: "rr-abc123",
			ActionType:           "scale_deployment",
			TargetResource:       "production/deployment/api-server",
			Status:               "failed",
			Duration:             1500 * time.Millisecond,
			ErrorMessage:         "deployments.apps \"api-server\" is forbidden",
			ExecutedAt:           started,
		})
		require.Contains(t, string(body), `"alertName":""`)
		rec, err := wire.DecodeAudit(wire.KindRemediation, body, testNow)
		require.NoError(t, err)
		a := rec.Remediation
		assert.Empty(t, a.AlertName)
		assert.Empty(t, a.Namespace)
		assert.Empty(t, a.Cluster)
		assert.Equal(t, "failed", a.Status)
		assert.Equal(t, ptr(int64(1500*time.Millisecond)), a.DurationNanos)
		assert.Equal(t, ptr(int64(1500)), a.DurationMillis())
		assert.Nil(t, a.CreatedAt)
		assert.Equal(t, ptr(started), a.ExecutedAt)
	})

	t.Run("workflow execution sends one record per step", func(t *testing.T) {
		body := marshalV1(t, WorkflowAuditRequest{
			WorkflowID: "wf-42",
			StepName:   "drain-node",
			StepStatus: "completed",
			Duration:   2*time.Minute + 3*time.Microsecond,
			ExecutedAt: started,
		})
		rec, err := wire.DecodeAudit(wire.KindWorkflow, body, testNow)
		require.NoError(t, err)
		assert.Equal(t, wire.Record{Kind: wire.KindWorkflow, Workflow: &wire.WorkflowAudit{
			WorkflowID:    "wf-42",
			StepName:      "drain-node",
			StepStatus:    "completed",
			DurationNanos: ptr(int64(2*time.Minute + 3*time.Microsecond)),
			ExecutedAt:    ptr(started),
		}}, rec)
		assert.Equal(t, ptr(int64(120000)), rec.Workflow.DurationMillis())
	})

	t.Run("compact body of the data-flow diagram", func(t *testing.T) {
		body := `{
           "remediationRequestID": "rr-abc123",
           "alertName": "HighMemoryUsage",
           "namespace": "production",
           "cluster": "us-west-2",
           "priority": "P0"
         }`
		rec, err := wire.DecodeAudit(wire.KindRemediation, []byte(body), testNow)
		require.NoError(t, err)
		assert.Equal(t, &wire.RemediationAudit{
			RemediationRequestID: "rr-abc123",
			AlertName:            "HighMemoryUsage",
			Namespace:            "production",
			Cluster:              "us-west-2",
			Priority:             "P0",
		}, rec.Remediation)
		assert.Nil(t, rec.Workflow)
		assert.Empty(t, rec.ID)
		assert.True(t, rec.ReceivedAt.IsZero())
	})
}

func TestDecodeAudit_ReproducesSpecValidationBody(t *testing.T) {
	for name, body := range map[string][]byte{
		"member missing":       []byte(`{"alertName":"HighMemoryUsage"}`),
		"v1 client sends \"\"": marshalV1(t, RemediationAuditRequest{AlertName: "HighMemoryUsage"}),
		"blank":                []byte(`{"remediationRequestID":"  \t"}`),
		"null":                 []byte(`{"remediationRequestID":null}`),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := wire.DecodeAudit(wire.KindRemediation, body, testNow)
			verr := requireValidationError(t, err, "remediationRequestID")
			assert.JSONEq(t, `{"error":"validation_failed","message":"RemediationRequestID is required","field":"remediationRequestID"}`,
				string(verr.Body().Marshal()))
			assert.Equal(t, `{"error":"validation_failed","message":"RemediationRequestID is required","field":"remediationRequestID"}`,
				string(verr.Body().Marshal()))
		})
	}
}

func TestDecodeAudit_RejectsBadInput(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	rem := func(members string) string {
		if members == "" {
			return `{"remediationRequestID":"rr-1"}`
		}
		return `{"remediationRequestID":"rr-1",` + members + `}`
	}
	wf := func(members string) string {
		if members == "" {
			return `{"workflowID":"wf-1","stepName":"s","stepStatus":"ok"}`
		}
		return `{"workflowID":"wf-1","stepName":"s","stepStatus":"ok",` + members + `}`
	}
	tooLate := testNow.Add(24*time.Hour + time.Second).Format(time.RFC3339)
	tests := []struct {
		name  string
		kind  wire.Kind
		body  string
		field string
	}{
		{"empty body", wire.KindRemediation, ``, ""},
		{"whitespace body", wire.KindRemediation, " \n\t", ""},
		{"null body", wire.KindRemediation, `null`, ""},
		{"array body", wire.KindRemediation, `[{"remediationRequestID":"rr-1"}]`, ""},
		{"string body", wire.KindRemediation, `"rr-1"`, ""},
		{"truncated object", wire.KindRemediation, `{"remediationRequestID":"rr-1"`, ""},
		{"second object after the first", wire.KindRemediation, rem("") + `{}`, ""},
		{"garbage after the object", wire.KindRemediation, rem("") + ` x`, ""},
		{"non-string member name", wire.KindRemediation, `{1:"rr-1"}`, ""},
		{"unknown kind", wire.Kind("audit"), rem(""), "kind"},
		{"empty kind", wire.Kind(""), rem(""), "kind"},
		{"body over MaxRecordBytes", wire.KindRemediation, rem(`"reasoning":"` + long(wire.MaxRecordBytes) + `"`), ""},

		{"unknown field", wire.KindRemediation, rem(`"severity":"high"`), "severity"},
		{"name in another case", wire.KindRemediation, `{"RemediationRequestID":"rr-1"}`, "RemediationRequestID"},
		{"remediation field in a workflow", wire.KindWorkflow, wf(`"alertName":"x"`), "alertName"},
		{"duplicate field", wire.KindRemediation, rem(`"status":"ok","status":"failed"`), "status"},
		{"duplicate required field", wire.KindRemediation, `{"remediationRequestID":"a","remediationRequestID":"b"}`, "remediationRequestID"},
		{"string field given a number", wire.KindRemediation, rem(`"alertName":5`), "alertName"},
		{"string field given an object", wire.KindRemediation, rem(`"namespace":{"name":"x"}`), "namespace"},
		{"invalid UTF-8", wire.KindRemediation, rem("\"alertName\":\"bad \xff byte\""), "alertName"},
		{"lone surrogate escape", wire.KindRemediation, rem(`"alertName":"\ud800"`), "alertName"},
		{"NUL in optional field", wire.KindRemediation, rem(`"reasoning":"a\u0000b"`), "reasoning"},
		{"NUL in required field", wire.KindRemediation, `{"remediationRequestID":"rr\u0000"}`, "remediationRequestID"},
		{"NUL in workflow field", wire.KindWorkflow, wf(`"errorMessage":"\u0000"`), "errorMessage"},

		{"required field too long", wire.KindRemediation, `{"remediationRequestID":"` + long(256) + `"}`, "remediationRequestID"},
		{"alertName too long", wire.KindRemediation, rem(`"alertName":"` + long(256) + `"`), "alertName"},
		{"namespace too long in runes", wire.KindRemediation, rem(`"namespace":"` + strings.Repeat("é", 256) + `"`), "namespace"},
		{"cluster too long", wire.KindRemediation, rem(`"cluster":"` + long(256) + `"`), "cluster"},
		{"actionType too long", wire.KindRemediation, rem(`"actionType":"` + long(256) + `"`), "actionType"},
		{"priority too long", wire.KindRemediation, rem(`"priority":"` + long(51) + `"`), "priority"},
		{"status too long", wire.KindRemediation, rem(`"status":"` + long(51) + `"`), "status"},
		{"targetResource too long", wire.KindRemediation, rem(`"targetResource":"` + long(513) + `"`), "targetResource"},
		{"reasoning too long", wire.KindRemediation, rem(`"reasoning":"` + long(32769) + `"`), "reasoning"},
		{"errorMessage too long", wire.KindRemediation, rem(`"errorMessage":"` + long(32769) + `"`), "errorMessage"},

		{"confidence as a string", wire.KindRemediation, rem(`"confidence":"0.5"`), "confidence"},
		{"confidence as a boolean", wire.KindRemediation, rem(`"confidence":true`), "confidence"},
		{"confidence NaN literal", wire.KindRemediation, rem(`"confidence":NaN`), "confidence"},
		{"confidence Infinity literal", wire.KindRemediation, rem(`"confidence":Infinity`), "confidence"},
		{"confidence negative", wire.KindRemediation, rem(`"confidence":-0.01`), "confidence"},
		{"confidence above one", wire.KindRemediation, rem(`"confidence":1.0001`), "confidence"},
		{"confidence overflows", wire.KindRemediation, rem(`"confidence":1e400`), "confidence"},

		{"duration fractional", wire.KindRemediation, rem(`"duration":1.5`), "duration"},
		{"duration as a string", wire.KindWorkflow, wf(`"duration":"1s"`), "duration"},
		{"duration negative", wire.KindWorkflow, wf(`"duration":-1`), "duration"},
		{"duration beyond INT milliseconds", wire.KindWorkflow, wf(`"duration":` + strconv.FormatInt((int64(wire.MaxDurationMillis)+1)*1e6, 10)), "duration"},
		{"duration beyond int64", wire.KindWorkflow, wf(`"duration":99999999999999999999`), "duration"},
		{"durationMs negative", wire.KindWorkflow, wf(`"durationMs":-5`), "durationMs"},
		{"durationMs beyond INT", wire.KindRemediation, rem(`"durationMs":2147483648`), "durationMs"},
		{"durationMs fractional", wire.KindRemediation, rem(`"durationMs":1.25`), "durationMs"},
		{"duration and durationMs disagree", wire.KindWorkflow, wf(`"duration":1500000000,"durationMs":1501`), "durationMs"},

		{"timestamp not RFC 3339", wire.KindRemediation, rem(`"createdAt":"2025-10-06 12:00:00"`), "createdAt"},
		{"timestamp date only", wire.KindRemediation, rem(`"createdAt":"2025-10-06"`), "createdAt"},
		{"timestamp month 13", wire.KindRemediation, rem(`"executedAt":"2025-13-06T12:00:00Z"`), "executedAt"},
		{"timestamp as a number", wire.KindRemediation, rem(`"createdAt":1759752000`), "createdAt"},
		{"timestamp before 1970", wire.KindRemediation, rem(`"createdAt":"1969-12-31T23:59:59Z"`), "createdAt"},
		{"timestamp year one but not zero", wire.KindWorkflow, wf(`"executedAt":"0001-01-01T00:00:01Z"`), "executedAt"},
		{"timestamp over 24h ahead", wire.KindWorkflow, wf(`"executedAt":"` + tooLate + `"`), "executedAt"},

		{"workflowID missing", wire.KindWorkflow, `{"stepName":"s","stepStatus":"ok"}`, "workflowID"},
		{"stepName missing", wire.KindWorkflow, `{"workflowID":"wf","stepStatus":"ok"}`, "stepName"},
		{"stepStatus blank", wire.KindWorkflow, `{"workflowID":"wf","stepName":"s","stepStatus":" "}`, "stepStatus"},
		{"workflowID too long", wire.KindWorkflow, `{"workflowID":"` + long(256) + `","stepName":"s","stepStatus":"ok"}`, "workflowID"},
		{"stepName too long", wire.KindWorkflow, `{"workflowID":"wf","stepName":"` + long(256) + `","stepStatus":"ok"}`, "stepName"},
		{"stepStatus too long", wire.KindWorkflow, `{"workflowID":"wf","stepName":"s","stepStatus":"` + long(51) + `"}`, "stepStatus"},
		{"remediation body on the workflow endpoint", wire.KindWorkflow, rem(""), "remediationRequestID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := wire.DecodeAudit(tc.kind, []byte(tc.body), testNow)
			verr := requireValidationError(t, err, tc.field)
			assert.Equal(t, wire.Record{}, rec)
			for _, goism := range []string{"Go ", "int64", "float64", "time.Time", "json:", "jsontext", "wire.", "struct"} {
				assert.NotContains(t, verr.Message, goism)
			}
		})
	}
}

func TestDecodeAudit_MessagesSayWhatIsWrong(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{`{"remediationRequestID":"rr","severity":1}`, `Unknown field "severity"`},
		{`{"remediationRequestID":"rr","status":"a","status":"b"}`, `Field "status" appears more than once`},
		{`{"remediationRequestID":"rr","confidence":"high"}`, `Confidence must be a number (got a string)`},
		{`{"remediationRequestID":"rr","duration":1.5}`, `Duration must be an integer (got 1.5)`},
		{`{"remediationRequestID":"rr","alertName":[]}`, `AlertName must be a string (got an array)`},
		{`{"remediationRequestID":"rr","alertName":5}`, `AlertName must be a string (got a number)`},
		{`{"remediationRequestID":"rr","confidence":NaN}`, "Malformed JSON in confidence at byte offset 42: invalid character 'N' at start of value (NaN, Infinity, comments and unquoted strings are not JSON)"},
		{`{"remediationRequestID":"rr","confidence":2}`, `Confidence must be a number between 0 and 1`},
		{`{"remediationRequestID":"rr","createdAt":"1969-01-01T00:00:00Z"}`, `CreatedAt must not be before 1970-01-01T00:00:00Z`},
		{`{"remediationRequestID":"rr","createdAt":"2099-01-01T00:00:00Z"}`, `CreatedAt is more than 24h in the future (impossible timestamp)`},
		{`{"remediationRequestID":"rr","cluster":"` + strings.Repeat("c", 300) + `"}`, `Cluster must be at most 255 characters`},
		{``, `Request body is empty`},
		{`[]`, `Request body must be a JSON object`},
	}
	for _, tc := range tests {
		_, err := wire.DecodeAudit(wire.KindRemediation, []byte(tc.body), testNow)
		require.Error(t, err)
		assert.Equal(t, tc.want, err.(*wire.ValidationError).Message, "body %q", tc.body)
	}
}

func TestDecodeAudit_AcceptsBoundaries(t *testing.T) {
	maxDurNs := int64(wire.MaxDurationMillis)*int64(time.Millisecond) + 999_999
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, a *wire.RemediationAudit)
	}{
		{"confidence zero and one", `{"remediationRequestID":"rr","confidence":1}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Equal(t, ptr(1.0), a.Confidence)
		}},
		{"longest duration", `{"remediationRequestID":"rr","duration":` + strconv.FormatInt(maxDurNs, 10) + `}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Equal(t, ptr(int64(wire.MaxDurationMillis)), a.DurationMillis())
		}},
		{"durationMs alone becomes nanoseconds", `{"remediationRequestID":"rr","durationMs":1500}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Equal(t, ptr(int64(1_500_000_000)), a.DurationNanos)
		}},
		{"durationMs at the INT limit", `{"remediationRequestID":"rr","durationMs":2147483647}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Equal(t, ptr(int64(2147483647)), a.DurationMillis())
		}},
		{"duration and durationMs agreeing keep the nanoseconds", `{"remediationRequestID":"rr","duration":1500999999,"durationMs":1500}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Equal(t, ptr(int64(1500999999)), a.DurationNanos)
		}},
		{"null members are absent", `{"remediationRequestID":"rr","confidence":null,"duration":null,"alertName":null,"createdAt":null}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Equal(t, &wire.RemediationAudit{RemediationRequestID: "rr"}, a)
		}},
		{"zero time is absent", `{"remediationRequestID":"rr","createdAt":"0001-01-01T00:00:00Z","executedAt":"0001-01-01T00:00:00Z"}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Nil(t, a.CreatedAt)
			assert.Nil(t, a.ExecutedAt)
		}},
		{"epoch and 24h ahead", `{"remediationRequestID":"rr","createdAt":"1970-01-01T00:00:00Z","executedAt":"` + testNow.Add(24*time.Hour).Format(time.RFC3339) + `"}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Equal(t, time.Unix(0, 0).UTC(), *a.CreatedAt)
			assert.Equal(t, testNow.Add(24*time.Hour), *a.ExecutedAt)
		}},
		{"offset timestamps become UTC", `{"remediationRequestID":"rr","createdAt":"2025-10-06T14:00:00.123456789+02:00"}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Equal(t, time.Date(2025, 10, 6, 12, 0, 0, 123456789, time.UTC), *a.CreatedAt)
		}},
		{"longest names in multi-byte characters", `{"remediationRequestID":"` + strings.Repeat("é", 255) + `","status":"` + strings.Repeat("日", 50) + `"}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Equal(t, strings.Repeat("日", 50), a.Status)
		}},
		{"strings are kept as sent", `{"remediationRequestID":" rr ","reasoning":"line1\nline2 \u00e9 \"q\""}`, func(t *testing.T, a *wire.RemediationAudit) {
			assert.Equal(t, " rr ", a.RemediationRequestID)
			assert.Equal(t, "line1\nline2 é \"q\"", a.Reasoning)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := wire.DecodeAudit(wire.KindRemediation, []byte(tc.body), testNow)
			require.NoError(t, err)
			require.Equal(t, wire.KindRemediation, rec.Kind)
			tc.check(t, rec.Remediation)
		})
	}
}

func TestDecodeAudit_DoesNotRetainBody(t *testing.T) {
	body := []byte(`{"remediationRequestID":"rr-1","alertName":"HighMemoryUsage"}`)
	rec, err := wire.DecodeAudit(wire.KindRemediation, body, testNow)
	require.NoError(t, err)
	for i := range body {
		body[i] = 'x'
	}
	assert.Equal(t, "rr-1", rec.Remediation.RemediationRequestID)
	assert.Equal(t, "HighMemoryUsage", rec.Remediation.AlertName)
}

func TestParseKind(t *testing.T) {
	for _, s := range []string{"remediation", "workflow"} {
		k, err := wire.ParseKind(s)
		require.NoError(t, err)
		assert.Equal(t, wire.Kind(s), k)
	}
	for _, s := range []string{"", "Remediation", "workflows", "batch", " workflow"} {
		_, err := wire.ParseKind(s)
		requireValidationError(t, err, "kind")
	}
}
