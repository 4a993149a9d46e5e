package auth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/auth"
)

// replace writes content beside path and renames it over path, as an
// editor or a Secret update does: another inode.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

func TestTokenFile_ReadAgainWhenItChangesKeepingTheLastGoodTokens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokens.csv")
	replace(t, path, "token-a,system:serviceaccount:ns:a,uid-a\n")
	var reported []error
	f, err := auth.LoadTokenFile(path, func(err error) { reported = append(reported, err) })
	require.NoError(t, err)
	now := time.Now()
	auth.SetTokenFileClock(f, func() time.Time { return now })
	user := func(token string) string {
		id, err := f.Authenticate(ctx, token, testPeer)
		if err != nil {
			require.ErrorIs(t, err, auth.ErrUnauthenticated)
			return ""
		}
		return id.Username
	}
	assert.Equal(t, "system:serviceaccount:ns:a", user("token-a"))

	replace(t, path, "token-b,system:serviceaccount:ns:b,uid-b\n")
	assert.Equal(t, "system:serviceaccount:ns:a", user("token-a"), "looked at no more than once a second")
	now = now.Add(2 * time.Second)
	assert.Equal(t, "system:serviceaccount:ns:b", user("token-b"), "the new file")
	assert.Empty(t, user("token-a"), "the old token is gone")

	replace(t, path, "token-c,,uid-c\n") // an empty user: refused
	now = now.Add(2 * time.Second)
	assert.Equal(t, "system:serviceaccount:ns:b", user("token-b"), "a bad file keeps the tokens in use")
	require.Len(t, reported, 1)
	assert.ErrorContains(t, reported[0], "empty user name")
	now = now.Add(2 * time.Second)
	user("token-b")
	assert.Len(t, reported, 1, "reported once, not at every look")

	require.NoError(t, os.Remove(path))
	now = now.Add(2 * time.Second)
	assert.Equal(t, "system:serviceaccount:ns:b", user("token-b"), "a file gone keeps them too")
	require.Len(t, reported, 2)
	assert.True(t, errors.Is(reported[1], os.ErrNotExist))

	replace(t, path, "token-d,system:serviceaccount:ns:d,uid-d\n")
	now = now.Add(2 * time.Second)
	assert.Equal(t, "system:serviceaccount:ns:d", user("token-d"))
	assert.Equal(t, 1, f.Len())
}

func TestTokenFile_AMissingOrBadFileIsAnErrorAtStart(t *testing.T) {
	dir := t.TempDir()
	_, err := auth.LoadTokenFile(filepath.Join(dir, "none.csv"), nil)
	assert.ErrorIs(t, err, os.ErrNotExist)
	bad := filepath.Join(dir, "bad.csv")
	require.NoError(t, os.WriteFile(bad, []byte("only-a-token\n"), 0o600))
	_, err = auth.LoadTokenFile(bad, nil)
	assert.ErrorContains(t, err, "want 3 or 4 columns")
}
