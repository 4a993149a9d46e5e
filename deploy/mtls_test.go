package deploy_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// certManagerCertificate mirrors the fields of cert-manager's Certificate
// (cert-manager.io/v1) that deploy/examples/gateway-mtls sets, decoded
// strictly like cnpgCluster.
type certManagerCertificate struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		SecretName  string   `json:"secretName"`
		CommonName  string   `json:"commonName"`
		Usages      []string `json:"usages"`
		Duration    string   `json:"duration"`
		RenewBefore string   `json:"renewBefore"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// mountOf returns the container's mount of volume name.
func mountOf(t *testing.T, c corev1.Container, name string) corev1.VolumeMount {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == name {
			return m
		}
	}
	require.Failf(t, "no mount", "container %s does not mount %s", c.Name, name)
	return corev1.VolumeMount{}
}

func TestClientCertificateComponent_AgentPresentsTheMountedSecret(t *testing.T) {
	r := render(t, "examples/gateway-mtls")
	d := only[*appsv1.Deployment](t, r)
	spec := d.Spec.Template.Spec
	agent := findContainer(t, spec, agentImage)
	flags := settings(t, agent, agentEnvPrefix)

	u, err := url.Parse(flags["central-url"])
	require.NoError(t, err)
	assert.Equal(t, "https", u.Scheme, "a client certificate needs an https central")

	var secretName string
	for flag, key := range map[string]string{"client-cert-file": "tls.crt", "client-key-file": "tls.key"} {
		require.NotEmpty(t, flags[flag], "--%s", flag)
		v, rel := volumeFor(t, spec, agent, flags[flag])
		require.NotNil(t, v.Secret, "--%s must come from a Secret volume", flag)
		assert.Equal(t, key, rel, "--%s: the key cert-manager writes", flag)
		assert.True(t, mountOf(t, agent, v.Name).ReadOnly, "--%s: mounted read-only", flag)
		assert.Empty(t, v.Secret.Items, "the whole Secret, so the kubelet swaps both files at once")
		secretName = v.Secret.SecretName
	}
	assert.Equal(t, "datastorage-agent-client-tls", secretName)

	// cert-manager issues that Secret in the writer's namespace, for client authentication.
	cert := onlyUntyped[certManagerCertificate](t, r, "cert-manager.io/v1", "Certificate")
	assert.Equal(t, secretName, cert.Spec.SecretName)
	assert.Equal(t, d.Namespace, cert.Metadata.Namespace, "the Secret must be in the agent's namespace")
	assert.Contains(t, cert.Spec.Usages, "client auth")
	assert.NotEmpty(t, cert.Spec.IssuerRef.Name)
	assert.Less(t, mustDuration(t, cert.Spec.RenewBefore), mustDuration(t, cert.Spec.Duration))

	// Without the component the agent presents no certificate.
	plain := settings(t, findContainer(t, only[*appsv1.Deployment](t, render(t, "examples/gateway")).Spec.Template.Spec, agentImage), agentEnvPrefix)
	assert.NotContains(t, plain, "client-cert-file")
}

func TestClientCertificatesComponent_CentralRequiresThemFromAMountedCA(t *testing.T) {
	d := only[*appsv1.Deployment](t, render(t, "examples/central-with-client-certificates"))
	spec := d.Spec.Template.Spec
	c := findContainer(t, spec, centralImage)
	flags := settings(t, c, centralEnvPrefix)

	require.NotEmpty(t, flags["tls-cert-file"], "--client-ca-file needs TLS")
	require.NotEmpty(t, flags["client-ca-file"])
	v, rel := volumeFor(t, spec, c, flags["client-ca-file"])
	require.NotNil(t, v.ConfigMap, "--client-ca-file must come from a ConfigMap volume")
	assert.Equal(t, "datastorage-client-ca", v.ConfigMap.Name)
	assert.Equal(t, "ca.crt", rel)
	assert.True(t, mountOf(t, c, v.Name).ReadOnly)

	// The kubelet has no client certificate: the probes use the metrics port.
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		require.NotNil(t, p, "%s probe", name)
		require.NotNil(t, p.HTTPGet, "%s probe", name)
		assert.EqualValues(t, centralMetricsPort, portNumber(t, c, p.HTTPGet.Port), "%s probe port", name)
		assert.Contains(t, []corev1.URIScheme{"", corev1.URISchemeHTTP}, p.HTTPGet.Scheme, "%s probe: the metrics port is plain HTTP", name)
		assert.Equal(t, map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[name], p.HTTPGet.Path)
	}

	// Without the component the central asks for no client certificate.
	plain := settings(t, findContainer(t, only[*appsv1.Deployment](t, render(t, "central")).Spec.Template.Spec, centralImage), centralEnvPrefix)
	assert.NotContains(t, plain, "client-ca-file")
}
