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
	"time"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/wire"
)

// Format is the trailer's format member: the version of this file format;
// FormatWithProof that of an export with proof lines (doc.go).
const (
	Format          = "kubernaut-audit-export/v1"
	FormatWithProof = "kubernaut-audit-export/v2"
)

// Trailer is the signed last line of an export: what the export holds and
// who made it. The signature covers its JSON exactly as written.
type Trailer struct {
	// Format is Format; Finish sets it.
	Format string `json:"format"`
	// Records is the number of record lines; Finish sets it.
	Records int64 `json:"records"`
	// Proofs is the number of proof lines (FormatWithProof only); Finish
	// sets it.
	Proofs int64 `json:"proofs,omitzero"`
	// Digest is "sha256:" and the lowercase hex SHA-256 of every record
	// line, newline included, in file order; Finish sets it.
	Digest string `json:"digest"`
	// Kinds are the kinds the export was asked for, in the order their
	// records appear.
	Kinds []wire.Kind `json:"kinds"`
	// Since and Until bound the records' occurredAt: Since <= t < Until.
	// Since nil: from the first record ever stored.
	Since *time.Time `json:"since,omitempty"`
	Until time.Time  `json:"until"`
	// ExportedAt is when the export began (the database snapshot's time).
	ExportedAt time.Time `json:"exportedAt"`
	// ExportedBy is the service account that asked for it, "namespace/name".
	ExportedBy string `json:"exportedBy"`
	// KeyID names the signing key: KeyID of its public key. Finish sets it.
	KeyID string `json:"keyID"`
}

// The trailer line is, byte for byte, trailerPrefix, the trailer's JSON,
// signatureInfix, the base64 signature, trailerSuffix and a newline.
const (
	trailerPrefix  = `{"trailer":`
	signatureInfix = `,"signature":"`
	trailerSuffix  = `"}`
	digestPrefix   = "sha256:"
	keyIDLen       = 16
)

// KeyID names an Ed25519 public key in trailers: the first 16 lowercase hex
// digits (8 bytes) of the SHA-256 of its PKIX (SubjectPublicKeyInfo) DER
// encoding, the bytes between the lines of the PEM that
// `openssl pkey -pubout` writes.
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only a key of the wrong length fails; it names no key.
		return "invalid-key"
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:keyIDLen/2])
}

// formatDigest is the trailer's digest member for a SHA-256 sum.
func formatDigest(sum []byte) string { return digestPrefix + hex.EncodeToString(sum) }

// appendTrailerLine appends the signed trailer line of t to b.
func appendTrailerLine(b []byte, t *Trailer, key ed25519.PrivateKey) ([]byte, error) {
	tj, err := json.Marshal(t)
	if err != nil {
		return b, fmt.Errorf("export: trailer: %w", err)
	}
	sig := ed25519.Sign(key, tj)
	b = append(b, trailerPrefix...)
	b = append(b, tj...)
	b = append(b, signatureInfix...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	b = append(b, trailerSuffix...)
	return append(b, '\n'), nil
}

// proofPrefix begins every proof line.
const proofPrefix = `{"proof":`

// isProofLine reports whether line is meant as a proof line.
func isProofLine(line []byte) bool { return bytes.HasPrefix(line, []byte(proofPrefix)) }

// isTrailerLine reports whether line (without its newline) is meant as the
// trailer: record lines begin with {"kind":, the trailer with its prefix.
func isTrailerLine(line []byte) bool { return bytes.HasPrefix(line, []byte(trailerPrefix)) }

// splitTrailerLine cuts a trailer line (without its newline) into the
// trailer's exact JSON bytes and the signature. The signature is base64 (no
// quote, no comma), so the last signatureInfix is the one that ends the
// trailer's JSON.
func splitTrailerLine(line []byte) (trailerJSON, sig []byte, err error) {
	rest, ok := bytes.CutPrefix(line, []byte(trailerPrefix))
	if !ok {
		return nil, nil, errors.New(`does not begin with {"trailer":`)
	}
	rest, ok = bytes.CutSuffix(rest, []byte(trailerSuffix))
	if !ok {
		return nil, nil, errors.New(`does not end with "}`)
	}
	i := bytes.LastIndex(rest, []byte(signatureInfix))
	if i < 0 {
		return nil, nil, errors.New("has no signature member")
	}
	trailerJSON, b64 := rest[:i], rest[i+len(signatureInfix):]
	sig = make([]byte, 0, ed25519.SignatureSize)
	sig, err = base64.StdEncoding.Strict().AppendDecode(sig, b64)
	if err != nil {
		return nil, nil, fmt.Errorf("signature is not base64: %w", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("signature is %d bytes, an Ed25519 signature %d", len(sig), ed25519.SignatureSize)
	}
	return trailerJSON, sig, nil
}

// parseTrailer decodes the trailer's JSON strictly (no unknown or duplicate
// members) and checks the members a verifier relies on before trusting the
// signature: the format, the digest's and the key ID's shape.
func parseTrailer(trailerJSON []byte) (*Trailer, error) {
	var t Trailer
	if err := json.Unmarshal(trailerJSON, &t, json.RejectUnknownMembers(true)); err != nil {
		return nil, err
	}
	switch {
	case t.Format != Format && t.Format != FormatWithProof:
		return nil, fmt.Errorf("format %q is not %q or %q", t.Format, Format, FormatWithProof)
	case t.Format == Format && t.Proofs != 0:
		return nil, fmt.Errorf("format %q has no proof lines, the trailer counts %d", Format, t.Proofs)
	}
	if !isLowerHex(t.Digest, len(digestPrefix), sha256.Size*2) || t.Digest[:len(digestPrefix)] != digestPrefix {
		return nil, fmt.Errorf("digest %q is not sha256:<64 lowercase hex digits>", t.Digest)
	}
	if !isLowerHex(t.KeyID, 0, keyIDLen) {
		return nil, fmt.Errorf("keyID %q is not %d lowercase hex digits", t.KeyID, keyIDLen)
	}
	return &t, nil
}

// isLowerHex reports whether s is skip bytes of anything followed by n
// lowercase hex digits.
func isLowerHex(s string, skip, n int) bool {
	if len(s) != skip+n {
		return false
	}
	for _, c := range []byte(s[skip:]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
