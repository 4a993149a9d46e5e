package wire

import (
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// remediationJSON is a remediation record body as clients send it: the
// fields of RemediationAudit plus the alternative "durationMs".
type remediationJSON struct {
	RemediationRequestID string     `json:"remediationRequestID"`
	AlertName            string     `json:"alertName"`
	Namespace            string     `json:"namespace"`
	Cluster              string     `json:"cluster"`
	Priority             string     `json:"priority"`
	ActionType           string     `json:"actionType"`
	Confidence           *float64   `json:"confidence"`
	Reasoning            string     `json:"reasoning"`
	TargetResource       string     `json:"targetResource"`
	Status               string     `json:"status"`
	Duration             *int64     `json:"duration"`
	DurationMs           *int64     `json:"durationMs"`
	ErrorMessage         string     `json:"errorMessage"`
	CreatedAt            *time.Time `json:"createdAt"`
	ExecutedAt           *time.Time `json:"executedAt"`
}

// workflowJSON is a workflow record body as clients send it.
type workflowJSON struct {
	WorkflowID   string     `json:"workflowID"`
	StepName     string     `json:"stepName"`
	StepStatus   string     `json:"stepStatus"`
	Duration     *int64     `json:"duration"`
	DurationMs   *int64     `json:"durationMs"`
	ErrorMessage string     `json:"errorMessage"`
	ExecutedAt   *time.Time `json:"executedAt"`
}

// DecodeAudit decodes, normalises and validates one record body as a
// single-record endpoint receives it (POST /api/v1/audit/{kind}). now is the
// server's clock, for the "not in the future" check. The Record has Kind and
// the matching Remediation or Workflow set; ID and ReceivedAt are left zero
// for the caller to assign. Every failure is a *ValidationError. The body is
// not retained: the caller may reuse it.
func DecodeAudit(kind Kind, body []byte, now time.Time) (Record, error) {
	if _, err := ParseKind(string(kind)); err != nil {
		return Record{}, err
	}
	if len(body) > MaxRecordBytes {
		return Record{}, invalid("", "Request body is larger than "+strconv.Itoa(MaxRecordBytes)+" bytes")
	}
	rec, verr := decodeAudit(kind, body, now, "Request body")
	if verr != nil {
		return Record{}, verr
	}
	return rec, nil
}

// decodeAudit is DecodeAudit without the size limit; noun names the body in
// messages ("Request body", or "Record" for a batch item).
func decodeAudit(kind Kind, body []byte, now time.Time, noun string) (Record, *ValidationError) {
	if verr := checkObject(body, noun); verr != nil {
		return Record{}, verr
	}
	switch kind {
	case KindRemediation:
		var in remediationJSON
		if err := json.Unmarshal(body, &in, json.RejectUnknownMembers(true)); err != nil {
			return Record{}, jsonError(err, noun)
		}
		d, verr := foldDuration(in.Duration, in.DurationMs)
		if verr != nil {
			return Record{}, verr
		}
		a := &RemediationAudit{
			RemediationRequestID: in.RemediationRequestID,
			AlertName:            in.AlertName,
			Namespace:            in.Namespace,
			Cluster:              in.Cluster,
			Priority:             in.Priority,
			ActionType:           in.ActionType,
			Confidence:           in.Confidence,
			Reasoning:            in.Reasoning,
			TargetResource:       in.TargetResource,
			Status:               in.Status,
			DurationNanos:        d,
			ErrorMessage:         in.ErrorMessage,
			CreatedAt:            normTime(in.CreatedAt),
			ExecutedAt:           normTime(in.ExecutedAt),
		}
		if verr := a.validate(now); verr != nil {
			return Record{}, verr
		}
		return Record{Kind: KindRemediation, Remediation: a}, nil
	default: // KindWorkflow
		var in workflowJSON
		if err := json.Unmarshal(body, &in, json.RejectUnknownMembers(true)); err != nil {
			return Record{}, jsonError(err, noun)
		}
		d, verr := foldDuration(in.Duration, in.DurationMs)
		if verr != nil {
			return Record{}, verr
		}
		a := &WorkflowAudit{
			WorkflowID:    in.WorkflowID,
			StepName:      in.StepName,
			StepStatus:    in.StepStatus,
			DurationNanos: d,
			ErrorMessage:  in.ErrorMessage,
			ExecutedAt:    normTime(in.ExecutedAt),
		}
		if verr := a.validate(now); verr != nil {
			return Record{}, verr
		}
		return Record{Kind: KindWorkflow, Workflow: a}, nil
	}
}

// checkObject rejects an empty body and one whose first value is not an
// object before the decoder sees it (json.Unmarshal would accept "null").
func checkObject(body []byte, noun string) *ValidationError {
	i := 0
	for i < len(body) && isJSONSpace(body[i]) {
		i++
	}
	switch {
	case i == len(body):
		return invalid("", noun+" is empty")
	case body[i] != '{':
		return invalid("", noun+" must be a JSON object")
	}
	return nil
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// foldDuration merges "duration" (ns) and "durationMs" into nanoseconds.
func foldDuration(ns, ms *int64) (*int64, *ValidationError) {
	if verr := checkDuration("duration", ns); verr != nil {
		return nil, verr
	}
	if ms == nil {
		return ns, nil
	}
	if *ms < 0 {
		return nil, invalid("durationMs", "DurationMs must not be negative")
	}
	if *ms > MaxDurationMillis {
		return nil, invalid("durationMs", "DurationMs must be at most 2147483647 milliseconds (about 24.8 days)")
	}
	if ns != nil {
		if *ns/int64(time.Millisecond) != *ms {
			return nil, invalid("durationMs", "DurationMs ("+strconv.FormatInt(*ms, 10)+
				") disagrees with Duration ("+strconv.FormatInt(*ns, 10)+" ns); send one of them")
		}
		return ns, nil
	}
	v := *ms * int64(time.Millisecond)
	return &v, nil
}

// normTime maps an absent or zero timestamp (encoding/json's
// "0001-01-01T00:00:00Z" for an unset time.Time) to nil and any other to UTC
// without a monotonic reading.
func normTime(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// jsonError turns an error of json.Unmarshal into a *ValidationError naming
// the member the JSONPointer points at, in words a client developer
// understands (no Go type names).
func jsonError(err error, noun string) *ValidationError {
	if serr, ok := errors.AsType[*json.SemanticError](err); ok {
		field := fieldPath(serr.JSONPointer)
		name := displayName(lastSegment(serr.JSONPointer))
		switch {
		case errors.Is(serr.Err, json.ErrUnknownName):
			return invalid(field, "Unknown field "+quote(serr.JSONPointer.LastToken()))
		case serr.JSONPointer == "":
			return invalid("", noun+" must be a JSON object")
		case serr.GoType == reflect.TypeFor[time.Time]():
			return invalid(field, name+" must be an RFC 3339 timestamp such as \"2025-10-06T12:00:00Z\"")
		}
		want := describeType(serr.GoType)
		got := describeKind(serr.JSONKind)
		switch {
		case got == "a number" && (want == "an integer" || want == "a number"):
			if errors.Is(serr.Err, strconv.ErrRange) || strings.Contains(errText(serr.Err), "out of range") {
				return invalid(field, name+" is out of range")
			}
			return invalid(field, name+" must be "+want+" (got "+truncate(string(serr.JSONValue), 40)+")")
		case got != "":
			return invalid(field, name+" must be "+want+" (got "+got+")")
		default:
			return invalid(field, name+" must be "+want)
		}
	}
	if serr, ok := errors.AsType[*jsontext.SyntacticError](err); ok {
		field := fieldPath(serr.JSONPointer)
		msg := errText(serr.Err)
		switch {
		case errors.Is(serr.Err, jsontext.ErrDuplicateName):
			return invalid(field, "Field "+quote(serr.JSONPointer.LastToken())+" appears more than once")
		case errors.Is(serr.Err, io.ErrUnexpectedEOF):
			return invalid("", noun+" is truncated: unexpected end of JSON")
		case strings.Contains(msg, "after top-level value"):
			return invalid("", "Unexpected data after the JSON object at byte offset "+strconv.FormatInt(serr.ByteOffset, 10))
		case strings.Contains(msg, "UTF-8"):
			return invalid(field, noun+" contains invalid UTF-8 at byte offset "+strconv.FormatInt(serr.ByteOffset, 10))
		default:
			where := ""
			if field != "" {
				where = " in " + field
			}
			if strings.Contains(msg, "at start of value") {
				msg += " (NaN, Infinity, comments and unquoted strings are not JSON)"
			}
			return invalid(field, "Malformed JSON"+where+" at byte offset "+
				strconv.FormatInt(serr.ByteOffset, 10)+": "+msg)
		}
	}
	return invalid("", noun+" is not valid JSON")
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// describeType names what a Go type accepts, in JSON terms.
func describeType(t reflect.Type) string {
	if t == nil {
		return "a valid value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "true or false"
	default:
		return "a valid value"
	}
}

// describeKind names a JSON value kind; "" when unknown.
func describeKind(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	default:
		return ""
	}
}

// fieldPath turns a JSON Pointer into the Field of a ValidationError:
// "/confidence" → "confidence", "/records/3/kind" → "records[3].kind".
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	prev := ""
	i := 0
	for tok := range p.Tokens() {
		switch {
		case i == 1 && prev == "records" && isIndex(tok):
			b.WriteString("[" + tok + "]")
		case i > 0:
			b.WriteString("." + tok)
		default:
			b.WriteString(tok)
		}
		prev = tok
		i++
	}
	return truncate(b.String(), 200)
}

func lastSegment(p jsontext.Pointer) string {
	if p == "" {
		return ""
	}
	return p.LastToken()
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// quote is a name in double quotes, truncated so that an attacker's
// megabyte-long member name is not echoed back.
func quote(s string) string { return `"` + truncate(s, 100) + `"` }

// truncate cuts s to at most n bytes at a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
