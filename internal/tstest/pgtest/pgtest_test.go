package pgtest_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
)

func TestNewDatabase_GivesAFreshDatabaseWithVectorAndDropsIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var name string
	t.Run("inner", func(t *testing.T) {
		dsn := pgtest.NewDatabase(t)
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer conn.Close(ctx)

		require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&name))
		assert.NotEqual(t, "postgres", name)

		var vectorText string
		require.NoError(t, conn.QueryRow(ctx, "SELECT '[1,2,3]'::vector::text").Scan(&vectorText),
			"the vector extension must be usable in the new database")
		assert.Equal(t, "[1,2,3]", vectorText)

		var tables int
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables))
		assert.Zero(t, tables, "a fresh database has no tables")
	})
	require.NotEmpty(t, name)

	admin, err := pgx.Connect(ctx, os.Getenv(pgtest.EnvVar))
	require.NoError(t, err)
	defer admin.Close(ctx)
	var exists bool
	require.NoError(t, admin.QueryRow(ctx,
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists))
	assert.False(t, exists, "database %s must be dropped when its test ends", name)
}

func TestNewDatabase_ParallelCallsGetDistinctDatabases(t *testing.T) {
	const n = 4
	var (
		mu    sync.Mutex
		names = map[string]bool{}
	)
	for i := range n {
		t.Run(fmt.Sprint("p", i), func(t *testing.T) {
			t.Parallel()
			dsn := pgtest.NewDatabase(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, dsn)
			require.NoError(t, err)
			defer conn.Close(ctx)
			var name string
			require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&name))
			mu.Lock()
			defer mu.Unlock()
			assert.False(t, names[name], "database %s handed out twice", name)
			names[name] = true
		})
	}
}

// fatalTB records Fatal and stops the calling goroutine's flow like testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

type fatalCalled struct{}

func (f *fatalTB) Helper()                   {}
func (f *fatalTB) Name() string              { return "fake" }
func (f *fatalTB) Cleanup(func())            {}
func (f *fatalTB) Fatal(args ...any)         { f.msg = fmt.Sprint(args...); panic(fatalCalled{}) }
func (f *fatalTB) Fatalf(s string, a ...any) { f.msg = fmt.Sprintf(s, a...); panic(fatalCalled{}) }
func (f *fatalTB) Skip(...any)               { panic("pgtest must never skip") }
func (f *fatalTB) Skipf(string, ...any)      { panic("pgtest must never skip") }
func (f *fatalTB) SkipNow()                  { panic("pgtest must never skip") }

func TestNewDatabase_FailsWithInstructionsWhenTheVariableIsUnset(t *testing.T) {
	t.Setenv(pgtest.EnvVar, "")
	fake := &fatalTB{}
	func() {
		defer func() {
			r := recover()
			_, ok := r.(fatalCalled)
			require.True(t, ok, "NewDatabase must call Fatal, got %v", r)
		}()
		pgtest.NewDatabase(fake)
	}()
	assert.Equal(t, "TEST_DATABASE_URL is not set: run `make test`, which installs PostgreSQL 15 "+
		"with pgvector and starts a throwaway cluster", fake.msg)
}
