package patroni_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/patroni"
)

// TestCluster_KilledPrimaryIsReplacedByItsStandbyAndRejoins is the
// cluster's whole life: two nodes, one leading with the other as its
// synchronous standby; the primary killed (Patroni and postmaster, SIGKILL);
// the standby promoted once the leader key expires; the dead node started
// again, rejoining as the new primary's synchronous standby; a row committed
// before the failover still there; and nothing left behind by Close.
func TestCluster_KilledPrimaryIsReplacedByItsStandbyAndRejoins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := patroni.Start(ctx, patroni.Config{})
	require.NoError(t, err)
	dir := c.Dir
	defer func() {
		c.Close()
		assert.NoDirExists(t, dir)
	}()

	old, err := c.Primary(ctx)
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)`)
	require.NoError(t, err)
	conn.Close(ctx)

	killed := time.Now()
	require.NoError(t, c.Kill(old))
	var promoted *patroni.Node
	require.Eventually(t, func() bool {
		promoted, err = c.Primary(ctx)
		return err == nil && promoted != old
	}, 60*time.Second, 100*time.Millisecond, "the standby is promoted")
	t.Logf("promoted %s %s after the kill", promoted.Name, time.Since(killed).Round(time.Millisecond))

	require.NoError(t, c.StartNode(old))
	require.NoError(t, c.WaitHealthy(ctx))
	t.Logf("healthy again %s after the kill", time.Since(killed).Round(time.Millisecond))
	ms, err := c.Members(ctx)
	require.NoError(t, err)
	for _, m := range ms {
		if m.Name == old.Name {
			assert.Equal(t, "sync_standby", m.Role, "the old primary rejoined as the synchronous standby")
		}
	}

	conn, err = pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v int
	require.NoError(t, conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v))
	assert.Equal(t, 42, v)
	_, err = conn.Exec(ctx, `INSERT INTO kept VALUES (43)`)
	require.NoError(t, err, "writes go to the new primary")
}
