package wire_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

func TestErrorBodies_MatchSpec(t *testing.T) {
	tests := []struct {
		body   *wire.ErrorBody
		status int
		want   string
	}{
		{wire.ValidationFailed("remediationRequestID", "RemediationRequestID is required"), 400,
			`{"error":"validation_failed","message":"RemediationRequestID is required","field":"remediationRequestID"}`},
		{wire.ValidationFailed("", "Request body is empty"), 400,
			`{"error":"validation_failed","message":"Request body is empty"}`},
		{wire.AuthenticationFailed(), 401, `{"error":"authentication_failed","message":"Token validation failed"}`},
		{wire.AuthorizationFailed(), 403,
			`{"error":"authorization_failed","message":"Service account not authorized for write operations"}`},
		{wire.NotFound(), 404, `{"error":"not_found","message":"Not found"}`},
		{wire.MethodNotAllowed(), 405, `{"error":"method_not_allowed","message":"Method not allowed"}`},
		{wire.RequestTimeout(), 408, `{"error":"request_timeout","message":"Request not received in time"}`},
		{wire.HeadersTooLarge(), 431, `{"error":"headers_too_large","message":"Request headers too large"}`},
		{wire.PayloadTooLarge("Request body exceeds 65536 bytes"), 413,
			`{"error":"payload_too_large","message":"Request body exceeds 65536 bytes"}`},
		{wire.PayloadTooLarge(""), 413, `{"error":"payload_too_large","message":"Request body too large"}`},
		{wire.UnsupportedMediaType(""), 415,
			`{"error":"unsupported_media_type","message":"Content-Type must be application/json"}`},
		{wire.RateLimitExceeded(100), 429,
			`{"error":"rate_limit_exceeded","message":"Too many requests. Limit: 100 records/s per service account"}`},
		{wire.RateLimitExceeded(0.5), 429,
			`{"error":"rate_limit_exceeded","message":"Too many requests. Limit: 0.5 records/s per service account"}`},
		{wire.InternalError("req-abc123"), 500,
			`{"error":"internal_error","message":"Failed to persist audit trail","correlation_id":"req-abc123"}`},
		{wire.ServiceUnavailable("PostgreSQL connection failed"), 503,
			`{"error":"service_unavailable","message":"PostgreSQL connection failed"}`},
	}
	for _, tc := range tests {
		t.Run(tc.body.Error, func(t *testing.T) {
			assert.Equal(t, tc.want, string(tc.body.Marshal()))
			assert.Equal(t, tc.status, tc.body.HTTPStatus())
		})
	}
}

func TestErrorBodyMarshal_NeverFails(t *testing.T) {
	b := wire.ServiceUnavailable("bad \xff byte <&>")
	out := b.Marshal()
	require.True(t, json.Valid(out), "%q", out)
	var back wire.ErrorBody
	require.NoError(t, json.Unmarshal(out, &back))
	assert.Equal(t, "bad \uFFFD byte <&>", back.Message)

	var nilBody *wire.ErrorBody
	out = nilBody.Marshal()
	require.True(t, json.Valid(out))
	require.NoError(t, json.Unmarshal(out, &back))
	assert.Equal(t, "internal_error", back.Error)
}

func TestValidationError_Body(t *testing.T) {
	verr := &wire.ValidationError{Field: "records[3].kind", Message: `Kind must be "remediation" or "workflow"`}
	assert.Equal(t, wire.ValidationFailed("records[3].kind", `Kind must be "remediation" or "workflow"`), verr.Body())
	assert.Contains(t, verr.Error(), "records[3].kind")
}
