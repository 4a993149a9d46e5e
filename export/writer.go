package export

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/kubernaut/datastorage/wire"
)

// ErrFinished is returned by Record and Finish after Finish.
var ErrFinished = errors.New("export: writer already finished")

// Writer writes an export: a record line per Record, then a proof line per
// Proof, then the signed trailer line on Finish. It holds no record: memory stays constant
// whatever the export's size. It is not safe for concurrent use.
//
// Each Record and Finish is one Write call to the underlying writer, of
// whole lines; buffer it (bufio, gzip, the HTTP response's body writer) and
// flush it as the transport needs.
type Writer struct {
	out   io.Writer
	buf   bytes.Buffer      // the line being encoded, reused
	enc   *jsontext.Encoder // encodes into buf, reused
	sum   hash.Hash         // SHA-256 of every record line written
	order order
	n     int64
	proof int64 // proof lines written: no record may follow
	err   error // sticky: a failed Write, or ErrFinished
}

// NewWriter returns a Writer that writes an export to w.
func NewWriter(w io.Writer) *Writer {
	x := &Writer{out: w, sum: sha256.New()}
	x.enc = jsontext.NewEncoder(&x.buf)
	return x
}

// Record writes e as the next record line: its JSON exactly as the query
// API encodes a record, and a newline. Records of one kind must come
// together, in non-decreasing occurredAt (the order storage exports them
// in); a record that breaks this, or is not a complete audit record, is
// refused and nothing of it written. e is not retained.
//
// An error from the underlying writer is returned by this and every later
// call: the export is broken and must not be finished.
func (w *Writer) Record(e *wire.AuditEntry) error {
	if w.err != nil {
		return w.err
	}
	if w.proof > 0 {
		return fmt.Errorf("export: record %d after the proof lines", w.n+1)
	}
	if msg := checkEntry(e); msg != "" {
		return fmt.Errorf("export: record %d: %s", w.n+1, msg)
	}
	if p := w.order.check(w.n+1, e); p != nil {
		return fmt.Errorf("export: record %d refused: %s", w.n+1, p.msg)
	}
	w.buf.Reset()
	if err := json.MarshalEncode(w.enc, e); err != nil {
		w.enc.Reset(&w.buf) // forget the half-written value
		return fmt.Errorf("export: record %d (%s %s): %w", w.n+1, e.Kind, e.AuditID, err)
	}
	line := w.buf.Bytes() // ends with the encoder's newline
	if len(line) > MaxLineBytes {
		return fmt.Errorf("export: record %d (%s %s) is %d bytes, over MaxLineBytes", w.n+1, e.Kind, e.AuditID, len(line))
	}
	if _, err := w.out.Write(line); err != nil {
		w.err = fmt.Errorf("export: write: %w", err)
		return w.err
	}
	w.sum.Write(line)
	w.n++
	w.order.take(w.n, e)
	return nil
}

// Proof writes v, as JSON, as the next proof line: {"proof":v}. Proof
// lines follow the records; what they hold is the ledger's (package ledger
// writes and checks them), the export only counts and signs them. v is not
// retained.
func (w *Writer) Proof(v any) error {
	if w.err != nil {
		return w.err
	}
	w.buf.Reset()
	w.buf.WriteString(proofPrefix)
	if err := json.MarshalWrite(&w.buf, v); err != nil {
		return fmt.Errorf("export: proof line %d: %w", w.proof+1, err)
	}
	w.buf.WriteString("}\n")
	line := w.buf.Bytes()
	if len(line) > MaxLineBytes {
		return fmt.Errorf("export: proof line %d is %d bytes, over MaxLineBytes", w.proof+1, len(line))
	}
	if _, err := w.out.Write(line); err != nil {
		w.err = fmt.Errorf("export: write: %w", err)
		return w.err
	}
	w.sum.Write(line)
	w.proof++
	return nil
}

// Finish completes t (Format, Records, Proofs, Digest, and KeyID from key), checks
// it against the records written, signs its JSON with key and writes the
// trailer line. t must name Kinds (in the order their records were
// written), Until, ExportedAt and ExportedBy; Since is optional. After
// Finish the Writer takes nothing more.
func (w *Writer) Finish(t Trailer, key ed25519.PrivateKey) error {
	if w.err != nil {
		return w.err
	}
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("export: signing key is %d bytes, not an Ed25519 private key", len(key))
	}
	if err := checkTrailer(&t); err != nil {
		return err
	}
	t.Format, t.Records, t.Proofs = Format, w.n, w.proof
	if w.proof > 0 {
		t.Format = FormatWithProof
	}
	t.Digest = formatDigest(w.sum.Sum(nil))
	t.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	if p := w.order.against(&t); p != nil {
		return fmt.Errorf("export: trailer contradicts the records: %s", p.msg)
	}
	line, err := appendTrailerLine(w.buf.AvailableBuffer(), &t, key)
	if err != nil {
		return err
	}
	if _, err := w.out.Write(line); err != nil {
		w.err = fmt.Errorf("export: write: %w", err)
		return w.err
	}
	w.err = ErrFinished
	return nil
}

// checkTrailer checks the fields Finish's caller provides.
func checkTrailer(t *Trailer) error {
	switch {
	case len(t.Kinds) == 0:
		return errors.New("export: trailer: no kinds")
	case t.Until.IsZero():
		return errors.New("export: trailer: no until")
	case t.Since != nil && !t.Since.Before(t.Until):
		return fmt.Errorf("export: trailer: since %s is not before until %s", stamp(*t.Since), stamp(t.Until))
	case t.ExportedAt.IsZero():
		return errors.New("export: trailer: no exportedAt")
	case t.ExportedBy == "":
		return errors.New("export: trailer: no exportedBy")
	}
	for i, k := range t.Kinds {
		if k != wire.KindRemediation && k != wire.KindWorkflow {
			return fmt.Errorf("export: trailer: kind %q is not remediation or workflow", k)
		}
		if slices.Contains(t.Kinds[:i], k) {
			return fmt.Errorf("export: trailer: kind %q twice", k)
		}
	}
	return nil
}
