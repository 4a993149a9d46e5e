package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/wire"
)

// exportKeys writes an Ed25519 key pair as PEM files, as openssl does.
func exportKeys(t *testing.T) (privatePath string, pub ed25519.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	privatePath = filepath.Join(t.TempDir(), "export.key")
	require.NoError(t, os.WriteFile(privatePath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	return privatePath, pub
}

func TestAgainstCentral_ReadsBackPagesTimelineRecordAndAVerifiedExport(t *testing.T) {
	keyFile, pub := exportKeys(t)
	allow := filepath.Join(t.TempDir(), "authz.yaml")
	require.NoError(t, os.WriteFile(allow, []byte(`serviceAccounts:
- {name: gateway-sa, namespace: kubernaut-system, actions: [write:remediation]}
- {name: aianalysis-controller-sa, namespace: kubernaut-system, actions: [write:remediation, read:audit, export:audit]}
`), 0o600))
	url, _ := startCentral(t, "--authz-file", allow, "--export-key-file", keyFile)
	gw := newClient(t, client.Config{BaseURL: url, Token: "t-gw"})
	ai := newClient(t, client.Config{BaseURL: url, Token: "t-ai"})
	ctx := context.Background()

	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	var written []string
	for i := range 25 {
		at := t0.Add(time.Duration(i) * time.Second)
		a := gatewayAudit()
		a.RemediationRequestID = fmt.Sprintf("rr-%d", i%5)
		a.CreatedAt = &at
		w, err := gw.WriteRemediationAudit(ctx, a)
		require.NoError(t, err)
		written = append(written, w.AuditID)
	}

	// Every record, newest first, across pages of 7.
	var got []string
	for e, err := range ai.Audits(ctx, client.Query{Kind: wire.KindRemediation, PageSize: 7}) {
		require.NoError(t, err)
		assert.Equal(t, "kubernaut-system/gateway-sa", e.ServiceAccount)
		got = append(got, e.AuditID)
	}
	require.Len(t, got, 25)
	for i := range got {
		assert.Equal(t, written[24-i], got[i])
	}
	pages := 0
	for _, err := range ai.AuditPages(ctx, client.Query{Kind: wire.KindRemediation, PageSize: 7,
		Filters: map[string]string{"remediationRequestID": "rr-3"}, Ascending: true}) {
		require.NoError(t, err)
		pages++
	}
	assert.Equal(t, 1, pages, "5 records fit one page of 7")

	// Stopping early stops fetching.
	n := 0
	for range ai.Audits(ctx, client.Query{Kind: wire.KindRemediation, PageSize: 2}) {
		if n++; n == 3 {
			break
		}
	}
	assert.Equal(t, 3, n)

	tl, err := ai.Timeline(ctx, "rr-2")
	require.NoError(t, err)
	require.Len(t, tl.Events, 5)
	assert.True(t, tl.Events[0].OccurredAt.Before(tl.Events[4].OccurredAt), "oldest first")

	one, err := ai.Audit(ctx, wire.KindRemediation, written[3], "")
	require.NoError(t, err)
	assert.Equal(t, written[3], one.AuditID)

	var file bytes.Buffer
	tr, err := ai.ExportVerified(ctx, client.ExportQuery{Kind: wire.KindRemediation}, &file, pub)
	require.NoError(t, err)
	assert.EqualValues(t, 25, tr.Records)
	again, err := export.Verify(bytes.NewReader(file.Bytes()), pub)
	require.NoError(t, err, "the file written is the file verified")
	assert.Equal(t, tr.Digest, again.Digest)

	// Errors are the server's, typed.
	_, err = gw.Timeline(ctx, "rr-2")
	var apiErr *client.APIError
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, 403, apiErr.StatusCode)
	for _, err := range ai.Audits(ctx, client.Query{Kind: wire.KindRemediation, Filters: map[string]string{"clustr": "x"}}) {
		require.True(t, errors.As(err, &apiErr), "%v", err)
		assert.Equal(t, 400, apiErr.StatusCode)
		assert.Equal(t, "clustr", apiErr.Body.Field)
	}
	_, err = gw.ExportVerified(ctx, client.ExportQuery{}, &bytes.Buffer{}, pub)
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, 403, apiErr.StatusCode)
}
