package storage

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxConns       int32 = 16
	DefaultConnectTimeout       = 5 * time.Second
)

// Config configures the connection pool opened by Open.
type Config struct {
	// DatabaseURL is the PostgreSQL DSN (URL or keyword/value form). Required.
	DatabaseURL string
	// MaxConns bounds the pool. Zero: DefaultMaxConns.
	MaxConns int32
	// ConnectTimeout bounds each connection attempt. Zero: DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// NoLedger writes no ledger entries (ledger.go): only for measuring what
	// the ledger costs. The rows written so are reported by VerifyLedger as
	// written outside the central.
	NoLedger bool
}

// Validate reports the first invalid field of c; zero values are valid where
// a default exists.
func (c Config) Validate() error {
	if c.DatabaseURL == "" {
		return errors.New("storage: Config.DatabaseURL is required")
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("storage: Config.MaxConns must not be negative, got %d", c.MaxConns)
	}
	if c.ConnectTimeout < 0 {
		return fmt.Errorf("storage: Config.ConnectTimeout must not be negative, got %s", c.ConnectTimeout)
	}
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		// pgconn's parse errors mask the password.
		return fmt.Errorf("storage: Config.DatabaseURL: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	c.MaxConns = cmp.Or(c.MaxConns, DefaultMaxConns)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	return c
}
