package export

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// What Verify finds wrong, for errors.Is; the *Error it returns says where.
var (
	// ErrMalformed: a line is not a record, or the trailer is not one.
	ErrMalformed = errors.New("export: malformed")
	// ErrTruncated: the file ends before its signed trailer.
	ErrTruncated = errors.New("export: truncated")
	// ErrAltered: the records or the trailer are not what was signed.
	ErrAltered = errors.New("export: altered")
	// ErrWrongKey: the trailer was signed by another key than the one given.
	ErrWrongKey = errors.New("export: signed by another key")
)

// MaxLineBytes bounds one line: a record is at most a few hundred KiB.
const MaxLineBytes = 8 << 20

// Error is a failed verification: which of the errors above, at which line
// (1-based; 0 when it concerns the whole file) and what exactly.
type Error struct {
	Kind   error
	Line   int64
	Detail string
}

func (e *Error) Error() string {
	where := ""
	if e.Line > 0 {
		where = fmt.Sprintf("line %d: ", e.Line)
	}
	return e.Kind.Error() + ": " + where + e.Detail
}

func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, line int64, format string, args ...any) error {
	return &Error{Kind: kind, Line: line, Detail: fmt.Sprintf(format, args...)}
}

var (
	trailerPrefix = []byte(`{"trailer":`)
	errorPrefix   = []byte(`{"error":`)
)

// Verify reads an export from r, in constant memory, and checks it against
// pub: every line a JSON object, a signed trailer at the end and nothing
// after it, the signature made by pub over the trailer, and the trailer's
// count and digest equal to the record lines'. It returns the trailer of a
// good export, else an *Error naming the first problem.
func Verify(r io.Reader, pub ed25519.PublicKey) (*Trailer, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("export: verify: not an Ed25519 public key")
	}
	wantKeyID, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	digest := sha256.New()
	var (
		records int64
		line    int64
		buf     []byte
	)
	for {
		buf, err = readLine(br, buf[:0])
		if err == io.EOF && len(buf) == 0 {
			if line == 0 {
				return nil, fail(ErrTruncated, 0, "the file is empty")
			}
			return nil, fail(ErrTruncated, 0, "no signed trailer after line %d (%d records): the export did not finish", line, records)
		}
		line++
		switch {
		case err == io.EOF:
			return nil, fail(ErrTruncated, line, "the file ends inside this line (no newline)")
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, fail(ErrMalformed, line, "longer than %d bytes", MaxLineBytes)
		case err != nil:
			return nil, fmt.Errorf("export: verify: read: %w", err)
		}
		content := buf[:len(buf)-1]
		switch {
		case bytes.HasPrefix(content, trailerPrefix):
			t, err := checkTrailer(content, line, pub, wantKeyID)
			if err != nil {
				return nil, err
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return nil, fail(ErrAltered, line+1, "data after the trailer")
			}
			if t.Records != records {
				return nil, fail(ErrAltered, 0, "the trailer counts %d records, the file holds %d: record lines were added or removed", t.Records, records)
			}
			if got := "sha256:" + hex.EncodeToString(digest.Sum(nil)); got != t.Digest {
				return nil, fail(ErrAltered, 0, "the record lines do not match the signed digest: a line was altered, or lines were swapped")
			}
			return t, nil
		case bytes.HasPrefix(content, errorPrefix):
			var body struct {
				Message       string `json:"message"`
				CorrelationID string `json:"correlation_id"`
			}
			_ = json.Unmarshal(content, &body)
			return nil, fail(ErrTruncated, line, "the export failed after %d records and has no trailer: %q (correlation ID %s)",
				records, body.Message, body.CorrelationID)
		case len(content) == 0 || content[0] != '{' || !jsontext.Value(content).IsValid():
			return nil, fail(ErrMalformed, line, "not a JSON object (a record line was damaged)")
		}
		digest.Write(buf)
		records++
	}
}

// readLine appends the next line of br to buf, newline included; at the end
// of the input it returns what was left and io.EOF.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		part, err := br.ReadSlice('\n')
		buf = append(buf, part...)
		if len(buf) > MaxLineBytes {
			return buf, bufio.ErrBufferFull
		}
		if err != bufio.ErrBufferFull {
			return buf, err
		}
	}
}

// checkTrailer verifies the trailer line's signature, then decodes it.
func checkTrailer(content []byte, line int64, pub ed25519.PublicKey, wantKeyID string) (*Trailer, error) {
	var tl struct {
		Trailer   jsontext.Value `json:"trailer"`
		Signature string         `json:"signature"`
	}
	if err := json.Unmarshal(content, &tl, json.RejectUnknownMembers(true)); err != nil || len(tl.Trailer) == 0 {
		return nil, fail(ErrMalformed, line, "the trailer line is not {\"trailer\":{…},\"signature\":\"…\"}")
	}
	var t Trailer
	if err := json.Unmarshal(tl.Trailer, &t, json.RejectUnknownMembers(true)); err != nil {
		return nil, fail(ErrMalformed, line, "the trailer does not decode: %v", err)
	}
	if t.Format != Format {
		return nil, fail(ErrMalformed, line, "format %q, this verifier reads %q", t.Format, Format)
	}
	sig, err := base64.StdEncoding.DecodeString(tl.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fail(ErrMalformed, line, "the signature is not a base64 Ed25519 signature")
	}
	// The signature covers the trailer's bytes as written: a
	// jsontext.Value keeps them as they were.
	if !ed25519.Verify(pub, tl.Trailer, sig) {
		if t.KeyID != wantKeyID {
			return nil, fail(ErrWrongKey, line, "signed with key %s (as the trailer says), verified with key %s", t.KeyID, wantKeyID)
		}
		return nil, fail(ErrAltered, line, "the trailer's signature does not verify: the trailer was altered")
	}
	if slices.Contains(t.Kinds, "") {
		return nil, fail(ErrMalformed, line, "the trailer lists an empty kind")
	}
	return &t, nil
}
