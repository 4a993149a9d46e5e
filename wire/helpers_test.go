package wire_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

// testNow is the server clock the tests validate against.
var testNow = time.Date(2025, 10, 6, 12, 0, 0, 0, time.UTC)

// RemediationAuditRequest mirrors the spec's client struct: encoding/json v1
// tags without omitempty and a time.Duration, so zero values are sent as
// "confidence":0, "duration":0, "executedAt":"0001-01-01T00:00:00Z".
type RemediationAuditRequest struct {
	RemediationRequestID string        `json:"remediationRequestID"`
	AlertName            string        `json:"alertName"`
	Namespace            string        `json:"namespace"`
	Cluster              string        `json:"cluster"`
	Priority             string        `json:"priority"`
	ActionType           string        `json:"actionType"`
	Confidence           float64       `json:"confidence"`
	Reasoning            string        `json:"reasoning"`
	TargetResource       string        `json:"targetResource"`
	Status               string        `json:"status"`
	Duration             time.Duration `json:"duration"`
	ErrorMessage         string        `json:"errorMessage"`
	CreatedAt            time.Time     `json:"createdAt"`
	ExecutedAt           time.Time     `json:"executedAt"`
}

// WorkflowAuditRequest mirrors the spec's workflow client struct.
type WorkflowAuditRequest struct {
	WorkflowID   string        `json:"workflowID"`
	StepName     string        `json:"stepName"`
	StepStatus   string        `json:"stepStatus"`
	Duration     time.Duration `json:"duration"`
	ErrorMessage string        `json:"errorMessage"`
	ExecutedAt   time.Time     `json:"executedAt"`
}

// marshalV1 encodes v as the spec's Go clients do.
func marshalV1(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// requireValidationError asserts err is a *wire.ValidationError for field
// whose 400 body has the validation_failed code, and returns it.
func requireValidationError(t testing.TB, err error, field string) *wire.ValidationError {
	t.Helper()
	require.Error(t, err)
	var verr *wire.ValidationError
	require.True(t, errors.As(err, &verr), "error %v (%T) is not a *wire.ValidationError", err, err)
	require.Equal(t, field, verr.Field, "field of %q", verr.Message)
	body := verr.Body()
	require.Equal(t, "validation_failed", body.Error)
	require.Equal(t, 400, body.HTTPStatus())
	require.Equal(t, field, body.Field)
	require.NotEmpty(t, body.Message)
	return verr
}

func ptr[T any](v T) *T { return &v }
