package storage

import (
	"context"

	"github.com/golang-migrate/migrate/v4"
)

// MigrationFiles exposes the embedded migrations to the black-box tests.
var MigrationFiles = migrationsFS

// SetCopyMinRows changes the COPY threshold for a benchmark and returns a
// function that restores it.
func SetCopyMinRows(n int) (restore func()) {
	old := copyMinRows
	copyMinRows = n
	return func() { copyMinRows = old }
}

// MigrateTo applies the migrations up to version only: an installation
// of an earlier release, for upgrade tests.
func MigrateTo(ctx context.Context, databaseURL string, version uint) error {
	return migrateWith(ctx, databaseURL, func(m *migrate.Migrate) error { return m.Migrate(version) })
}
