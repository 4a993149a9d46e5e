package export

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// ParsePrivateKey reads an Ed25519 private key from PKCS#8 PEM.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New(`no "PRIVATE KEY" PEM block (PKCS#8, as openssl genpkey -algorithm ed25519 writes)`)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PKCS#8: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return key, nil
}

// ParsePublicKey reads an Ed25519 public key from PKIX PEM.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New(`no "PUBLIC KEY" PEM block (PKIX, as openssl pkey -pubout writes)`)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PKIX: %w", err)
	}
	key, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return key, nil
}

// LoadPublicKey reads an Ed25519 public key from a PKIX PEM file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("export: public key: %w", err)
	}
	key, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("export: public key %s: %w", path, err)
	}
	return key, nil
}

// KeyFile is the signing key in a file that may be replaced while the
// central runs (a rotated Kubernetes Secret). Key re-reads the file when
// its identity, size or time changed, and parses it when its content did.
// It is safe for concurrent use.
type KeyFile struct {
	path string

	mu      sync.Mutex
	stamp   fileStamp
	content []byte
	key     ed25519.PrivateKey
	lastErr error // why the current content is not in use; nil when it is
}

// fileStamp is what a stat says of a file: a change means a re-read.
type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func stampOf(fi os.FileInfo) fileStamp {
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

// OpenKeyFile reads and checks the key at path: a central must not start
// with an export key it cannot use.
func OpenKeyFile(path string) (*KeyFile, error) {
	k := &KeyFile{path: path}
	if err := k.reload(); err != nil {
		return nil, fmt.Errorf("export: signing key %s: %w", path, err)
	}
	return k, nil
}

// Key is the current signing key. When the file changed and its new
// content is not a valid key (a half-written file, the wrong type), the
// last good key stays in use and LastError says why; the error is non-nil
// only if there was never a good key, which OpenKeyFile rules out.
func (k *KeyFile) Key() (ed25519.PrivateKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(); err != nil {
		k.lastErr = err
	}
	if k.key == nil {
		return nil, fmt.Errorf("export: signing key %s: %w", k.path, k.lastErr)
	}
	return k.key, nil
}

// LastError says why the file's current content is not the key in use;
// nil when it is.
func (k *KeyFile) LastError() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastErr
}

func (k *KeyFile) reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked()
}

func (k *KeyFile) reloadLocked() error {
	fi, err := os.Stat(k.path) // follows the ..data symlink of a Secret volume
	if err != nil {
		return err
	}
	stamp := stampOf(fi)
	if k.key != nil && stamp == k.stamp {
		return nil
	}
	data, err := os.ReadFile(k.path)
	if err != nil {
		return err
	}
	k.stamp = stamp
	if k.key != nil && bytes.Equal(data, k.content) {
		return nil
	}
	key, err := ParsePrivateKey(data)
	if err != nil {
		return err
	}
	k.content, k.key, k.lastErr = data, key, nil
	return nil
}
