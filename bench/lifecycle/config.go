package lifecycle

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/kubernaut/datastorage/bench/readload"
	"github.com/kubernaut/datastorage/storage"
)

// Defaults for the zero values of Config.
const (
	DefaultRows         = 10_000_000
	DefaultMonths       = 12
	DefaultWriteRecords = 200_000
	DefaultBatchSize    = 500
	DefaultWriters      = 4
	DefaultRounds       = 3
	DefaultInsertRate   = 5.0
)

// Config configures Run.
type Config struct {
	// DatabaseURL is a postgres:// URL on the cluster to use, as a role that
	// may create databases: Run creates its own (bench_lifecycle_*) and
	// drops them when it returns. Required.
	DatabaseURL string
	// Rows is how many rows to load, both tables together, into the
	// partitioned database and into the plain one. Zero: DefaultRows.
	Rows int64
	// Months is how many monthly partitions the rows fill: the whole months
	// before Now's. Zero: DefaultMonths.
	Months int
	// Seed makes the data and the written records. Zero is a seed like any
	// other.
	Seed uint64
	// WriteRecords is how many records each WriteBatch measurement writes.
	// Zero: DefaultWriteRecords.
	WriteRecords int
	// BatchSize is the records of each WriteBatch call (a writer's records:
	// one service account per batch). Zero: DefaultBatchSize.
	BatchSize int
	// Writers is how many goroutines call WriteBatch at once. Zero:
	// DefaultWriters.
	Writers int
	// Rounds is how many times each database is measured, alternately.
	// Zero: DefaultRounds.
	Rounds int
	// InsertRate is the single-row inserts per second while a migration
	// runs. Zero: DefaultInsertRate.
	InsertRate float64
	// ChunkRows is the rows of each COPY of the loads. Zero: readload's
	// default.
	ChunkRows int
	// SkipWrites, SkipDrop and SkipMigration leave a step out; the
	// partitioned load runs unless both of the first two are set.
	SkipWrites, SkipDrop, SkipMigration bool
	// Now is the clock of the layout: the rows end where its month starts.
	// Zero: time.Now().
	Now time.Time
	// Progress receives a line per step and per COPY chunk. Nil: none.
	Progress io.Writer
}

// Validate reports the first invalid field of c; zero values are valid
// where a default exists.
func (c Config) Validate() error {
	u, err := url.Parse(c.DatabaseURL)
	switch {
	case c.DatabaseURL == "":
		return errors.New("lifecycle: Config.DatabaseURL is required")
	case err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql"):
		return errors.New("lifecycle: Config.DatabaseURL: want a postgres:// URL")
	case c.Rows < 0:
		return fmt.Errorf("lifecycle: Config.Rows must not be negative, got %d", c.Rows)
	case c.Months < 0:
		return fmt.Errorf("lifecycle: Config.Months must not be negative, got %d", c.Months)
	case c.WriteRecords < 0, c.BatchSize < 0, c.Writers < 0, c.Rounds < 0, c.ChunkRows < 0:
		return errors.New("lifecycle: Config.WriteRecords, BatchSize, Writers, Rounds and ChunkRows must not be negative")
	case c.InsertRate < 0:
		return fmt.Errorf("lifecycle: Config.InsertRate must not be negative, got %g", c.InsertRate)
	}
	return nil
}

func (c Config) withDefaults() Config {
	c.Rows = cmp.Or(c.Rows, DefaultRows)
	c.Months = cmp.Or(c.Months, DefaultMonths)
	c.WriteRecords = cmp.Or(c.WriteRecords, DefaultWriteRecords)
	c.BatchSize = cmp.Or(c.BatchSize, DefaultBatchSize)
	c.Writers = cmp.Or(c.Writers, DefaultWriters)
	c.Rounds = cmp.Or(c.Rounds, DefaultRounds)
	c.InsertRate = cmp.Or(c.InsertRate, DefaultInsertRate)
	c.ChunkRows = cmp.Or(c.ChunkRows, readload.DefaultChunkRows)
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// loadConfig is the load of the rows into the database at dsn (at
// migration version, zero for all): the Months whole months before Now's.
func (c Config) loadConfig(dsn string, version uint) readload.LoadConfig {
	end := storage.PeriodMonth.Start(c.Now)
	start := end.AddDate(0, -c.Months, 0)
	return readload.LoadConfig{DatabaseURL: dsn, Rows: c.Rows, Days: int(end.Sub(start) / (24 * time.Hour)), End: end,
		Seed: c.Seed, ChunkRows: c.ChunkRows, Progress: c.Progress, Version: version, Period: storage.PeriodMonth}
}
