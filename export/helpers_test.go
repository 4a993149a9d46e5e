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
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/wire"
)

// t0 is the start of the test exports' range; records are one second apart.
var t0 = time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return key
}

func pubOf(key ed25519.PrivateKey) ed25519.PublicKey { return key.Public().(ed25519.PublicKey) }

func ptr[T any](v T) *T { return &v }

// entries returns rem remediation records, then wf workflow records, in
// the order an export carries them: each kind ascending by occurredAt.
// Each line is about 400 bytes, as a typical audit.
func entries(rem, wf int) []wire.AuditEntry {
	var es []wire.AuditEntry
	for i := range rem {
		at := t0.Add(time.Duration(i) * time.Second)
		es = append(es, wire.AuditEntry{
			Kind: wire.KindRemediation, AuditID: fmt.Sprintf("audit-0193a1b2-%04d-7c3d-8e4f-5a6b7c8d9e0f", i),
			ServiceAccount: "kubernaut-system/gateway-sa", OccurredAt: at, ReceivedAt: at.Add(40 * time.Millisecond),
			Remediation: &wire.RemediationAudit{
				RemediationRequestID: fmt.Sprintf("rr-%d", i/3), AlertName: "HighMemoryUsage", Namespace: "payments",
				Cluster: "prod-eu-1", Priority: "P1", ActionType: "scale_deployment", Confidence: ptr(0.87),
				Reasoning:      "memory at 94% of the limit for 10 minutes; scaling out relieves it",
				TargetResource: "deployment/payments-api", Status: "completed", DurationNanos: ptr(int64(1500 * time.Millisecond)),
				CreatedAt: &at,
			},
		})
	}
	for i := range wf {
		at := t0.Add(time.Duration(i) * time.Second)
		es = append(es, wire.AuditEntry{
			Kind: wire.KindWorkflow, AuditID: fmt.Sprintf("audit-0193a1b2-%04d-7c3d-8e4f-000000000001", i),
			ServiceAccount: "kubernaut-system/workflow-sa", OccurredAt: at, ReceivedAt: at,
			Workflow: &wire.WorkflowAudit{WorkflowID: "wf-7", StepName: fmt.Sprintf("step-%d", i), StepStatus: "succeeded",
				DurationNanos: ptr(int64(time.Second)), ExecutedAt: &at},
		})
	}
	return es
}

// trailer is what an export handler gives Finish: both kinds, a day's range.
func trailer() export.Trailer {
	return export.Trailer{
		Kinds: []wire.Kind{wire.KindRemediation, wire.KindWorkflow},
		Since: ptr(t0), Until: t0.Add(24 * time.Hour), ExportedAt: t0.Add(25 * time.Hour),
		ExportedBy: "kubernaut-system/auditor",
	}
}

// write makes an export of es with t, signed by key.
func write(t testing.TB, es []wire.AuditEntry, tr export.Trailer, key ed25519.PrivateKey) []byte {
	t.Helper()
	var b bytes.Buffer
	w := export.NewWriter(&b)
	for i := range es {
		require.NoError(t, w.Record(&es[i]))
	}
	require.NoError(t, w.Finish(tr, key))
	return b.Bytes()
}

// lines splits an export into its lines, each with its newline.
func lines(b []byte) [][]byte {
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

// verifyFails verifies data and checks the error: its kind, its line, and
// that its text contains each of texts.
func verifyFails(t *testing.T, data []byte, pub ed25519.PublicKey, kind error, line int64, texts ...string) *export.VerifyError {
	t.Helper()
	tr, err := export.Verify(bytes.NewReader(data), pub)
	require.Error(t, err)
	require.Nil(t, tr)
	require.ErrorIs(t, err, kind)
	verr, ok := errors.AsType[*export.VerifyError](err)
	require.True(t, ok, "%T: %v", err, err)
	require.Equal(t, line, verr.Line, "line of %q", err)
	for _, s := range texts {
		require.Contains(t, err.Error(), s)
	}
	return verr
}

// writePEM writes key as openssl does: the private key as PKCS#8 "PRIVATE
// KEY", the public key as PKIX "PUBLIC KEY". It returns both paths.
func writePEM(t testing.TB, dir, name string, key ed25519.PrivateKey) (private, public string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	private = filepath.Join(dir, name+".pem")
	require.NoError(t, os.WriteFile(private, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	der, err = x509.MarshalPKIXPublicKey(pubOf(key))
	require.NoError(t, err)
	public = filepath.Join(dir, name+".pub.pem")
	require.NoError(t, os.WriteFile(public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	return private, public
}
