package storage

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is the audit database: a pgx connection pool. It is safe for concurrent
// use.
type DB struct {
	pool      *pgxpool.Pool
	maxConns  int32
	closeOnce sync.Once
	spanCache spanCache // the partitions reads walk (partitions.go)
	noLedger  bool      // Config.NoLedger
}

// Open validates cfg and creates the pool. It does not connect: connections
// are made on first use, so Open succeeds while the database is still down
// (use Ping to check it).
//
// The URL may name several hosts (postgres://h1:5432,h2:5432/db?
// target_session_attrs=read-write): each new connection goes to the first
// that accepts writes. After a failover the connections to the old primary
// fail once (ErrUnavailable) and are discarded, and so is any connection
// that meets a read-only server; new ones find the new primary. A cancelled
// or timed-out statement closes its connection (pgconn's default deadline
// handler) rather than sending a cancel request, so a commit waiting for a
// synchronous standby is never turned into a local-only commit that is
// acknowledged.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("storage: open: %w", err)
	}
	cfg = cfg.withDefaults()
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("storage: open: %w", err)
	}
	pcfg.MaxConns = cfg.MaxConns
	pcfg.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	pcfg.ConnConfig.OnPgError = closeOnReadOnly(pcfg.ConnConfig.OnPgError)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("storage: open: %w", err)
	}
	return &DB{pool: pool, maxConns: cfg.MaxConns, noLedger: cfg.NoLedger}, nil
}

// Close closes the pool, waiting for acquired connections to be released.
// It is idempotent.
func (db *DB) Close() {
	db.closeOnce.Do(db.pool.Close)
}

// Ping checks that a connection can be acquired and answers. Its error wraps
// ErrUnavailable when the database is unreachable.
func (db *DB) Ping(ctx context.Context) error {
	const op = "storage: ping"
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", op, acquireErr(err))
	}
	defer conn.Release()
	if err := conn.Ping(ctx); err != nil {
		return wrapErr(op, err)
	}
	return nil
}

// Stat returns the pool's statistics, for metrics.
func (db *DB) Stat() *pgxpool.Stat {
	return db.pool.Stat()
}
