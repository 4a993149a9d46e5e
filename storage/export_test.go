package storage

// MigrationFiles exposes the embedded migrations to the black-box tests.
var MigrationFiles = migrationsFS

// SetCopyMinRows changes the COPY threshold for a benchmark and returns a
// function that restores it.
func SetCopyMinRows(n int) (restore func()) {
	old := copyMinRows
	copyMinRows = n
	return func() { copyMinRows = old }
}
