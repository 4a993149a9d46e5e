package storage

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrate applies the embedded migrations (migrations/*.sql) to the database
// at databaseURL and returns nil when there is nothing to do.
//
// Concurrent calls, from several replicas starting at once, are safe:
// golang-migrate's pgx/v5 driver holds a session-level PostgreSQL advisory
// lock (pg_advisory_lock, keyed on database, schema and migrations table)
// while it creates its schema_migrations table and while it reads the version
// and applies migrations, so the others wait and then find nothing to do.
// Each migration file runs as one transaction (BEGIN … COMMIT).
//
// golang-migrate takes no context; cancelling ctx asks it to stop after the
// migration in progress.
func Migrate(ctx context.Context, databaseURL string) error {
	return migrateWith(ctx, databaseURL, (*migrate.Migrate).Up)
}

// MigrateTo applies or reverts migrations until the database is at version
// (the number of a file in migrations/): the schema of an earlier release,
// for upgrade tests and benchmarks that load an old schema and then run
// Migrate on it. The service itself only ever calls Migrate. Same lock,
// transactions and errors as Migrate; nil when the database is at version
// already.
func MigrateTo(ctx context.Context, databaseURL string, version uint) error {
	return migrateWith(ctx, databaseURL, func(m *migrate.Migrate) error { return m.Migrate(version) })
}

// migrateWith runs apply (Up, or Migrate to a version) under the
// same driver, lock and error handling as Migrate.
func migrateWith(ctx context.Context, databaseURL string, apply func(*migrate.Migrate) error) error {
	connCfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("storage: migrate: %w", err)
	}
	// golang-migrate's driver needs a database/sql handle; stdlib wraps pgx.
	sqlDB := stdlib.OpenDB(*connCfg)
	if err := sqlDB.PingContext(ctx); err != nil {
		return errors.Join(wrapErr("storage: migrate", err), sqlDB.Close())
	}
	driver, err := migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
	if err != nil {
		return errors.Join(migrateErr("storage: migrate: driver", err), sqlDB.Close())
	}
	src, err := iofs.New(migrationsFS, "migrations")
	if err != nil {
		return errors.Join(fmt.Errorf("storage: migrate: source: %w", err), driver.Close())
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		return errors.Join(fmt.Errorf("storage: migrate: %w", err), src.Close(), driver.Close())
	}

	stop := context.AfterFunc(ctx, func() {
		select {
		case m.GracefulStop <- true:
		default:
		}
	})
	err = apply(m)
	interrupted := !stop()     // the AfterFunc ran: Up may have stopped early
	srcErr, dbErr := m.Close() // closes driver, and with it sqlDB
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	if err != nil {
		return errors.Join(migrateErr("storage: migrate: up", err), srcErr, dbErr)
	}
	if err := errors.Join(srcErr, dbErr); err != nil {
		return fmt.Errorf("storage: migrate: close: %w", err)
	}
	if interrupted {
		// GracefulStop makes Up return nil with migrations left undone.
		return fmt.Errorf("storage: migrate: %w", ctx.Err())
	}
	return nil
}

// migrateErr is wrapErr for golang-migrate's errors, whose database.Error
// (returned both as a value and as a pointer) does not unwrap to the
// driver's error.
func migrateErr(op string, err error) error {
	var orig error
	var ptr *database.Error
	var val database.Error
	switch {
	case errors.As(err, &ptr):
		orig = ptr.OrigErr
	case errors.As(err, &val):
		orig = val.OrigErr
	}
	if !isUnavailable(err) && isUnavailable(orig) {
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
	return wrapErr(op, err)
}
