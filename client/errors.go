package client

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kubernaut/datastorage/wire"
)

// APIError is an answer other than success: the HTTP status and the server's
// error body ({"error":…,"message":…,"field":…}). When the server sent no
// JSON error body, Body.Error is derived from the status and Body.Message
// holds the start of what it sent. Use errors.As to get it.
type APIError struct {
	StatusCode int
	Body       wire.ErrorBody
	// RetryAfter is the server's Retry-After (zero when absent).
	RetryAfter time.Duration
	// Attempts is how many requests were sent for this write.
	Attempts int
}

func (e *APIError) Error() string {
	s := "datastorage: " + strconv.Itoa(e.StatusCode) + " " + e.Body.Error
	if e.Body.Field != "" {
		s += " (field " + e.Body.Field + ")"
	}
	if e.Body.Message != "" {
		s += ": " + e.Body.Message
	}
	if e.Body.CorrelationID != "" {
		s += " [correlation_id " + e.Body.CorrelationID + "]"
	}
	if e.Attempts > 1 {
		s += fmt.Sprintf(" after %d attempts", e.Attempts)
	}
	return s
}

// Retryable reports whether the write may succeed if sent again: 429, 500,
// 502, 503 and 504. The client has already retried these MaxRetries times.
func (e *APIError) Retryable() bool { return retryableStatus(e.StatusCode) }

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// codeForStatus names an error body the server did not send.
func codeForStatus(code int) string {
	switch code {
	case 400:
		return wire.CodeValidationFailed
	case 401:
		return wire.CodeAuthenticationFailed
	case 403:
		return wire.CodeAuthorizationFailed
	case 404:
		return wire.CodeNotFound
	case 405:
		return wire.CodeMethodNotAllowed
	case 409:
		return wire.CodeConflict
	case 413:
		return wire.CodePayloadTooLarge
	case 415:
		return wire.CodeUnsupportedMediaType
	case 429:
		return wire.CodeRateLimitExceeded
	case 503:
		return wire.CodeServiceUnavailable
	default:
		return wire.CodeInternalError
	}
}
