package storage

// MigrationFiles exposes the embedded migrations to the black-box tests.
var MigrationFiles = migrationsFS
