package tlsconfig

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The one reloading mechanism of this package: a watch holds a value built
// from the contents of some files (the server's snapshot, a client's CA pool,
// a client's certificate) and builds it again when a handshake asks and the
// contents have changed. Files are compared by content, not name or inotify
// events: a Kubernetes Secret volume replaces its files by swapping the
// ..data symlink, which os.ReadFile follows.

// watchedFile is one file a watch reads; what names it in errors ("key").
// An empty path is not read: its contents are nil.
type watchedFile struct{ what, path string }

// watchConfig configures newWatch. Every field is required but ctx and
// onReload.
type watchConfig[T any] struct {
	files []watchedFile
	// build parses the contents, in the order of files, into the value.
	build func(contents [][]byte) (T, error)
	// interval is the least time between two looks at the files.
	interval time.Duration
	now      func() time.Time
	// ctx ends the reloading; the last value stays in use. Nil: never.
	ctx context.Context
	// errPrefix starts each error onError receives.
	errPrefix string
	onError   func(error)
	// onReload receives each value built after the first. Nil: ignored.
	onReload func(T)
}

// watch is a value kept up to date with its files. A failed read or build
// keeps the last good value: a read error is reported once per distinct
// error, a build error once per distinct contents.
type watch[T any] struct {
	cfg       watchConfig[T]
	current   atomic.Pointer[T]
	nextCheck atomic.Int64 // unix nanoseconds of the earliest next look

	mu      sync.Mutex // held by the one caller that reloads
	last    [][]byte   // contents of the last attempt, good or bad
	lastErr string     // read error of the last attempt, to report it once
}

// newWatch reads and builds the first value, which must succeed.
func newWatch[T any](cfg watchConfig[T]) (*watch[T], error) {
	if cfg.ctx == nil {
		cfg.ctx = context.Background()
	}
	if cfg.onReload == nil {
		cfg.onReload = func(T) {}
	}
	w := &watch[T]{cfg: cfg}
	contents, err := w.read()
	if err != nil {
		return nil, err
	}
	v, err := cfg.build(contents)
	if err != nil {
		return nil, err
	}
	w.last = contents
	w.current.Store(&v)
	w.nextCheck.Store(cfg.now().Add(cfg.interval).UnixNano())
	return w, nil
}

// get returns the current value, after a look at the files if it is due.
func (w *watch[T]) get() T {
	w.maybeReload()
	return *w.current.Load()
}

// maybeReload looks at the files if the interval has passed; one concurrent
// caller does it while the others go on with the current value.
func (w *watch[T]) maybeReload() {
	if w.cfg.ctx.Err() != nil {
		return
	}
	now := w.cfg.now()
	next := w.nextCheck.Load()
	if now.UnixNano() < next || !w.nextCheck.CompareAndSwap(next, now.Add(w.cfg.interval).UnixNano()) || !w.mu.TryLock() {
		return
	}
	defer w.mu.Unlock()

	contents, err := w.read()
	if err != nil {
		if msg := err.Error(); msg != w.lastErr {
			w.lastErr = msg
			w.cfg.onError(fmt.Errorf("%s: %w", w.cfg.errPrefix, err))
		}
		return
	}
	w.lastErr = ""
	if slices.EqualFunc(contents, w.last, bytes.Equal) {
		return
	}
	w.last = contents
	v, err := w.cfg.build(contents)
	if err != nil {
		w.cfg.onError(fmt.Errorf("%s: %w", w.cfg.errPrefix, err))
		return
	}
	w.current.Store(&v)
	w.cfg.onReload(v)
}

func (w *watch[T]) read() ([][]byte, error) {
	contents := make([][]byte, len(w.cfg.files))
	for i, f := range w.cfg.files {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.what, err)
		}
		contents[i] = b
	}
	return contents, nil
}
