// Package syncbuf is a bytes.Buffer that goroutines may share: tests hand
// it to loggers and child processes as their output and read it while they
// still write.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is safe for concurrent Write and String.
type Buffer struct {
	// Limit caps what the buffer keeps: once it holds Limit bytes, later
	// writes are dropped (and still reported as written, so that a child
	// process never sees a write error). Zero: no limit.
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit > 0 {
		room := max(0, b.Limit-b.buf.Len())
		b.buf.Write(p[:min(len(p), room)])
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String returns everything kept so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
