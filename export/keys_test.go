package export_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/wire"
)

// The keys in testdata were made by OpenSSL 3.0:
//
//	openssl genpkey -algorithm ed25519 -out openssl-ed25519.pem
//	openssl pkey -in openssl-ed25519.pem -pubout -out openssl-ed25519.pub.pem
//	openssl pkey -pubin -in openssl-ed25519.pub.pem -outform DER | sha256sum | cut -c1-16   # b32b50589c0446f5
func TestKeys_ReadWhatOpenSSLWrites(t *testing.T) {
	kf, err := export.OpenKeyFile("testdata/openssl-ed25519.pem")
	require.NoError(t, err)
	key, err := kf.Key()
	require.NoError(t, err)
	pub, err := export.LoadPublicKey("testdata/openssl-ed25519.pub.pem")
	require.NoError(t, err)
	assert.Equal(t, pub, pubOf(key), "the public key file is the private key's")
	assert.Equal(t, "b32b50589c0446f5", export.KeyID(pub), "as openssl and sha256sum compute it")
}

func TestKeys_ReadWhatGoWritesAsOpenSSLDoes(t *testing.T) {
	key := newKey(t)
	private, public := writePEM(t, t.TempDir(), "export", key)
	kf, err := export.OpenKeyFile(private)
	require.NoError(t, err)
	got, err := kf.Key()
	require.NoError(t, err)
	assert.Equal(t, key, got)
	pub, err := export.LoadPublicKey(public)
	require.NoError(t, err)
	assert.Equal(t, pubOf(key), pub)
}

// The format frozen at its first version: a file the Writer wrote with the
// OpenSSL key verifies, and the Writer still writes it byte for byte (JSON
// encoding, trailer layout, signature: Ed25519 is deterministic).
func TestFormat_V1FileIsStillWhatTheWriterWrites(t *testing.T) {
	frozen, err := os.ReadFile("testdata/export-v1.ndjson")
	require.NoError(t, err)
	pub, err := export.LoadPublicKey("testdata/openssl-ed25519.pub.pem")
	require.NoError(t, err)
	tr, err := export.Verify(bytes.NewReader(frozen), pub)
	require.NoError(t, err)
	assert.Equal(t, int64(4), tr.Records)

	kf, err := export.OpenKeyFile("testdata/openssl-ed25519.pem")
	require.NoError(t, err)
	key, err := kf.Key()
	require.NoError(t, err)
	var again bytes.Buffer
	w := export.NewWriter(&again)
	for _, line := range lines(frozen)[:4] {
		var e wire.AuditEntry
		require.NoError(t, json.Unmarshal(line, &e))
		require.NoError(t, w.Record(&e))
	}
	require.NoError(t, w.Finish(export.Trailer{Kinds: tr.Kinds, Since: tr.Since, Until: tr.Until,
		ExportedAt: tr.ExportedAt, ExportedBy: tr.ExportedBy}, key))
	assert.Equal(t, string(frozen), again.String())
}

func TestKeyFile_PicksUpARotatedKey(t *testing.T) {
	dir := t.TempDir()
	first, second, third := newKey(t), newKey(t), newKey(t)
	path, _ := writePEM(t, dir, "export", first)
	kf, err := export.OpenKeyFile(path)
	require.NoError(t, err)
	got, err := kf.Key()
	require.NoError(t, err)
	require.Equal(t, first, got)

	// The Kubernetes way: a new file renamed over the old one.
	next, _ := writePEM(t, dir, "next", second)
	require.NoError(t, os.Rename(next, path))
	got, err = kf.Key()
	require.NoError(t, err)
	assert.Equal(t, second, got)

	// Rewritten in place, same size, the modification time set back: the
	// inode is the same, so only a changed mtime or size is seen; with
	// both equal the old key stays (one stat per Key, no read).
	fi, err := os.Stat(path)
	require.NoError(t, err)
	rewritten, _ := writePEM(t, t.TempDir(), "x", third)
	b, err := os.ReadFile(rewritten)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
	require.NoError(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
	got, _ = kf.Key()
	assert.Equal(t, second, got, "nothing the stat sees changed")
	later := fi.ModTime().Add(time.Second)
	require.NoError(t, os.Chtimes(path, later, later))
	got, _ = kf.Key()
	assert.Equal(t, third, got)
	assert.NoError(t, kf.LastError())
}

func TestKeyFile_KeepsTheLastGoodKeyWhenTheNewContentIsInvalid(t *testing.T) {
	dir := t.TempDir()
	first, second := newKey(t), newKey(t)
	path, public := writePEM(t, dir, "export", first)
	kf, err := export.OpenKeyFile(path)
	require.NoError(t, err)

	for name, content := range map[string][]byte{
		"half written": []byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2Vw"),
		"empty":        nil,
		"a public key": must(os.ReadFile(public)),
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, content, 0o600))
			bump(t, path)
			got, err := kf.Key()
			require.NoError(t, err, "signing goes on with the last good key")
			assert.Equal(t, first, got)
			assert.ErrorContains(t, kf.LastError(), path)
		})
	}
	t.Run("removed", func(t *testing.T) {
		require.NoError(t, os.Remove(path))
		got, err := kf.Key()
		require.NoError(t, err)
		assert.Equal(t, first, got)
		assert.ErrorIs(t, kf.LastError(), os.ErrNotExist)
	})
	t.Run("a valid key again", func(t *testing.T) {
		next, _ := writePEM(t, dir, "next", second)
		require.NoError(t, os.Rename(next, path))
		got, err := kf.Key()
		require.NoError(t, err)
		assert.Equal(t, second, got)
		assert.NoError(t, kf.LastError())
	})
}

// bump moves path's modification time forward, as a later write would on a
// file system with coarse timestamps.
func bump(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	later := fi.ModTime().Add(time.Second)
	require.NoError(t, os.Chtimes(path, later, later))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestKeys_SayWhatTheFileIsInstead(t *testing.T) {
	dir := t.TempDir()
	private, public := writePEM(t, dir, "ed", newKey(t))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecPrivate := filepath.Join(dir, "ec.pem")
	require.NoError(t, os.WriteFile(ecPrivate, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(ec))}), 0o600))
	ecPublic := filepath.Join(dir, "ec.pub.pem")
	require.NoError(t, os.WriteFile(ecPublic, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&ec.PublicKey))}), 0o600))
	encrypted := filepath.Join(dir, "enc.pem")
	require.NoError(t, os.WriteFile(encrypted, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), 0o600))
	garbage := filepath.Join(dir, "garbage")
	require.NoError(t, os.WriteFile(garbage, []byte("not a key"), 0o600))
	huge := filepath.Join(dir, "huge")
	require.NoError(t, os.WriteFile(huge, make([]byte, 1<<20), 0o600))

	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "no such file"},
		{public, "a public key: the signing key must be the private key"},
		{ecPrivate, "*ecdsa.PrivateKey, not an Ed25519 key"},
		{encrypted, "an encrypted private key"},
		{garbage, "no PEM block: want -----BEGIN PRIVATE KEY-----"},
		{huge, "not a PEM key"},
	} {
		_, err := export.OpenKeyFile(tc.path)
		assert.ErrorContains(t, err, tc.want, tc.path)
	}
	for _, tc := range []struct{ path, want string }{
		{private, "a private key: give its public key (openssl pkey -in KEY -pubout)"},
		{ecPublic, "*ecdsa.PublicKey, not an Ed25519 key"},
		{garbage, "no PEM block: want -----BEGIN PUBLIC KEY-----"},
	} {
		_, err := export.LoadPublicKey(tc.path)
		assert.ErrorContains(t, err, tc.want, tc.path)
	}
}

func TestKeyFile_NotOpened(t *testing.T) {
	_, err := new(export.KeyFile).Key()
	require.ErrorContains(t, err, "OpenKeyFile")
}

// Exports sign concurrently while the key is rotated (run with -race).
func TestKeyFile_ConcurrentKeyDuringRotation(t *testing.T) {
	dir := t.TempDir()
	keys := []ed25519.PrivateKey{newKey(t), newKey(t), newKey(t)}
	path, _ := writePEM(t, dir, "export", keys[0])
	kf, err := export.OpenKeyFile(path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				key, err := kf.Key()
				assert.NoError(t, err)
				assert.Contains(t, keys, key)
			}
		})
	}
	for i := range 20 {
		next, _ := writePEM(t, dir, "next", keys[i%3])
		require.NoError(t, os.Rename(next, path))
	}
	wg.Wait()
}
