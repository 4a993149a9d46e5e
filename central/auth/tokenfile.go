package auth

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// tokenFileCheck is how often TokenFile looks whether its file changed: a
// stat per request would cost every request a system call for a file that
// changes a few times a year.
const tokenFileCheck = time.Second

// TokenFile is StaticTokens read from a file and read again when the file
// changes (another inode, size or modification time; a Kubernetes Secret's
// update swaps a symlink, which is another inode), looked at no more than
// once a second. A new content that does not parse, or a file that is gone,
// keeps the tokens in use and is reported to onError: a half-written file
// must not lock every writer out. It is safe for concurrent use.
type TokenFile struct {
	path    string
	onError func(error)
	now     func() time.Time

	tokens atomic.Pointer[StaticTokens]
	next   atomic.Int64 // Unix nanoseconds after which the file is looked at again

	mu   sync.Mutex  // one reload at a time
	seen os.FileInfo // the file as it was when last read, whether it parsed or not
}

// LoadTokenFile reads the token file now (an error at start-up, not at the
// first request); see ParseStaticTokens for the format. onError receives
// the reloads that fail; nil ignores them.
func LoadTokenFile(path string, onError func(error)) (*TokenFile, error) {
	f := &TokenFile{path: path, onError: onError, now: time.Now}
	if f.onError == nil {
		f.onError = func(error) {}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("auth: static tokens: %w", err)
	}
	s, err := LoadStaticTokens(path)
	if err != nil {
		return nil, err
	}
	f.tokens.Store(s)
	f.seen = fi
	f.next.Store(f.now().Add(tokenFileCheck).UnixNano())
	return f, nil
}

// Len is the number of tokens in use.
func (f *TokenFile) Len() int { return f.tokens.Load().Len() }

// Authenticate is StaticTokens.Authenticate with the tokens in use, after
// reading the file again if it changed.
func (f *TokenFile) Authenticate(ctx context.Context, token string, peer netip.Addr) (Identity, error) {
	if now := f.now(); now.UnixNano() >= f.next.Load() {
		f.reload(now)
	}
	return f.tokens.Load().Authenticate(ctx, token, peer)
}

func (f *TokenFile) reload(now time.Time) {
	if !f.mu.TryLock() {
		return // another request is reloading; this one uses the tokens in use
	}
	defer f.mu.Unlock()
	f.next.Store(now.Add(tokenFileCheck).UnixNano())
	fi, err := os.Stat(f.path)
	if err != nil {
		f.onError(err)
		return
	}
	if os.SameFile(fi, f.seen) && fi.Size() == f.seen.Size() && fi.ModTime().Equal(f.seen.ModTime()) {
		return
	}
	// Looked at once per change: a bad content is reported once, and read
	// again when the file changes again.
	f.seen = fi
	s, err := LoadStaticTokens(f.path)
	if err != nil {
		f.onError(err)
		return
	}
	f.tokens.Store(s)
}
