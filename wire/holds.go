package wire

import (
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
)

// Legal holds: the bodies of /api/v1/legal-holds. A hold names the audits
// of one remediation (remediationRequestID) or of one workflow
// (workflowID); while it is active they are kept whatever their age.

// Legal hold limits.
const (
	// MaxHoldReasonLen bounds a hold's reason, and a release's, in
	// characters: room for a case reference and a sentence or two, not a
	// document (link to it).
	MaxHoldReasonLen = 1024
	// MaxHoldBytes bounds the body of POST /api/v1/legal-holds: the longest
	// valid request written with every character escaped fits.
	MaxHoldBytes = 32 << 10
	// HoldIDPrefix starts every hold ID.
	HoldIDPrefix = "hold-"
)

// holdKeyDomain separates HoldIDForKey's hashes from IDForKey's.
const holdKeyDomain = "kubernaut.datastorage/legal-hold-key/v1"

// PlaceHoldRequest is the body of POST /api/v1/legal-holds: exactly one of
// RemediationRequestID and WorkflowID, each shaped as the record field of
// the same name (MaxNameLen characters, not blank, no NUL), and a Reason
// (not blank, at most MaxHoldReasonLen printable characters). Any ID may
// be held, one with no record yet included: a hold may come before the
// records it keeps.
type PlaceHoldRequest struct {
	RemediationRequestID string `json:"remediationRequestID,omitempty"`
	WorkflowID           string `json:"workflowID,omitempty"`
	Reason               string `json:"reason"`
}

// Target is what r holds: the kind of audits and the ID they carry.
func (r *PlaceHoldRequest) Target() (Kind, string) {
	if r.WorkflowID != "" {
		return KindWorkflow, r.WorkflowID
	}
	return KindRemediation, r.RemediationRequestID
}

// DecodePlaceHold decodes and validates the body of POST
// /api/v1/legal-holds strictly, as records are decoded (unknown or
// duplicate members, invalid UTF-8 and trailing data are refused; a null
// member is absent). Every failure is a *ValidationError.
func DecodePlaceHold(body []byte) (PlaceHoldRequest, error) {
	const noun = "Request body"
	if len(body) > MaxHoldBytes {
		return PlaceHoldRequest{}, invalid("", noun+" is larger than "+strconv.Itoa(MaxHoldBytes)+" bytes")
	}
	if verr := checkObject(body, noun); verr != nil {
		return PlaceHoldRequest{}, verr
	}
	var in placeHoldJSON
	if err := json.Unmarshal(body, &in, json.RejectUnknownMembers(true)); err != nil {
		return PlaceHoldRequest{}, jsonError(err, noun)
	}
	// Presence decides which ID was sent: an empty one is a blank ID, not
	// an absent one.
	if in.RemediationRequestID != nil && in.WorkflowID != nil {
		return PlaceHoldRequest{}, bothTargets()
	}
	r := PlaceHoldRequest{Reason: in.Reason}
	switch {
	case in.WorkflowID != nil:
		if verr := checkRequired("workflowID", *in.WorkflowID); verr != nil {
			return PlaceHoldRequest{}, verr
		}
		r.WorkflowID = *in.WorkflowID
	case in.RemediationRequestID != nil:
		if verr := checkRequired("remediationRequestID", *in.RemediationRequestID); verr != nil {
			return PlaceHoldRequest{}, verr
		}
		r.RemediationRequestID = *in.RemediationRequestID
	}
	if err := r.Validate(); err != nil {
		return PlaceHoldRequest{}, err
	}
	return r, nil
}

// placeHoldJSON is the body as sent; a null member is absent.
type placeHoldJSON struct {
	RemediationRequestID *string `json:"remediationRequestID"`
	WorkflowID           *string `json:"workflowID"`
	Reason               string  `json:"reason"`
}

func bothTargets() *ValidationError {
	return invalid("workflowID", "Send remediationRequestID or workflowID, not both: a hold names one remediation or one workflow")
}

// Validate checks r (see PlaceHoldRequest); errors are *ValidationError.
func (r *PlaceHoldRequest) Validate() error {
	switch {
	case r.RemediationRequestID != "" && r.WorkflowID != "":
		return bothTargets()
	case r.RemediationRequestID == "" && r.WorkflowID == "":
		return invalid("remediationRequestID", "RemediationRequestID or WorkflowID is required: the remediation or workflow whose audits to hold")
	}
	field := "remediationRequestID"
	if r.WorkflowID != "" {
		field = "workflowID"
	}
	_, id := r.Target()
	if verr := checkRequired(field, id); verr != nil {
		return verr
	}
	if verr := checkString(field, id, MaxNameLen); verr != nil {
		return verr
	}
	return ValidateHoldReason("reason", r.Reason)
}

// ValidateHoldReason checks the reason for placing or releasing a hold:
// not blank, at most MaxHoldReasonLen characters, each printable (a letter,
// mark, number, punctuation, symbol or space: no control or formatting
// character, so no line break, and nothing that reorders or hides text
// where the reason is shown). field names it in the error.
func ValidateHoldReason(field, reason string) error {
	if verr := checkRequired(field, reason); verr != nil {
		return verr
	}
	if !utf8.ValidString(reason) {
		return invalid(field, displayName(field)+" must be valid UTF-8")
	}
	if utf8.RuneCountInString(reason) > MaxHoldReasonLen {
		return invalid(field, displayName(field)+" must be at most "+strconv.Itoa(MaxHoldReasonLen)+" characters")
	}
	for i, c := range reason {
		if !unicode.IsGraphic(c) {
			return invalid(field, displayName(field)+" must be printable: "+
				strconv.QuoteRuneToASCII(c)+" at byte "+strconv.Itoa(i)+" is not")
		}
	}
	return nil
}

// LegalHold is a hold as the API answers it: what it holds (one of
// RemediationRequestID and WorkflowID), who placed it (a service account,
// "namespace/name"), when and why, and once released (Active false) who
// released it, when and why.
type LegalHold struct {
	ID                   string     `json:"id"`
	RemediationRequestID string     `json:"remediationRequestID,omitempty"`
	WorkflowID           string     `json:"workflowID,omitempty"`
	Reason               string     `json:"reason"`
	PlacedBy             string     `json:"placedBy"`
	PlacedAt             time.Time  `json:"placedAt"`
	Active               bool       `json:"active"`
	ReleasedBy           string     `json:"releasedBy,omitempty"`
	ReleasedAt           *time.Time `json:"releasedAt,omitempty"`
	ReleaseReason        string     `json:"releaseReason,omitempty"`
}

// LegalHoldList answers GET /api/v1/legal-holds: holds in the order they
// were placed, and the cursor of the next page, absent on the last one.
type LegalHoldList struct {
	Holds      []LegalHold `json:"holds"`
	NextCursor string      `json:"nextCursor,omitempty"`
}

// NewHoldID is a fresh hold ID: "hold-" + a UUIDv7.
func NewHoldID() string {
	return HoldIDPrefix + uuid.Must(uuid.NewV7()).String()
}

// HoldIDForKey is the ID of the hold placed under an Idempotency-Key: the
// same service account and key always give the same ID, so a retried
// request places one hold. "hold-" + a UUIDv8 derived as IDForKey's, under
// its own domain string.
func HoldIDForKey(serviceAccount, key string) string {
	return HoldIDPrefix + derivedUUID(holdKeyDomain, serviceAccount, key).String()
}
