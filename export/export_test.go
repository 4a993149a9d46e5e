package export_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/wire"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub, priv
}

func entry(i int) *wire.AuditEntry {
	created := t0.Add(time.Duration(i) * time.Second)
	conf := 0.9
	return &wire.AuditEntry{
		Kind: wire.KindRemediation, AuditID: fmt.Sprintf("audit-%04d", i), ServiceAccount: "kubernaut-system/gateway-sa",
		OccurredAt: created, ReceivedAt: created.Add(time.Millisecond),
		Remediation: &wire.RemediationAudit{RemediationRequestID: fmt.Sprintf("rr-%d", i/3), AlertName: "HighMemoryUsage",
			Namespace: "production", Cluster: "us-west-2", Priority: "P1", ActionType: "restart-pod", Confidence: &conf,
			Reasoning: "memory grew linearly after the 14:02 deploy; restarting clears the leak until the fix ships",
			Status:    "completed", CreatedAt: &created},
	}
}

// build writes an export of n records signed with key.
func build(t testing.TB, n int, key ed25519.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := export.NewWriter(&buf)
	for i := range n {
		require.NoError(t, w.Record(entry(i)))
	}
	since := t0
	require.NoError(t, w.Finish(export.Trailer{Kinds: []wire.Kind{wire.KindRemediation}, Since: &since,
		Until: t0.Add(time.Hour), ExportedAt: t0.Add(2 * time.Hour), ExportedBy: "kubernaut-system/auditor"}, key))
	return buf.Bytes()
}

func lines(b []byte) []string { return strings.SplitAfter(string(b), "\n") }

func TestVerify_AGoodExport(t *testing.T) {
	pub, priv := newKey(t)
	file := build(t, 5, priv)
	tr, err := export.Verify(bytes.NewReader(file), pub)
	require.NoError(t, err)
	assert.Equal(t, export.Format, tr.Format)
	assert.EqualValues(t, 5, tr.Records)
	assert.Equal(t, "kubernaut-system/auditor", tr.ExportedBy)
	assert.True(t, t0.Equal(*tr.Since))
	id, err := export.KeyID(pub)
	require.NoError(t, err)
	assert.Equal(t, id, tr.KeyID)
	assert.Len(t, lines(file), 7, "5 records, the trailer, and the empty rest after the last newline")

	empty := build(t, 0, priv)
	tr, err = export.Verify(bytes.NewReader(empty), pub)
	require.NoError(t, err, "an export of no records is a trailer alone")
	assert.Zero(t, tr.Records)
}

func TestVerify_SaysExactlyWhatIsWrong(t *testing.T) {
	pub, priv := newKey(t)
	otherPub, otherPriv := newKey(t)
	file := build(t, 6, priv)
	l := lines(file) // l[0..5] records, l[6] trailer, l[7] ""
	join := func(parts ...string) []byte { return []byte(strings.Join(parts, "")) }
	swap := slices2(l)
	swap[1], swap[2] = swap[2], swap[1]

	for name, tc := range map[string]struct {
		file []byte
		pub  ed25519.PublicKey
		kind error
		says string
	}{
		"a changed byte in a record": {[]byte(strings.Replace(string(file), "us-west-2", "us-west-3", 1)), pub, export.ErrAltered, "signed digest"},
		"a record removed":           {join(append(slices2(l[:2]), l[3:]...)...), pub, export.ErrAltered, "counts 6 records, the file holds 5"},
		"a record added":             {join(append([]string{l[0]}, l...)...), pub, export.ErrAltered, "counts 6 records, the file holds 7"},
		"two records swapped":        {join(swap...), pub, export.ErrAltered, "swapped"},
		"cut at a line boundary":     {join(l[:4]...), pub, export.ErrTruncated, "no signed trailer after line 4 (4 records)"},
		"cut inside a record":        {file[:len(l[0])+10], pub, export.ErrTruncated, "line 2: the file ends inside this line"},
		"cut inside the trailer":     {file[:len(file)-20], pub, export.ErrTruncated, "line 7: the file ends inside this line"},
		"the trailer removed":        {join(l[:6]...), pub, export.ErrTruncated, "no signed trailer after line 6"},
		"empty":                      {nil, pub, export.ErrTruncated, "empty"},
		"a trailer field altered":    {[]byte(strings.Replace(string(file), "kubernaut-system/auditor", "kubernaut-system/someone", 1)), pub, export.ErrAltered, "trailer was altered"},
		"the record count altered":   {[]byte(strings.Replace(string(file), `"records":6`, `"records":5`, 1)), pub, export.ErrAltered, "trailer was altered"},
		"verified with another key":  {file, otherPub, export.ErrWrongKey, "signed with key"},
		"a line that is not JSON":    {join(l[0], "{\"kind\":\"remedi\n", l[2], l[3], l[4], l[5], l[6]), pub, export.ErrMalformed, "line 2: not a JSON object"},
		"data after the trailer":     {join(append(slices2(l), l[0])...), pub, export.ErrAltered, "line 8: data after the trailer"},
		"a failed export":            {join(l[0], `{"error":"service_unavailable","message":"export failed after 1 records; retry it","correlation_id":"req-1"}`+"\n"), pub, export.ErrTruncated, "export failed after 1 records"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := export.Verify(bytes.NewReader(tc.file), tc.pub)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.kind)
			assert.Contains(t, err.Error(), tc.says)
			var e *export.Error
			assert.True(t, errors.As(err, &e))
		})
	}

	// A whole export signed by another key, trailer and all, is that key's.
	forged := build(t, 6, otherPriv)
	_, err := export.Verify(bytes.NewReader(forged), pub)
	assert.ErrorIs(t, err, export.ErrWrongKey)
}

func slices2(s []string) []string { return append([]string(nil), s...) }

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path+".tmp", pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	require.NoError(t, os.Rename(path+".tmp", path))
}

func writeKey(t *testing.T, path string, priv ed25519.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	writePEM(t, path, "PRIVATE KEY", der)
}

func TestKeyFile_PicksUpARotatedKeyAndKeepsTheLastGoodOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "export.key")
	_, first := newKey(t)
	writeKey(t, path, first)
	kf, err := export.OpenKeyFile(path)
	require.NoError(t, err)
	k, err := kf.Key()
	require.NoError(t, err)
	assert.Equal(t, first, k)

	_, second := newKey(t)
	writeKey(t, path, second)
	k, err = kf.Key()
	require.NoError(t, err)
	assert.Equal(t, second, k, "the rotated key is used without a restart")
	assert.NoError(t, kf.LastError())

	require.NoError(t, os.WriteFile(path, []byte("-----BEGIN PRIVATE KEY-----\nhalf"), 0o600))
	k, err = kf.Key()
	require.NoError(t, err)
	assert.Equal(t, second, k, "a broken file keeps the last good key")
	assert.Error(t, kf.LastError())
	require.NoError(t, os.Remove(path))
	k, err = kf.Key()
	require.NoError(t, err)
	assert.Equal(t, second, k, "so does a file that is gone for a moment")

	_, err = export.OpenKeyFile(filepath.Join(t.TempDir(), "missing.key"))
	assert.Error(t, err)
	rsaLike := filepath.Join(t.TempDir(), "pub.pem")
	pub, _ := newKey(t)
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	writePEM(t, rsaLike, "PUBLIC KEY", der)
	_, err = export.OpenKeyFile(rsaLike)
	assert.ErrorContains(t, err, "PRIVATE KEY", "a public key is not a signing key")
}

func TestKeys_AsOpenSSLWritesThem(t *testing.T) {
	// testdata: `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`.
	kf, err := export.OpenKeyFile("testdata/openssl-ed25519.key")
	require.NoError(t, err)
	priv, err := kf.Key()
	require.NoError(t, err)
	pub, err := export.LoadPublicKey("testdata/openssl-ed25519.pub")
	require.NoError(t, err)
	_, err = export.Verify(bytes.NewReader(build(t, 3, priv)), pub)
	require.NoError(t, err)
	_, err = export.LoadPublicKey("testdata/openssl-ed25519.key")
	assert.ErrorContains(t, err, "PUBLIC KEY")
}

func BenchmarkWriter(b *testing.B) {
	_, priv := newKey(b)
	e := entry(1)
	var sink countWriter
	w := export.NewWriter(&sink)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Record(e); err != nil {
			b.Fatal(err)
		}
	}
	require.NoError(b, w.Finish(export.Trailer{Until: t0}, priv))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(sink.n)/float64(b.N), "bytes/line")
}

func BenchmarkVerify(b *testing.B) {
	pub, priv := newKey(b)
	file := build(b, 10000, priv)
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		if _, err := export.Verify(bytes.NewReader(file), pub); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "lines/s")
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
