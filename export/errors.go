package export

import "errors"

// What is wrong with an export, for errors.Is. Verify returns each inside a
// *VerifyError that says where.
var (
	// ErrMalformed: a line is neither a record nor a trailer of this format
	// (not JSON, not an audit record, too long, an unsupported format).
	ErrMalformed = errors.New("malformed export")
	// ErrTruncated: the file ends before its trailer (empty, cut at a line
	// boundary, cut mid-line, a gzip stream cut short).
	ErrTruncated = errors.New("truncated export")
	// ErrAltered: the file is not what was signed: record lines altered,
	// inserted, removed or reordered (count or digest), the trailer altered
	// (its signature does not verify), or lines after the trailer.
	ErrAltered = errors.New("altered export")
	// ErrWrongKey: the trailer names a signing key other than the public key
	// given to Verify.
	ErrWrongKey = errors.New("export signed by another key")
	// ErrInconsistent: the file is as it was signed, but its records break
	// the format's order or lie outside the trailer's kinds or range: the
	// exporter that signed it is at fault, not the file's custody.
	ErrInconsistent = errors.New("export contradicts its trailer")
)

// VerifyError is what Verify found wrong with an export, and where.
type VerifyError struct {
	// Kind is one of ErrMalformed, ErrTruncated, ErrAltered, ErrWrongKey,
	// ErrInconsistent; errors.Is(err, Kind) holds.
	Kind error
	// Line is the 1-based line the problem was found on (for a digest
	// mismatch: the first line that shows it, when one does). Zero: the
	// problem has no one line (a count or digest mismatch nothing
	// localizes, an empty file).
	Line int64
	// Msg says what is wrong and where ("line 7: not JSON"), in words an
	// operator can act on; Error returns it, with the cause.
	Msg string
	// Err is the underlying cause (a JSON syntax error, a gzip error), or
	// nil; errors.Is and errors.As see it too.
	Err error
}

func (e *VerifyError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap gives errors.Is and errors.As both the kind and the cause.
func (e *VerifyError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func verifyErr(kind error, line int64, msg string, cause error) *VerifyError {
	return &VerifyError{Kind: kind, Line: line, Msg: msg, Err: cause}
}
