package auth_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"

	"github.com/kubernaut/datastorage/central/auth"
)

func TestNewClientset_FromKubeconfigReachesTokenReview(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:ns:gateway-sa", "uid-1")

	cs, err := auth.NewClientset(f.writeKubeconfig())
	require.NoError(t, err)
	tr, err := auth.NewTokenReview(auth.TokenReviewConfig{Client: cs, Audience: audience})
	require.NoError(t, err)

	id, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.NoError(t, err)
	assert.Equal(t, "ns/gateway-sa", id.Key())
	_, bearer := f.lastRequest()
	assert.Equal(t, "Bearer "+centralToken, bearer)
}

func TestNewClientset_RaisesClientSideRateLimit(t *testing.T) {
	f := newFakeAPI(t)
	cs, err := auth.NewClientset(f.writeKubeconfig())
	require.NoError(t, err)
	rl := cs.(*kubernetes.Clientset).AuthenticationV1().RESTClient().GetRateLimiter()
	require.NotNil(t, rl)
	assert.InDelta(t, float64(auth.ClientQPS), float64(rl.QPS()), 0.001)
	assert.Greater(t, auth.ClientQPS, 5, "above client-go's default of 5")
}

func TestNewClientset_InClusterFailsOutsideACluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	_, err := auth.NewClientset("")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "kubernetes client config")
}

func TestNewClientset_MissingKubeconfigIsAnError(t *testing.T) {
	_, err := auth.NewClientset(t.TempDir() + "/no-such-kubeconfig")
	require.Error(t, err)
}

func TestTokenReview_SpeaksProtobufAndJSON(t *testing.T) {
	for name, contentType := range map[string]string{
		"client-go default": "",
		"json":              "application/json",
		"protobuf":          "application/vnd.kubernetes.protobuf",
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.addUser(gatewayToken, "system:serviceaccount:ns:gateway-sa", "uid-1")
			cfg := f.restConfig()
			cfg.ContentType = contentType
			tr, err := auth.NewTokenReview(auth.TokenReviewConfig{Client: f.clientsetFor(cfg), Audience: audience})
			require.NoError(t, err)

			id, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
			require.NoError(t, err)
			assert.Equal(t, "ns/gateway-sa", id.Key())
			f.mu.Lock()
			defer f.mu.Unlock()
			require.Len(t, f.contentTypes, 1)
			if contentType != "" {
				assert.Equal(t, contentType, f.contentTypes[0])
			}
		})
	}
}
