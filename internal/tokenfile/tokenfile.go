// Package tokenfile reads a bearer token from a file that is replaced while
// the program runs: the kubelet rotates a projected service-account token by
// renaming a new file over a symlink. Used by the agent's forwarder and by
// the Go client; standard library only.
package tokenfile

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
)

// Source returns the token in a file, re-read when the file's size or
// modification time changes, or after Invalidate.
type Source struct {
	path string

	mu      sync.Mutex
	token   string
	modTime time.Time
	size    int64
	loaded  bool
}

// New returns a Source for path; nothing is read until Token.
func New(path string) *Source { return &Source{path: path} }

// Token returns the current token. An unreadable or empty file is an error:
// sending no token would only earn a 401.
func (s *Source) Token() (string, error) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded && fi.ModTime().Equal(s.modTime) && fi.Size() == s.size {
		return s.token, nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := string(bytes.TrimSpace(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", s.path)
	}
	s.token, s.modTime, s.size, s.loaded = tok, fi.ModTime(), fi.Size(), true
	return tok, nil
}

// Invalidate makes the next Token re-read the file (after a 401: the token
// may have been rotated within the same second and size).
func (s *Source) Invalidate() {
	s.mu.Lock()
	s.loaded = false
	s.mu.Unlock()
}
