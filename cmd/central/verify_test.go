package main

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
	"github.com/kubernaut/datastorage/wire"
)

// verifyRun runs the built `central verify-export` with args and stdin and
// returns its exit status and output.
func verifyRun(t *testing.T, stdin []byte, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	return runCentral(t, stdin, append([]string{"verify-export"}, args...)...)
}

// runCentral runs the built central with args and stdin and returns its
// exit status and output.
func runCentral(t *testing.T, stdin []byte, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(harness.BuildOnce(t).Central, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if exit, ok := errors.AsType[*exec.ExitError](err); ok {
		return exit.ExitCode(), out.String(), errOut.String()
	}
	require.NoError(t, err)
	return 0, out.String(), errOut.String()
}

// exportFiles writes, in a temporary directory, an export of three
// remediation records signed by a new key, the same export gzipped, and
// the key's public key as openssl writes it.
type exportFiles struct {
	dir, plain, gzipped, public string
	data                        []byte
	keyID                       string
}

func newExportFiles(t *testing.T) exportFiles {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	f := exportFiles{dir: t.TempDir(), keyID: export.KeyID(pub)}
	t0 := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	w := export.NewWriter(&b)
	for i := range 3 {
		at := t0.Add(time.Duration(i) * time.Minute)
		require.NoError(t, w.Record(&wire.AuditEntry{Kind: wire.KindRemediation, AuditID: "audit-" + string(rune('a'+i)),
			ServiceAccount: "kubernaut-system/gateway-sa", OccurredAt: at, ReceivedAt: at,
			Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-1", AlertName: "HighMemoryUsage"}}))
	}
	require.NoError(t, w.Finish(export.Trailer{Kinds: []wire.Kind{wire.KindRemediation, wire.KindWorkflow},
		Since: &t0, Until: t0.Add(time.Hour), ExportedAt: t0.Add(2 * time.Hour), ExportedBy: "kubernaut-system/auditor"}, key))
	f.data = b.Bytes()
	f.plain = f.write(t, "export.ndjson", f.data)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, err = zw.Write(f.data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	f.gzipped = f.write(t, "export.ndjson.gz", z.Bytes())
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	f.public = f.write(t, "export-key.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return f
}

func (f exportFiles) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(f.dir, name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

func TestVerifyExport_AValidFileExitsZeroWithASummary(t *testing.T) {
	f := newExportFiles(t)
	summary := "valid: 3 records (remediation, workflow) with occurredAt from 2026-11-03T09:00:00Z to before 2026-11-03T10:00:00Z," +
		" exported at 2026-11-03T11:00:00Z by kubernaut-system/auditor, signed by key " + f.keyID + "\n"

	status, stdout, stderr := verifyRun(t, nil, f.plain, "--public-key", f.public)
	require.Equal(t, 0, status, stderr)
	assert.Equal(t, f.plain+": "+summary, stdout)
	assert.Empty(t, stderr)

	// gzip, told by its magic bytes, whatever the name; flags before FILE.
	renamed := f.write(t, "export-without-suffix", must(os.ReadFile(f.gzipped)))
	status, stdout, stderr = verifyRun(t, nil, "--public-key", f.public, renamed)
	require.Equal(t, 0, status, stderr)
	assert.Equal(t, renamed+": "+summary, stdout)

	status, stdout, stderr = verifyRun(t, f.data, "-", "--public-key="+f.public)
	require.Equal(t, 0, status, stderr)
	assert.Equal(t, "standard input: "+summary, stdout)
}

func TestVerifyExport_AnInvalidFileExitsOneSayingWhatIsWrong(t *testing.T) {
	f := newExportFiles(t)
	ls := strings.SplitAfter(string(f.data), "\n")
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(otherKey.Public())
	require.NoError(t, err)
	otherPublic := f.write(t, "other.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	for _, tc := range []struct {
		name, file, public, want string
	}{
		{"an altered record", f.write(t, "altered", []byte(strings.Replace(string(f.data), "HighMemoryUsage", "HighMemoryUsagf", 1))), f.public,
			"central: verify-export: " + filepath.Join(f.dir, "altered") + ": record lines altered, inserted, removed or reordered: their digest is sha256:"},
		{"a removed line", f.write(t, "removed", []byte(ls[0]+ls[2]+ls[3])), f.public,
			"the trailer counts 3 records, the file has 2: record lines were removed or inserted"},
		{"truncated", f.write(t, "truncated", []byte(ls[0]+ls[1])), f.public, "truncated after line 2: no trailer"},
		{"cut mid-line", f.write(t, "cut", f.data[:len(ls[0])+10]), f.public, "truncated: line 2 is cut short (no newline) and no trailer follows"},
		{"not JSON", f.write(t, "garbage", []byte("hello\n")), f.public, "line 1 is not JSON"},
		{"the wrong key", f.plain, otherPublic,
			"the trailer (line 4) names signing key " + f.keyID + "; the public key given is " + export.KeyID(otherKey.Public().(ed25519.PublicKey))},
		{"a missing file", filepath.Join(f.dir, "missing"), f.public, "no such file or directory"},
		{"a private key given as the public key", f.plain, f.write(t, "private.pem", privatePEM(t, otherKey)),
			"a private key: give its public key (openssl pkey -in KEY -pubout)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, stdout, stderr := verifyRun(t, nil, tc.file, "--public-key", tc.public)
			assert.Equal(t, 1, status)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tc.want)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
		})
	}
}

func privatePEM(t *testing.T, key ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestVerifyExport_UsageErrorsExitTwo(t *testing.T) {
	f := newExportFiles(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing", nil, "want one FILE, got 0"},
		{"no public key", []string{f.plain}, "--public-key is required"},
		{"two files", []string{f.plain, f.gzipped, "--public-key", f.public}, "want one FILE, got 2"},
		{"an unknown flag", []string{f.plain, "--key", f.public}, "flag provided but not defined: -key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, stdout, stderr := verifyRun(t, nil, tc.args...)
			assert.Equal(t, 2, status)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tc.want)
		})
	}
	t.Run("help", func(t *testing.T) {
		status, _, stderr := verifyRun(t, nil, "--help")
		assert.Equal(t, 0, status)
		assert.Contains(t, stderr, "Usage: central verify-export FILE --public-key KEY")
		assert.Contains(t, stderr, "-public-key")
	})
}
