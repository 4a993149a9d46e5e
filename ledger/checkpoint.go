package ledger

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/kubernaut/datastorage/export"
)

// Checkpoint is a signed statement of the chain's head: entry Seq has hash
// Hash, as seen at Time. Kept outside the database (a file, the log, an
// object store), it is what a rewritten, truncated or restored ledger
// cannot match. One checkpoint is one JSON line:
//
//	{"seq":1234,"hash":"…64 hex…","time":"2026-12-02T10:00:00.123456Z","keyId":"…","signature":"…base64…"}
//
// The signature is Ed25519 over SignedBytes.
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Hash      HexHash   `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"keyId"`
	Signature []byte    `json:"signature"`
}

// HexHash is a Hash written as lowercase hex in JSON.
type HexHash Hash

func (h HexHash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

func (h *HexHash) UnmarshalText(b []byte) error {
	if len(b) != 2*len(h) {
		return fmt.Errorf("hash: want %d hex digits, got %d", 2*len(h), len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

func (h HexHash) String() string { return hex.EncodeToString(h[:]) }

// SignedBytes is what the signature covers.
func (c *Checkpoint) SignedBytes() []byte {
	return []byte("datastorage-ledger-checkpoint-v1\n" + strconv.FormatInt(c.Seq, 10) + "\n" +
		hex.EncodeToString(c.Hash[:]) + "\n" + c.Time.UTC().Format(time.RFC3339Nano) + "\n")
}

// Sign makes a checkpoint of entry seq with hash, at t to the microsecond
// (what a timestamptz keeps: the database's copy must verify too).
func Sign(key ed25519.PrivateKey, seq int64, hash Hash, t time.Time) Checkpoint {
	c := Checkpoint{Seq: seq, Hash: HexHash(hash), Time: t.UTC().Truncate(time.Microsecond), KeyID: export.KeyID(key.Public().(ed25519.PublicKey))}
	c.Signature = ed25519.Sign(key, c.SignedBytes())
	return c
}

// Verify checks the signature with pub.
func (c *Checkpoint) Verify(pub ed25519.PublicKey) error {
	if id := export.KeyID(pub); c.KeyID != id {
		return fmt.Errorf("checkpoint of seq %d is signed by key %s, not %s", c.Seq, c.KeyID, id)
	}
	if !ed25519.Verify(pub, c.SignedBytes(), c.Signature) {
		return fmt.Errorf("checkpoint of seq %d: bad signature (altered or forged)", c.Seq)
	}
	return nil
}

// MarshalLine is the checkpoint's JSON line, newline included.
func (c *Checkpoint) MarshalLine() []byte {
	b, _ := json.Marshal(struct {
		Seq       int64   `json:"seq"`
		Hash      HexHash `json:"hash"`
		Time      string  `json:"time"`
		KeyID     string  `json:"keyId"`
		Signature string  `json:"signature"`
	}{c.Seq, c.Hash, c.Time.UTC().Format(time.RFC3339Nano), c.KeyID, base64.StdEncoding.EncodeToString(c.Signature)})
	return append(b, '\n')
}

// ReadCheckpoints reads checkpoint lines (blank lines are skipped) and
// checks each one's signature with pub. Any line that is not a checkpoint
// signed by pub is an error naming it: a checkpoint file is evidence, and a
// line that does not verify is itself a finding.
func ReadCheckpoints(r io.Reader, pub ed25519.PublicKey) ([]Checkpoint, error) {
	var cps []Checkpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var c Checkpoint
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("checkpoint line %d: %w", n, err)
		}
		if err := c.Verify(pub); err != nil {
			return nil, fmt.Errorf("checkpoint line %d: %w", n, err)
		}
		cps = append(cps, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	if len(cps) == 0 {
		return nil, errors.New("checkpoints: none found")
	}
	return cps, nil
}
