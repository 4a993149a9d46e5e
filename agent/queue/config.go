package queue

import (
	"cmp"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
)

// Defaults for Config's zero fields.
const (
	DefaultMaxBytes        = 256 << 20
	DefaultMaxGroupBytes   = 256 << 10
	DefaultMaxGroupRecords = 2000
	DefaultMemTableSize    = 4 << 20
	DefaultReclaimInterval = 30 * time.Second
)

// Config configures a Queue. Every field documents its zero value.
type Config struct {
	// Dir holds the Badger files. Required.
	Dir string
	// MaxBytes bounds the buffered records and the dead letters (value
	// bytes); Append answers ErrFull beyond it. Zero: DefaultMaxBytes.
	// Dead letters count until DeleteDeadLetters, so a flood of rejected
	// records stops the writers with 503s instead of filling the disk.
	MaxBytes int64
	// MaxGroupBytes and MaxGroupRecords bound what one commit (one fsync)
	// merges. Zero: DefaultMaxGroupBytes, DefaultMaxGroupRecords.
	MaxGroupBytes   int
	MaxGroupRecords int
	// MemTableSize is Badger's memtable (and WAL) size; the transaction size
	// limit is 15% of it. Zero: DefaultMemTableSize (4 MiB); minimum 4 MiB.
	MemTableSize int64
	// ReclaimInterval is how often space is reclaimed (value-log GC, and a
	// drop of the record prefix when the queue is empty). Zero:
	// DefaultReclaimInterval.
	ReclaimInterval time.Duration
	// MinFreeBytes is the free space Dir's file system must keep: below it
	// Append answers ErrDiskFull. Badger writes its log through memory-mapped
	// files, and a write into a mapping the file system cannot back kills
	// the process (SIGBUS) instead of returning an error, so the queue stops
	// taking records while a new memtable log (2×MemTableSize) still fits.
	// Zero: 2×MemTableSize + 4 MiB.
	MinFreeBytes int64
	// FreeBytes reports the free space of a directory's file system. Nil:
	// statfs(2). Tests replace it.
	FreeBytes func(dir string) (int64, error)
	// Logger receives the queue's and Badger's warnings. Zero: disabled.
	Logger zerolog.Logger
	// Metrics receives the queue's metrics. Nil: a private set.
	Metrics *metrics.Set
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	c.MaxBytes = cmp.Or(c.MaxBytes, DefaultMaxBytes)
	c.MaxGroupBytes = cmp.Or(c.MaxGroupBytes, DefaultMaxGroupBytes)
	c.MaxGroupRecords = cmp.Or(c.MaxGroupRecords, DefaultMaxGroupRecords)
	c.MemTableSize = cmp.Or(c.MemTableSize, DefaultMemTableSize)
	c.ReclaimInterval = cmp.Or(c.ReclaimInterval, DefaultReclaimInterval)
	c.MinFreeBytes = cmp.Or(c.MinFreeBytes, 2*c.MemTableSize+4<<20)
	if c.Metrics == nil { // not cmp.Or: it would build a set to throw away
		c.Metrics = metrics.NewSet()
	}
	if c.FreeBytes == nil {
		c.FreeBytes = statfsFree
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Dir == "":
		return errors.New("queue config: Dir is required")
	case c.MaxBytes < 0:
		return fmt.Errorf("queue config: MaxBytes %d must be positive", c.MaxBytes)
	case c.MemTableSize < 4<<20:
		return fmt.Errorf("queue config: MemTableSize %d must be at least 4 MiB", c.MemTableSize)
	case c.MaxGroupBytes < 0 || int64(c.MaxGroupBytes) > c.MemTableSize/10:
		return fmt.Errorf("queue config: MaxGroupBytes %d must be in (0, MemTableSize/10]", c.MaxGroupBytes)
	case c.MaxGroupRecords < 0:
		return fmt.Errorf("queue config: MaxGroupRecords %d must be positive", c.MaxGroupRecords)
	case c.MinFreeBytes < 0:
		return fmt.Errorf("queue config: MinFreeBytes %d must be positive", c.MinFreeBytes)
	case c.ReclaimInterval < 0:
		return fmt.Errorf("queue config: ReclaimInterval %v must be positive", c.ReclaimInterval)
	}
	return nil
}

// statfsFree is the space available to an unprivileged writer in dir's file
// system.
func statfsFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}
