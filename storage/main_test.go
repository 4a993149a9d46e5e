package storage_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// golang-migrate prefetches the next migration into an io.Pipe; when
		// a migration fails (TestMigrate_FailingMigrationIsAnErrorButNotUnavailable)
		// nobody reads the pipe and that goroutine blocks for the life of the
		// process. The library offers no way to stop it.
		goleak.IgnoreAnyFunction("github.com/golang-migrate/migrate/v4.(*Migration).Buffer"))
}
