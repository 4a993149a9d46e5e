package export

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/wire"
)

// Format names this version of the format in every trailer.
const Format = "kubernaut-audit-export/v1"

// Trailer is the signed summary that ends an export.
type Trailer struct {
	Format     string      `json:"format"`
	Records    int64       `json:"records"`
	Digest     string      `json:"digest"` // "sha256:<hex>" over every record line, newlines included
	Kinds      []wire.Kind `json:"kinds"`
	Since      *time.Time  `json:"since,omitempty"` // nil: from the first record
	Until      time.Time   `json:"until"`
	ExportedAt time.Time   `json:"exportedAt"`
	ExportedBy string      `json:"exportedBy"`
	KeyID      string      `json:"keyID"`
}

// Writer writes an export: Record for each record, then Finish once. It
// buffers one line at a time; the caller buffers the output.
type Writer struct {
	w      io.Writer
	line   bytes.Buffer
	digest hash.Hash
	n      int64
	done   bool
}

// NewWriter returns a Writer of an export to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, digest: sha256.New()}
}

// Record writes e as the next record line.
func (w *Writer) Record(e *wire.AuditEntry) error {
	if w.done {
		return errors.New("export: record after the trailer")
	}
	w.line.Reset()
	if err := json.MarshalWrite(&w.line, e); err != nil {
		return fmt.Errorf("export: encode record: %w", err)
	}
	w.line.WriteByte('\n')
	w.digest.Write(w.line.Bytes())
	if _, err := w.w.Write(w.line.Bytes()); err != nil {
		return err
	}
	w.n++
	return nil
}

// Records is how many records were written so far.
func (w *Writer) Records() int64 { return w.n }

// Finish fills in t's Format, Records, Digest and KeyID, signs it with key
// and writes the trailer line. Nothing may be written after it.
func (w *Writer) Finish(t Trailer, key ed25519.PrivateKey) error {
	if w.done {
		return errors.New("export: Finish called twice")
	}
	if len(key) != ed25519.PrivateKeySize {
		return errors.New("export: no valid Ed25519 signing key")
	}
	w.done = true
	t.Format = Format
	t.Records = w.n
	t.Digest = "sha256:" + hex.EncodeToString(w.digest.Sum(nil))
	id, err := KeyID(key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	t.KeyID = id
	body, err := json.Marshal(&t)
	if err != nil {
		return fmt.Errorf("export: encode trailer: %w", err)
	}
	sig := ed25519.Sign(key, body)
	w.line.Reset()
	w.line.WriteString(`{"trailer":`)
	w.line.Write(body)
	w.line.WriteString(`,"signature":"`)
	w.line.WriteString(base64.StdEncoding.EncodeToString(sig))
	w.line.WriteString("\"}\n")
	_, err = w.w.Write(w.line.Bytes())
	return err
}

// KeyID names a public key: the first 16 hex digits of the SHA-256 of its
// PKIX DER encoding.
func KeyID(pub ed25519.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("export: key ID: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8]), nil
}
