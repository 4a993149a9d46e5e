package wire

import (
	"strconv"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// ErrorBody is the JSON body of every error answer, in the spec's shape:
// {"error":"validation_failed","message":"…","field":"…"}. CorrelationID is
// set on 500s only and also appears in the server's log line.
type ErrorBody struct {
	Error         string `json:"error"`
	Message       string `json:"message"`
	Field         string `json:"field,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
}

// Error codes: the "error" member of an ErrorBody. Each has one constructor
// below and one HTTP status (see ErrorBody.HTTPStatus).
const (
	CodeValidationFailed     = "validation_failed"      // 400
	CodeAuthenticationFailed = "authentication_failed"  // 401
	CodeAuthorizationFailed  = "authorization_failed"   // 403
	CodeNotFound             = "not_found"              // 404
	CodeMethodNotAllowed     = "method_not_allowed"     // 405
	CodeConflict             = "conflict"               // 409
	CodePayloadTooLarge      = "payload_too_large"      // 413
	CodeUnsupportedMediaType = "unsupported_media_type" // 415
	CodeRateLimitExceeded    = "rate_limit_exceeded"    // 429
	CodeInternalError        = "internal_error"         // 500
	CodeServiceUnavailable   = "service_unavailable"    // 503
	CodeRequestTimeout       = "request_timeout"        // 408
	CodeHeadersTooLarge      = "headers_too_large"      // 431
)

// ValidationFailed is the 400 body for an invalid request. field is the JSON
// name of the offending member ("" when the body as a whole is malformed).
func ValidationFailed(field, message string) *ErrorBody {
	if message == "" {
		message = "Invalid request"
	}
	return &ErrorBody{Error: CodeValidationFailed, Message: message, Field: field}
}

// AuthenticationFailed is the spec's 401 body. The detail (why the token was
// refused) belongs in the server's log, never in the answer.
func AuthenticationFailed() *ErrorBody {
	return &ErrorBody{Error: CodeAuthenticationFailed, Message: "Token validation failed"}
}

// AuthorizationFailed is the spec's 403 body, for a write.
func AuthorizationFailed() *ErrorBody {
	return Forbidden("Service account not authorized for write operations")
}

// Forbidden is a 403 body with its own message (a read, or one record of a
// batch whose kind the caller may not write).
func Forbidden(message string) *ErrorBody {
	return &ErrorBody{Error: CodeAuthorizationFailed, Message: message}
}

// PayloadTooLarge is the 413 body; an empty message gets a default.
func PayloadTooLarge(message string) *ErrorBody {
	if message == "" {
		message = "Request body too large"
	}
	return &ErrorBody{Error: CodePayloadTooLarge, Message: message}
}

// RequestTimeout is the 408 body for a client too slow to send its request.
func RequestTimeout() *ErrorBody {
	return &ErrorBody{Error: CodeRequestTimeout, Message: "Request not received in time"}
}

// HeadersTooLarge is the 431 body for request headers beyond the server's
// buffer.
func HeadersTooLarge() *ErrorBody {
	return &ErrorBody{Error: CodeHeadersTooLarge, Message: "Request headers too large"}
}

// RateLimitExceeded is the 429 body naming the caller's limit, e.g.
// "Too many requests. Limit: 100 records/s per service account".
func RateLimitExceeded(recordsPerSecond float64) *ErrorBody {
	return &ErrorBody{
		Error:   CodeRateLimitExceeded,
		Message: "Too many requests. Limit: " + strconv.FormatFloat(recordsPerSecond, 'f', -1, 64) + " records/s per service account",
	}
}

// ReadRateLimitExceeded is the 429 body for a reader over its read budget,
// which is counted in rows returned.
func ReadRateLimitExceeded(rowsPerSecond float64) *ErrorBody {
	return &ErrorBody{
		Error:   CodeRateLimitExceeded,
		Message: "Too many rows read. Limit: " + strconv.FormatFloat(rowsPerSecond, 'f', -1, 64) + " rows/s per service account",
	}
}

// InternalError is the spec's 500 body; correlationID also goes into the
// server's log line so an operator can find the cause.
func InternalError(correlationID string) *ErrorBody {
	return &ErrorBody{Error: CodeInternalError, Message: "Failed to persist audit trail", CorrelationID: correlationID}
}

// ServiceUnavailable is the 503 body; an empty message gets a default.
func ServiceUnavailable(message string) *ErrorBody {
	if message == "" {
		message = "Service temporarily unavailable, retry later"
	}
	return &ErrorBody{Error: CodeServiceUnavailable, Message: message}
}

// UnsupportedMediaType is the 415 body; an empty message gets a default.
func UnsupportedMediaType(message string) *ErrorBody {
	if message == "" {
		message = "Content-Type must be application/json"
	}
	return &ErrorBody{Error: CodeUnsupportedMediaType, Message: message}
}

// MethodNotAllowed is the 405 body.
func MethodNotAllowed() *ErrorBody {
	return &ErrorBody{Error: CodeMethodNotAllowed, Message: "Method not allowed"}
}

// NotFound is the 404 body.
func NotFound() *ErrorBody {
	return &ErrorBody{Error: CodeNotFound, Message: "Not found"}
}

// Conflict is the 409 body: the request names more than one thing (an audit
// ID that several writers stored) and must say which.
func Conflict(message string) *ErrorBody {
	return &ErrorBody{Error: CodeConflict, Message: message}
}

// HTTPStatus is the HTTP status code that goes with b.Error (500 for an
// unknown code). The numbers are literal so that wire needs no net/http.
func (b *ErrorBody) HTTPStatus() int {
	switch b.Error {
	case CodeValidationFailed:
		return 400
	case CodeAuthenticationFailed:
		return 401
	case CodeAuthorizationFailed:
		return 403
	case CodeNotFound:
		return 404
	case CodeMethodNotAllowed:
		return 405
	case CodeRequestTimeout:
		return 408
	case CodeConflict:
		return 409
	case CodePayloadTooLarge:
		return 413
	case CodeUnsupportedMediaType:
		return 415
	case CodeRateLimitExceeded:
		return 429
	case CodeHeadersTooLarge:
		return 431
	case CodeServiceUnavailable:
		return 503
	default:
		return 500
	}
}

// fallbackBody is what Marshal returns in the (unreachable) case that
// encoding fails, so that an error answer always has a JSON body.
var fallbackBody = []byte(`{"error":"internal_error","message":"Failed to encode error"}`)

// Marshal is b as compact JSON, members in the order error, message, field,
// correlation_id. It never fails: invalid UTF-8 in a message is replaced by
// U+FFFD, and a nil b encodes as an internal error.
func (b *ErrorBody) Marshal() []byte {
	if b == nil {
		return append([]byte(nil), fallbackBody...)
	}
	out, err := json.Marshal(b, jsontext.AllowInvalidUTF8(true))
	if err != nil {
		return append([]byte(nil), fallbackBody...)
	}
	return out
}

// ValidationError is a request the client must fix: 400 validation_failed.
// Field is the JSON name of the offending member: "remediationRequestID",
// "confidence", "records[3].kind", "records[3].record.confidence"; "" when
// the body as a whole is malformed (empty, not an object, bad JSON syntax).
// Message is meant for the client's developer and never names Go types.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "validation failed: " + e.Message
	}
	return "validation failed: " + e.Field + ": " + e.Message
}

// Body is the 400 answer for e.
func (e *ValidationError) Body() *ErrorBody {
	return ValidationFailed(e.Field, e.Message)
}

// invalid builds a *ValidationError.
func invalid(field, message string) *ValidationError {
	return &ValidationError{Field: field, Message: message}
}
