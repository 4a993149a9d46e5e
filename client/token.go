package client

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenSource returns the bearer token: a fixed one, or a file's content,
// re-read when its size or modification time changes (the kubelet replaces
// a projected token by renaming a new file over a symlink).
type tokenSource struct {
	static string
	path   string

	mu      sync.Mutex
	token   string
	modTime time.Time
	size    int64
	loaded  bool
}

func (s *tokenSource) get() (string, error) {
	if s.path == "" {
		return s.static, nil
	}
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
	s.token, s.modTime, s.size, s.loaded = strings.TrimSpace(string(b)), fi.ModTime(), fi.Size(), true
	return s.token, nil
}

// invalidate forces a re-read on the next get (after a 401).
func (s *tokenSource) invalidate() {
	s.mu.Lock()
	s.loaded = false
	s.mu.Unlock()
}
