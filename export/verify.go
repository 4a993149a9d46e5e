package export

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/kubernaut/datastorage/wire"
)

// readBuffer is Verify's read buffer: lines up to this size are read in
// place, longer ones (rare: a record of several tens of KiB) assembled.
const readBuffer = 64 << 10

// strict decodes a record line: an unknown member is an altered line.
var strict = json.RejectUnknownMembers(true)

// Verify reads an export from r to its end, plain or gzip (told by its
// first two bytes), in constant memory, and checks it against pub: the
// trailer's signature, the record count and digest, nothing after the
// trailer, and the records' order and agreement with the trailer. It
// returns the trailer of a valid export.
//
// What is wrong is a *VerifyError (errors.Is: ErrMalformed, ErrTruncated,
// ErrAltered, ErrWrongKey, ErrInconsistent) saying where, as precisely as
// the file allows: a line that is not a record, cut short, or out of order
// is named; a record line altered into another valid record is found by the
// digest only, which cannot say which line. An error reading r is returned
// as it is, wrapped.
func Verify(r io.Reader, pub ed25519.PublicKey) (*Trailer, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("export: public key is %d bytes, not an Ed25519 public key", len(pub))
	}
	br := bufio.NewReaderSize(r, readBuffer)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the magic bytes, and no more
		}
		if err != nil {
			return nil, (&verifier{}).endWithoutTrailer(err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, readBuffer)
	}
	v := &verifier{lines: lineReader{r: br}, sum: sha256.New(), pub: pub}
	return v.run()
}

// verifier is the state of one Verify.
type verifier struct {
	lines   lineReader
	sum     hash.Hash // of the record lines, newlines included
	pub     ed25519.PublicKey
	entry   wire.AuditEntry // the record line decoded, reused
	records int64
	proofs  int64
	order   order
}

func (v *verifier) run() (*Trailer, error) {
	for {
		line, complete, err := v.lines.next()
		if err != nil {
			return nil, v.endWithoutTrailer(err)
		}
		n := v.lines.n
		if isTrailerLine(line) {
			return v.trailer(n, line, complete)
		}
		if failed, ok := failureLine(line); ok {
			return nil, verifyErr(ErrTruncated, n, fmt.Sprintf("truncated: the export failed after %d records (line %d says: %s) and has no trailer",
				v.records, n, failed), nil)
		}
		if !complete {
			return nil, verifyErr(ErrTruncated, n, fmt.Sprintf("truncated: line %d is cut short (no newline) and no trailer follows", n), nil)
		}
		if isProofLine(line) {
			if err := v.proof(n, line); err != nil {
				return nil, err
			}
			continue
		}
		if v.proofs > 0 {
			return nil, verifyErr(ErrMalformed, n, fmt.Sprintf("line %d: a record after the proof lines", n), nil)
		}
		if err := v.record(n, line); err != nil {
			return nil, err
		}
	}
}

// failureLine reads the line an exporter writes instead of the trailer
// when it fails after it began (doc.go): an error body. It returns what
// the line says, for the operator.
func failureLine(line []byte) (string, bool) {
	if !bytes.HasPrefix(line, []byte(`{"error":`)) {
		return "", false
	}
	var body wire.ErrorBody
	if err := json.Unmarshal(line, &body); err != nil || body.Error == "" {
		return "", false
	}
	what := body.Error + ": " + body.Message
	if body.CorrelationID != "" {
		what += " (correlation ID " + body.CorrelationID + ")"
	}
	return what, true
}

// record checks and digests the record line n.
func (v *verifier) record(n int64, line []byte) error {
	switch {
	case len(line) == 0:
		return verifyErr(ErrMalformed, n, fmt.Sprintf("line %d is empty", n), nil)
	case line[len(line)-1] == '\r':
		// A record's JSON never ends with a carriage return: the file went
		// through a tool that converts line endings.
		return verifyErr(ErrAltered, n, fmt.Sprintf("line %d ends with CR LF: the file's line endings were converted", n), nil)
	}
	v.sum.Write(line)
	v.sum.Write(newline)
	v.entry = wire.AuditEntry{}
	if err := json.Unmarshal(line, &v.entry, strict); err != nil {
		if !jsontext.Value(line).IsValid() {
			return verifyErr(ErrMalformed, n, fmt.Sprintf("line %d is not JSON", n), err)
		}
		return verifyErr(ErrMalformed, n, fmt.Sprintf("line %d is not an audit record", n), err)
	}
	if msg := checkEntry(&v.entry); msg != "" {
		return verifyErr(ErrMalformed, n, fmt.Sprintf("line %d is not an audit record: %s", n, msg), nil)
	}
	v.order.add(n, &v.entry)
	v.records++
	return nil
}

var newline = []byte{'\n'}

// proof checks and digests the proof line n: a JSON object {"proof":…};
// what it proves is the ledger's to check (ledger.VerifyExportProof).
func (v *verifier) proof(n int64, line []byte) error {
	if line[len(line)-1] == '\r' {
		return verifyErr(ErrAltered, n, fmt.Sprintf("line %d ends with CR LF: the file's line endings were converted", n), nil)
	}
	if !jsontext.Value(line).IsValid() {
		return verifyErr(ErrMalformed, n, fmt.Sprintf("line %d is not JSON", n), nil)
	}
	v.sum.Write(line)
	v.sum.Write(newline)
	v.proofs++
	return nil
}

// endWithoutTrailer explains why the input ended (err) before a trailer.
func (v *verifier) endWithoutTrailer(err error) error {
	n := v.lines.n
	switch {
	case err == io.EOF && n == 0:
		return verifyErr(ErrTruncated, 0, "empty: no records and no trailer", nil)
	case err == io.EOF:
		return verifyErr(ErrTruncated, n, fmt.Sprintf("truncated after line %d: no trailer", n), nil)
	case errors.Is(err, errLineTooLong):
		return verifyErr(ErrMalformed, n+1, fmt.Sprintf("line %d is longer than %d bytes: not an export", n+1, MaxLineBytes), nil)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return verifyErr(ErrTruncated, n, fmt.Sprintf("truncated: the gzip data is cut short after line %d", n), err)
	case errors.Is(err, gzip.ErrChecksum):
		return verifyErr(ErrAltered, n, fmt.Sprintf("the gzip data is damaged after line %d", n), err)
	case errors.As(err, new(flate.CorruptInputError)):
		return verifyErr(ErrAltered, n, fmt.Sprintf("the gzip data is damaged after line %d", n), err)
	case errors.Is(err, gzip.ErrHeader):
		return verifyErr(ErrMalformed, n, fmt.Sprintf("after line %d the gzip stream holds something that is not gzip", n), err)
	}
	return fmt.Errorf("export: reading after line %d: %w", n, err)
}

// trailer checks the trailer, line n, and everything it vouches for.
func (v *verifier) trailer(n int64, line []byte, complete bool) (*Trailer, error) {
	trailerJSON, sig, err := splitTrailerLine(line)
	var t *Trailer
	if err == nil {
		t, err = parseTrailer(trailerJSON)
	}
	if err != nil {
		if !complete {
			return nil, verifyErr(ErrTruncated, n, fmt.Sprintf("truncated: the trailer, line %d, is cut short", n), nil)
		}
		return nil, verifyErr(ErrMalformed, n, fmt.Sprintf("line %d is not a valid trailer", n), err)
	}
	// Reading on reuses line's buffer (a reader may scribble on it even at
	// the end): keep the signed bytes.
	trailerJSON = bytes.Clone(trailerJSON)
	// A trailer without its final newline lost nothing signed: accepted.
	if complete {
		switch _, _, err := v.lines.next(); {
		case err == nil:
			return nil, verifyErr(ErrAltered, n+1, fmt.Sprintf("line %d follows the trailer (line %d): lines were appended after the end", n+1, n), nil)
		case err != io.EOF:
			return nil, v.endWithoutTrailer(err)
		}
	}
	if want := KeyID(v.pub); t.KeyID != want {
		return nil, verifyErr(ErrWrongKey, n, fmt.Sprintf("the trailer (line %d) names signing key %s; the public key given is %s", n, t.KeyID, want), nil)
	}
	if !ed25519.Verify(v.pub, trailerJSON, sig) {
		return nil, verifyErr(ErrAltered, n, fmt.Sprintf("the trailer (line %d) was altered: its signature does not verify with key %s", n, t.KeyID), nil)
	}
	hint := v.order.against(t)
	if t.Records != v.records {
		return nil, altered(hint, fmt.Sprintf("the trailer counts %d records, the file has %d: record lines were removed or inserted", t.Records, v.records))
	}
	if t.Proofs != v.proofs {
		return nil, altered(hint, fmt.Sprintf("the trailer counts %d proof lines, the file has %d: proof lines were removed or inserted", t.Proofs, v.proofs))
	}
	if got := formatDigest(v.sum.Sum(nil)); got != t.Digest {
		return nil, altered(hint, fmt.Sprintf("record lines altered, inserted, removed or reordered: their digest is %s, the trailer's %s", got, t.Digest))
	}
	if hint != nil {
		return nil, verifyErr(ErrInconsistent, hint.line, "signed as it is, but "+hint.msg, nil)
	}
	return t, nil
}

// altered is ErrAltered with msg and, when the records show where, the
// first line that does.
func altered(hint *problem, msg string) error {
	if hint == nil {
		return verifyErr(ErrAltered, 0, msg, nil)
	}
	return verifyErr(ErrAltered, hint.line, msg+"; the first sign of it: "+hint.msg, nil)
}
