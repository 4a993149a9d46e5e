package syncbuf_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kubernaut/datastorage/internal/tstest/syncbuf"
)

func TestBuffer_KeepsTheFirstLimitBytesAndReportsEveryWrite(t *testing.T) {
	b := &syncbuf.Buffer{Limit: 10}
	for _, s := range []string{"hello ", "world", "!"} {
		n, err := b.Write([]byte(s))
		assert.NoError(t, err)
		assert.Equal(t, len(s), n)
	}
	assert.Equal(t, "hello worl", b.String())
}

func TestBuffer_WithoutLimitKeepsEverythingFromConcurrentWriters(t *testing.T) {
	var b syncbuf.Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, strings.Repeat("x", 800), b.String())
}
