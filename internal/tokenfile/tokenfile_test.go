package tokenfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tokenfile"
)

func TestSource_RereadsARotatedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(path, []byte("first\n"), 0o600))
	s := tokenfile.New(path)
	tok, err := s.Token()
	require.NoError(t, err)
	assert.Equal(t, "first", tok)

	// The kubelet's way: a new file renamed over the old one.
	next := filepath.Join(dir, "token.new")
	require.NoError(t, os.WriteFile(next, []byte("second-token"), 0o600))
	require.NoError(t, os.Rename(next, path))
	tok, err = s.Token()
	require.NoError(t, err)
	assert.Equal(t, "second-token", tok)
}

func TestSource_InvalidateRereadsAnUnchangedLookingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte("aaaa"), 0o600))
	s := tokenfile.New(path)
	_, err := s.Token()
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	// Same size, same modification time: only Invalidate notices.
	require.NoError(t, os.WriteFile(path, []byte("bbbb"), 0o600))
	require.NoError(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
	tok, err := s.Token()
	require.NoError(t, err)
	assert.Equal(t, "aaaa", tok)
	s.Invalidate()
	tok, err = s.Token()
	require.NoError(t, err)
	assert.Equal(t, "bbbb", tok)
}

func TestSource_EmptyOrMissingFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	_, err := tokenfile.New(filepath.Join(dir, "missing")).Token()
	require.Error(t, err)
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte(" \n"), 0o600))
	_, err = tokenfile.New(empty).Token()
	require.ErrorContains(t, err, "empty")
}
