package export

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// maxKeyFile bounds what a key file read takes: a PEM Ed25519 key is about
// 120 bytes; anything much larger is the wrong file.
const maxKeyFile = 64 << 10

// KeyFile is the export signing key: an Ed25519 private key in a PEM file
// (PKCS#8, "PRIVATE KEY", as `openssl genpkey -algorithm ed25519` writes
// it). Key re-reads the file when it changes, so that the key can be
// rotated without a restart. It is safe for concurrent use.
type KeyFile struct {
	path string

	mu   sync.Mutex
	seen os.FileInfo        // the file as it was when last read; nil: read it
	data []byte             // the content key came from
	key  ed25519.PrivateKey // the last good key
	err  error              // why the file's content is not the key in use; nil when it is
}

// OpenKeyFile reads and checks the key file now: a missing or invalid key is
// an error at start-up, not at the first export.
func OpenKeyFile(path string) (*KeyFile, error) {
	k := &KeyFile{path: path}
	k.reload()
	if k.key == nil {
		return nil, k.err
	}
	return k, nil
}

// Key returns the current key. When the file changed (another inode, size
// or modification time: one stat, then a read only if so) it is read
// again, and a valid new key replaces the old one. When the new content is
// not a valid key, or the file cannot be read, the last good key is kept
// and returned, and LastError says why: a half-written file or a bad
// rotation does not stop exports. The error is for a KeyFile not made by
// OpenKeyFile.
func (k *KeyFile) Key() (ed25519.PrivateKey, error) {
	if k == nil || k.path == "" {
		return nil, errors.New("export: KeyFile not opened (use OpenKeyFile)")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reload()
	return k.key, nil
}

// LastError says why the key in use is not what the file now holds (the
// new content is not a valid key, the file is gone); nil when it is. A
// server logs it when an export is signed with the previous key.
func (k *KeyFile) LastError() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// reload reads the file if it changed since it was last read. k.mu is held
// (or k not yet shared).
func (k *KeyFile) reload() {
	fi, err := os.Stat(k.path)
	if err != nil {
		k.seen, k.err = nil, fmt.Errorf("export key file: %w", err)
		return
	}
	if k.seen != nil && os.SameFile(fi, k.seen) && fi.Size() == k.seen.Size() && fi.ModTime().Equal(k.seen.ModTime()) {
		return
	}
	// Stat before reading: a change after the stat is seen by the next one.
	data, err := readSmall(k.path)
	if err != nil {
		k.seen, k.err = nil, fmt.Errorf("export key file: %w", err)
		return
	}
	k.seen = fi
	if k.key != nil && bytes.Equal(data, k.data) {
		k.err = nil // touched, or rewritten with the same key
		return
	}
	key, err := parsePrivateKey(data)
	if err != nil {
		k.err = fmt.Errorf("export key file %s: %w", k.path, err)
		return
	}
	k.key, k.data, k.err = key, data, nil
}

// LoadPublicKey reads an Ed25519 public key from a PEM file (PKIX, "PUBLIC
// KEY", as `openssl pkey -in KEY -pubout` writes it).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := readSmall(path)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, err := parsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return pub, nil
}

// readSmall reads a file of at most maxKeyFile bytes.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a PEM key", path, maxKeyFile)
	}
	return data, nil
}

func parsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	der, err := pemBlock(data, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#8 private key: %w", err)
	}
	ed, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", key)
	}
	return ed, nil
}

func parsePublicKey(data []byte) (ed25519.PublicKey, error) {
	der, err := pemBlock(data, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key: %w", err)
	}
	ed, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", key)
	}
	return ed, nil
}

// pemBlock returns the DER of the file's first PEM block, which must be of
// type want; the errors say what the file is instead.
func pemBlock(data []byte, want string) ([]byte, error) {
	block, _ := pem.Decode(data)
	switch {
	case block == nil:
		return nil, fmt.Errorf("no PEM block: want -----BEGIN %s-----", want)
	case block.Type == want:
		return block.Bytes, nil
	case block.Type == "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("an encrypted private key: write it unencrypted (openssl genpkey without a cipher)")
	case want == "PUBLIC KEY" && (block.Type == "PRIVATE KEY" || bytes.HasSuffix([]byte(block.Type), []byte(" PRIVATE KEY"))):
		return nil, errors.New("a private key: give its public key (openssl pkey -in KEY -pubout)")
	case want == "PRIVATE KEY" && block.Type == "PUBLIC KEY":
		return nil, errors.New("a public key: the signing key must be the private key")
	}
	return nil, fmt.Errorf("a PEM %q block, not %q", block.Type, want)
}
