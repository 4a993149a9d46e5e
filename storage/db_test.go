package storage_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/storage"
)

func TestConfig_ValidateNamesTheBadField(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		cfg  storage.Config
		want string
	}{
		"missing URL":       {storage.Config{}, "DatabaseURL"},
		"unparsable URL":    {storage.Config{DatabaseURL: "postgres://u:secret@host:notaport/db"}, "DatabaseURL"},
		"negative MaxConns": {storage.Config{DatabaseURL: "postgres://h/db", MaxConns: -1}, "MaxConns"},
		"negative timeout":  {storage.Config{DatabaseURL: "postgres://h/db", ConnectTimeout: -time.Second}, "ConnectTimeout"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), "secret", "the password never appears in an error")

			_, err = storage.Open(testContext(t), c.cfg)
			require.Error(t, err, "Open validates its config")
		})
	}
	require.NoError(t, storage.Config{DatabaseURL: "postgres://h/db"}.Validate(), "zero values take defaults")
}

func TestOpen_AppliesDefaultsAndCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	db, err := storage.Open(testContext(t), storage.Config{DatabaseURL: closedPortDSN(t)})
	require.NoError(t, err)
	assert.Equal(t, storage.DefaultMaxConns, db.Stat().MaxConns())
	db.Close()
	db.Close()
}

func pingHealthyDatabase(t *testing.T, _ string, db *storage.DB) {
	require.NoError(t, db.Ping(testContext(t)))
	assert.Equal(t, int32(4), db.Stat().MaxConns())
	assert.GreaterOrEqual(t, db.Stat().TotalConns(), int32(1))
}

func TestPing_ConnectFailuresAreUnavailable(t *testing.T) {
	t.Parallel()
	// The server is up, but the database does not exist (3D000 during connect).
	dsn := pgtest.NewDatabase(t)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	u.Path = "/no_such_database_" + strings.ReplaceAll(newID(), "-", "_")
	cases := map[string]string{
		"closed port":      closedPortDSN(t),
		"missing database": u.String(),
	}
	for name, dsn := range cases {
		t.Run(name, func(t *testing.T) {
			db, err := storage.Open(testContext(t), storage.Config{DatabaseURL: dsn})
			require.NoError(t, err)
			defer db.Close()
			err = db.Ping(testContext(t))
			require.Error(t, err)
			assert.ErrorIs(t, err, storage.ErrUnavailable)
		})
	}
}

func TestPing_AfterCloseIsUnavailable(t *testing.T) {
	t.Parallel()
	db, err := storage.Open(testContext(t), storage.Config{DatabaseURL: closedPortDSN(t)})
	require.NoError(t, err)
	db.Close()
	err = db.Ping(testContext(t))
	require.Error(t, err)
	assert.ErrorIs(t, err, storage.ErrUnavailable)
}
