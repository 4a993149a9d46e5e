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

// exportFiles writes a signed export of three records, plain and gzip, and
// the public keys that do and do not match.
func exportFiles(t *testing.T) (plain, gz, pub, otherPub string) {
	t.Helper()
	dir := t.TempDir()
	pubKey, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	other, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	var buf bytes.Buffer
	w := export.NewWriter(&buf)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		require.NoError(t, w.Record(&wire.AuditEntry{Kind: wire.KindWorkflow, AuditID: "audit-" + string(rune('a'+i)),
			ServiceAccount: "ns/wf", OccurredAt: at, ReceivedAt: at,
			Workflow: &wire.WorkflowAudit{WorkflowID: "wf-1", StepName: "drain", StepStatus: "completed"}}))
	}
	require.NoError(t, w.Finish(export.Trailer{Kinds: []wire.Kind{wire.KindWorkflow}, Until: at.Add(time.Hour),
		ExportedAt: at.Add(2 * time.Hour), ExportedBy: "ns/auditor"}, priv))
	plain = filepath.Join(dir, "audit.ndjson")
	require.NoError(t, os.WriteFile(plain, buf.Bytes(), 0o600))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(buf.Bytes())
	require.NoError(t, zw.Close())
	gz = filepath.Join(dir, "audit.ndjson.gz")
	require.NoError(t, os.WriteFile(gz, z.Bytes(), 0o600))
	writePub := func(name string, k ed25519.PublicKey) string {
		der, err := x509.MarshalPKIXPublicKey(k)
		require.NoError(t, err)
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
		return p
	}
	return plain, gz, writePub("export.pub", pubKey), writePub("other.pub", other)
}

func TestVerifyExport_ExitCodesAndMessages(t *testing.T) {
	plain, gz, pub, otherPub := exportFiles(t)
	data, err := os.ReadFile(plain)
	require.NoError(t, err)
	dir := filepath.Dir(plain)
	tampered := filepath.Join(dir, "tampered.ndjson")
	require.NoError(t, os.WriteFile(tampered, bytes.Replace(data, []byte(`"drain"`), []byte(`"drainx"`), 1), 0o600))
	cut := filepath.Join(dir, "cut.ndjson.gz")
	gzData, err := os.ReadFile(gz)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cut, gzData[:len(gzData)/2], 0o600))

	for name, tc := range map[string]struct {
		args []string
		code int
		out  string
	}{
		"good":                   {[]string{plain, "--public-key", pub}, 0, "verified: 3 records (workflow) from the first record until 2026-11-01T01:00:00Z, exported by ns/auditor"},
		"flags first":            {[]string{"--public-key", pub, plain}, 0, "verified: 3 records"},
		"gzip":                   {[]string{gz, "--public-key", pub}, 0, "verified: 3 records"},
		"altered line":           {[]string{tampered, "--public-key", pub}, 1, "export: altered: the record lines do not match the signed digest"},
		"wrong key":              {[]string{plain, "--public-key", otherPub}, 1, "export: signed by another key"},
		"truncated gzip":         {[]string{cut, "--public-key", pub}, 1, "export: truncated"},
		"missing file":           {[]string{filepath.Join(dir, "none"), "--public-key", pub}, 1, "no such file"},
		"no key":                 {[]string{plain}, 2, "usage: central verify-export"},
		"no file":                {[]string{"--public-key", pub}, 2, "usage: central verify-export"},
		"a private key as a key": {[]string{plain, "--public-key", plain}, 2, "PUBLIC KEY"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := verifyExport(tc.args, strings.NewReader(""), &out, &errOut)
			assert.Equal(t, tc.code, code, errOut.String())
			assert.Contains(t, out.String()+errOut.String(), tc.out)
		})
	}

	var out bytes.Buffer
	assert.Equal(t, 0, verifyExport([]string{"-", "--public-key", pub}, bytes.NewReader(data), &out, &out), out.String())
}

func TestVerifyExport_TheBinaryExitsWithItsCode(t *testing.T) {
	plain, _, pub, otherPub := exportFiles(t)
	bin := harness.BuildOnce(t).Central
	out, err := exec.Command(bin, "verify-export", plain, "--public-key", pub).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "verified: 3 records")
	out, err = exec.Command(bin, "verify-export", plain, "--public-key", otherPub).CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), string(out))
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, string(out), "signed by another key")
}
