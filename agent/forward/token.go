package forward

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
)

// tokenSource reads the bearer token from a file and re-reads it when the
// file changes (the kubelet rotates projected tokens by swapping a symlink,
// which changes what Stat sees) or when asked to after a 401.
type tokenSource struct {
	path string

	mu    sync.Mutex
	token string
	mtime time.Time
	size  int64
}

// get returns the current token; force re-reads the file regardless.
func (s *tokenSource) get(force bool) (string, error) {
	if s.path == "" {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if !force && s.token != "" && fi.ModTime().Equal(s.mtime) && fi.Size() == s.size {
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
	s.token, s.mtime, s.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}
