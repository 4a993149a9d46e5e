package deploy_test

import (
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/kubernaut/datastorage/agent/forward"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/central/ratelimit"
	"github.com/kubernaut/datastorage/images"
	"github.com/kubernaut/datastorage/wire"
)

// The central's subcommands; its flags and the agent's are read from the
// programs' own --help (helpFlags), so a renamed flag fails this test.
var centralSubcommands = []string{"serve", "migrate", "maintain"}

var helpFlagsCache sync.Map // package path → []string

// helpFlags builds the command in pkg (relative to this directory) and
// returns the flag names its --help lists.
func helpFlags(t *testing.T, pkg string) []string {
	t.Helper()
	if v, ok := helpFlagsCache.Load(pkg); ok {
		return v.([]string)
	}
	bin := filepath.Join(t.TempDir(), "prog")
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	require.NoError(t, err, "go build %s: %s", pkg, out)
	// --help exits non-zero or zero depending on the program; only its text matters.
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllSubmatch(help, -1) {
		names = append(names, string(m[1]))
	}
	require.NotEmpty(t, names, "no flags in %s --help:\n%s", pkg, help)
	helpFlagsCache.Store(pkg, names)
	return names
}

// The images `make images` builds (package images): the manifests name
// exactly these, tagged images.Version.
var (
	centralImage = images.Central.Repository()
	agentImage   = images.Agent.Repository()
)

// The programs' defaults and names the manifests must agree with.
const (
	centralAPIPort     = 8080
	centralMetricsPort = 9090
	agentAPIPort       = 18080
	agentMetricsPort   = 19090
	defaultAudience    = "datastorage"
	centralNamespace   = "kubernaut-system"
	centralService     = "datastorage-central"
)

// kustomizations are every buildable kustomization under deploy/;
// components are included by at least one of them.
var (
	kustomizations = []string{
		"central",
		"central/base",
		"central/overlays/monitoring",
		"database/cloudnative-pg",
		"examples/central-with-cloudnative-pg",
		"examples/central-with-migration",
		"examples/central-with-client-certificates",
		"examples/central-with-sar",
		"examples/gateway",
		"examples/gateway-mtls",
		"examples/gateway-statefulset",
		"grafana",
		"helm/datastorage/rules",      // the alerting rules, one copy for the chart and overlays/monitoring
		"helm/datastorage/dashboards", // the Grafana dashboard, one copy for the chart and grafana
		"helm/datastorage/rbac",       // the ClusterRoles of --authz=sar, one copy for the chart and authz-sar
	}
	components = map[string]string{ // component → a kustomization including it
		"central/components/migration":           "examples/central-with-migration",
		"central/components/maintenance":         "examples/central-with-migration",
		"central/components/authz-sar":           "examples/central-with-sar",
		"central/components/client-certificates": "examples/central-with-client-certificates",
		"sidecar":                                "examples/gateway",
		"sidecar/persistent-buffer":              "examples/gateway-statefulset",
		"sidecar/client-certificate":             "examples/gateway-mtls",
	}
)

// rendered is one kustomization's output, decoded.
type rendered struct {
	dir     string
	typed   []runtime.Object
	untyped []*unstructured.Unstructured // kinds client-go's scheme lacks
}

// untypedGroups are the API groups of the custom resources the manifests use
// (the Prometheus Operator's, CloudNativePG's, cert-manager's): decoded strictly
// as YAML here, and checked against their own fields by the tests about them.
var untypedGroups = []string{"monitoring.coreos.com", "postgresql.cnpg.io", "cert-manager.io"}

func render(t *testing.T, dir string) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize build %s", dir)
	out := rendered{dir: dir}
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		require.NoError(t, err)
		out.add(t, r.CurId().String(), b)
	}
	return out
}

var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// add decodes one object's YAML strictly: with client-go's scheme, or as
// unstructured YAML for the custom resources' groups.
func (r *rendered) add(t *testing.T, what string, b []byte) {
	t.Helper()
	var head struct{ APIVersion string }
	require.NoError(t, yaml.Unmarshal(b, &head), "%s: %s", r.dir, what)
	group, _, _ := strings.Cut(head.APIVersion, "/")
	if slices.Contains(untypedGroups, group) {
		u := &unstructured.Unstructured{}
		require.NoError(t, yaml.UnmarshalStrict(b, &u.Object), "%s: %s", r.dir, what)
		r.untyped = append(r.untyped, u)
		return
	}
	obj, _, err := strictDecoder.Decode(b, nil, nil)
	require.NoError(t, err, "%s: strict decode of %s", r.dir, what)
	r.typed = append(r.typed, obj)
}

func renderAll(t *testing.T) map[string]rendered {
	t.Helper()
	all := make(map[string]rendered, len(kustomizations))
	for _, dir := range kustomizations {
		all[dir] = render(t, dir)
	}
	return all
}

func only[T runtime.Object](t *testing.T, r rendered) T {
	t.Helper()
	list := all[T](r)
	require.Len(t, list, 1, "%s: want exactly one %T", r.dir, *new(T))
	return list[0]
}

func all[T runtime.Object](r rendered) []T {
	var out []T
	for _, o := range r.typed {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// workload is a pod template with where it came from.
type workload struct {
	name string
	spec corev1.PodSpec
}

func workloads(r rendered) []workload {
	var out []workload
	for _, o := range r.typed {
		switch v := o.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{r.dir + " Deployment/" + v.Name, v.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			out = append(out, workload{r.dir + " StatefulSet/" + v.Name, v.Spec.Template.Spec})
		case *batchv1.Job:
			out = append(out, workload{r.dir + " Job/" + v.Name, v.Spec.Template.Spec})
		case *batchv1.CronJob:
			out = append(out, workload{r.dir + " CronJob/" + v.Name, v.Spec.JobTemplate.Spec.Template.Spec})
		}
	}
	return out
}

func allContainers(spec corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

func findContainer(t *testing.T, spec corev1.PodSpec, image string) corev1.Container {
	t.Helper()
	for _, c := range allContainers(spec) {
		if imageName(c.Image) == image {
			return c
		}
	}
	require.Failf(t, "container not found", "no container runs %s", image)
	return corev1.Container{}
}

func imageName(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// args splits a container's arguments into an optional subcommand and flags.
func parseArgs(t *testing.T, c corev1.Container) (sub string, flags map[string]string) {
	t.Helper()
	args := append(slices.Clone(c.Command[min(len(c.Command), 1):]), c.Args...)
	flags = map[string]string{}
	for i, a := range args {
		if !strings.HasPrefix(a, "--") {
			require.Zero(t, i, "container %s: positional argument %q after flags", c.Name, a)
			sub = a
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		require.True(t, ok || name == "insecure", "container %s: write flags as --name=value: %q", c.Name, a)
		_, dup := flags[name]
		require.False(t, dup, "container %s: flag --%s given twice", c.Name, name)
		flags[name] = value
	}
	return sub, flags
}

// Environment-variable prefixes of the programs' flags (internal/cli): a flag
// --client-cert-file of the agent is also AGENT_CLIENT_CERT_FILE.
const (
	agentEnvPrefix   = "AGENT_"
	centralEnvPrefix = "DATASTORAGE_"
)

// settings are a container's flags, given as --name=value or through the
// environment variable prefix+NAME with a literal value, as the programs read
// them. A setting given both ways fails the test.
func settings(t *testing.T, c corev1.Container, prefix string) map[string]string {
	t.Helper()
	_, flags := parseArgs(t, c)
	for _, e := range c.Env {
		rest, ok := strings.CutPrefix(e.Name, prefix)
		if !ok || e.ValueFrom != nil {
			continue
		}
		name := strings.ReplaceAll(strings.ToLower(rest), "_", "-")
		_, dup := flags[name]
		require.False(t, dup, "container %s: --%s given as a flag and as %s", c.Name, name, e.Name)
		flags[name] = e.Value
	}
	return flags
}

func portNumber(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	require.Failf(t, "unknown port name", "container %s has no port %q", c.Name, p.StrVal)
	return 0
}

func listenPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return int32(n)
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	return portNumber(t, c, intstr.FromString(name))
}

// volumeFor returns the volume mounted at the directory holding file.
func volumeFor(t *testing.T, spec corev1.PodSpec, c corev1.Container, file string) (corev1.Volume, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, file)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name {
				return v, rel
			}
		}
		require.Failf(t, "mount without volume", "container %s mounts %q, which is not a volume", c.Name, m.Name)
	}
	require.Failf(t, "no mount", "container %s: no volume mount holds %s", c.Name, file)
	return corev1.Volume{}, ""
}

func TestEveryKustomizationIsListedAndRendered(t *testing.T) {
	var found []string
	foundComponents := map[string]bool{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var head struct{ Kind string }
		if err := yaml.Unmarshal(b, &head); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		dir := filepath.ToSlash(filepath.Dir(p))
		if head.Kind == "Component" {
			foundComponents[dir] = true
		} else {
			found = append(found, dir)
		}
		return nil
	})
	require.NoError(t, err)
	assert.ElementsMatch(t, kustomizations, found, "kustomizations on disk vs. the test's list")
	for c := range foundComponents {
		assert.Contains(t, components, c, "component %s is not exercised by any rendered kustomization", c)
	}
	for c, k := range components {
		b, err := os.ReadFile(path.Join(k, "kustomization.yaml"))
		require.NoError(t, err)
		rel, err := filepath.Rel(k, c)
		require.NoError(t, err)
		assert.Contains(t, string(b), filepath.ToSlash(rel), "%s must include component %s", k, c)
	}
	for _, dir := range kustomizations {
		r := render(t, dir)
		assert.NotZero(t, len(r.typed)+len(r.untyped), dir)
	}
}

func TestContainersAreHardenedPinnedAndBounded(t *testing.T) {
	for _, r := range renderAll(t) {
		checkContainersHardenedPinnedAndBounded(t, r)
	}
}

// checkContainersHardenedPinnedAndBounded: every container of r's workloads
// runs a pinned image as the images' user, with a hardened security context
// and resources.
func checkContainersHardenedPinnedAndBounded(t *testing.T, r rendered) {
	t.Helper()
	for _, w := range workloads(r) {
		pod := w.spec.SecurityContext
		for _, c := range allContainers(w.spec) {
			where := w.name + " container " + c.Name
			t.Run(where, func(t *testing.T) {
				assert.True(t, imageName(c.Image) != c.Image, "untagged image %s", c.Image)
				assert.NotContains(t, c.Image, ":latest", "latest tag")
				if imageName(c.Image) == centralImage || imageName(c.Image) == agentImage {
					assert.Equal(t, imageName(c.Image)+":"+images.Version, c.Image, "the tag make images builds")
				}

				req, lim := c.Resources.Requests, c.Resources.Limits
				assert.False(t, req.Cpu().IsZero(), "cpu request")
				assert.False(t, req.Memory().IsZero(), "memory request")
				assert.False(t, lim.Memory().IsZero(), "memory limit")
				if !lim.Memory().IsZero() {
					assert.GreaterOrEqual(t, lim.Memory().Cmp(*req.Memory()), 0, "memory limit below request")
				}

				sc := c.SecurityContext
				require.NotNil(t, sc, "container securityContext")
				nonRoot := sc.RunAsNonRoot
				if nonRoot == nil && pod != nil {
					nonRoot = pod.RunAsNonRoot
				}
				assert.True(t, nonRoot != nil && *nonRoot, "runAsNonRoot")
				ids := []*int64{sc.RunAsUser, sc.RunAsGroup}
				if pod != nil {
					ids = append(ids, pod.RunAsUser, pod.RunAsGroup)
				}
				for _, id := range ids {
					if id != nil {
						assert.EqualValues(t, images.UID, *id, "the user the images run as")
					}
				}
				assert.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation false")
				assert.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem")
				assert.True(t, sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL"), "drop ALL capabilities")
				if sc.Capabilities != nil {
					assert.Empty(t, sc.Capabilities.Add, "added capabilities")
				}
				seccomp := sc.SeccompProfile
				if seccomp == nil && pod != nil {
					seccomp = pod.SeccompProfile
				}
				assert.True(t, seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault, "seccomp RuntimeDefault")
			})
		}
	}
}

func TestFlagsAreOnesTheProgramsAccept(t *testing.T) {
	seen := map[string]int{}
	for _, r := range renderAll(t) {
		checkFlagsAreOnesTheProgramsAccept(t, r, seen)
	}
	assert.Positive(t, seen[centralImage], "no central container checked")
	assert.Positive(t, seen[agentImage], "no agent container checked")
}

// checkFlagsAreOnesTheProgramsAccept: the programs' containers in r give
// subcommands and flags the programs know, and the database URLs only from
// Secrets; seen counts the containers checked per image.
func checkFlagsAreOnesTheProgramsAccept(t *testing.T, r rendered, seen map[string]int) {
	t.Helper()
	for _, w := range workloads(r) {
		for _, c := range allContainers(w.spec) {
			var known, subs []string
			var prefix string
			switch imageName(c.Image) {
			case centralImage:
				known, subs, prefix = helpFlags(t, "../cmd/central"), centralSubcommands, centralEnvPrefix
			case agentImage:
				known, prefix = helpFlags(t, "../cmd/agent"), agentEnvPrefix
			default:
				continue
			}
			seen[imageName(c.Image)]++
			sub, _ := parseArgs(t, c)
			flags := settings(t, c, prefix) // the environment variables are flags too
			if sub != "" {
				assert.Contains(t, subs, sub, "%s %s: subcommand", w.name, c.Name)
			}
			for name := range flags {
				assert.Contains(t, known, name, "%s %s: --%s is not a flag of %s", w.name, c.Name, name, c.Image)
			}
			for _, e := range c.Env {
				if strings.Contains(e.Name, "DATABASE_URL") {
					require.NotNil(t, e.ValueFrom, "%s: %s must come from a Secret", w.name, e.Name)
					assert.NotNil(t, e.ValueFrom.SecretKeyRef, "%s: %s must come from a Secret", w.name, e.Name)
				}
			}
			_, inArgs := flags["database-url"]
			assert.False(t, inArgs, "%s: the database URL (a secret) must not be on the command line", w.name)
		}
	}
}

func TestCentralMatchesItsDefaultsAndWiring(t *testing.T) {
	checkCentralMatchesItsDefaultsAndWiring(t, render(t, "central"))
}

// checkCentralMatchesItsDefaultsAndWiring: r is the central with its
// default settings (2 replicas, the allow-list, TLS when configured, the
// database from a Secret, RBAC, Service, PDB, HPA).
func checkCentralMatchesItsDefaultsAndWiring(t *testing.T, r rendered) {
	t.Helper()
	d := only[*appsv1.Deployment](t, r)
	require.NotNil(t, d.Spec.Replicas)
	assert.EqualValues(t, 2, *d.Spec.Replicas)
	spec := d.Spec.Template.Spec
	c := findContainer(t, spec, centralImage)
	sub, flags := parseArgs(t, c)
	assert.Contains(t, []string{"", "serve"}, sub)

	assert.EqualValues(t, centralAPIPort, containerPort(t, c, "http"))
	assert.EqualValues(t, centralMetricsPort, containerPort(t, c, "metrics"))
	for flag, want := range map[string]int32{"listen": centralAPIPort, "metrics-listen": centralMetricsPort} {
		if v, ok := flags[flag]; ok {
			assert.Equal(t, want, listenPort(t, v), "--%s", flag)
		}
	}
	// Probes go to the API port, or, when the central requires client
	// certificates (which the kubelet lacks), to the plain metrics port.
	probePort := int32(centralAPIPort)
	_, clientCerts := settings(t, c, centralEnvPrefix)["client-ca-file"]
	if clientCerts {
		probePort = centralMetricsPort
		assert.Equal(t, corev1.URISchemeHTTP, c.ReadinessProbe.HTTPGet.Scheme, "the metrics port is plain HTTP")
		assert.Equal(t, corev1.URISchemeHTTP, c.LivenessProbe.HTTPGet.Scheme, "the metrics port is plain HTTP")
	}
	require.NotNil(t, c.ReadinessProbe)
	require.NotNil(t, c.ReadinessProbe.HTTPGet)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	assert.EqualValues(t, probePort, portNumber(t, c, c.ReadinessProbe.HTTPGet.Port))
	require.NotNil(t, c.LivenessProbe)
	require.NotNil(t, c.LivenessProbe.HTTPGet)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.EqualValues(t, probePort, portNumber(t, c, c.LivenessProbe.HTTPGet.Port))
	if _, tls := flags["tls-cert-file"]; tls && !clientCerts {
		assert.Equal(t, corev1.URISchemeHTTPS, c.ReadinessProbe.HTTPGet.Scheme, "the API port serves TLS")
		assert.Equal(t, corev1.URISchemeHTTPS, c.LivenessProbe.HTTPGet.Scheme, "the API port serves TLS")
		for _, f := range []string{"tls-cert-file", "tls-key-file"} {
			v, rel := volumeFor(t, spec, c, flags[f])
			require.NotNil(t, v.Secret, "--%s must come from a Secret volume", f)
			assert.Contains(t, []string{"tls.crt", "tls.key"}, rel)
		}
	}

	// The allow-list is mounted from ConfigMap datastorage-authz and parses;
	// with --authz=sar there is none (RBAC decides: authz_sar_test.go).
	if flags["authz"] == "sar" {
		assert.NotContains(t, flags, "authz-file")
	} else {
		v, key := volumeFor(t, spec, c, flags["authz-file"])
		require.NotNil(t, v.ConfigMap, "--authz-file must come from a ConfigMap volume")
		assert.Equal(t, "datastorage-authz", v.ConfigMap.Name)
		var cm *corev1.ConfigMap
		for _, m := range all[*corev1.ConfigMap](r) {
			if m.Name == v.ConfigMap.Name {
				cm = m
			}
		}
		require.NotNil(t, cm, "ConfigMap %s is not in the base", v.ConfigMap.Name)
		_, err := authz.Parse([]byte(cm.Data[key]))
		assert.NoError(t, err, "allow-list %s", key)
	}

	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, name := range []string{"DATABASE_URL", "VECTOR_DATABASE_URL"} {
		e, ok := env[name]
		require.True(t, ok, "env %s", name)
		require.NotNil(t, e.ValueFrom)
		require.NotNil(t, e.ValueFrom.SecretKeyRef, "env %s from a Secret", name)
	}

	// Spread across zones and nodes.
	var keys []string
	for _, tsc := range spec.TopologySpreadConstraints {
		keys = append(keys, tsc.TopologyKey)
		require.NotNil(t, tsc.LabelSelector)
		assert.Equal(t, d.Spec.Selector.MatchLabels, tsc.LabelSelector.MatchLabels)
	}
	assert.ElementsMatch(t, []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, keys)

	// Service account with TokenReview rights.
	assert.Equal(t, centralService, spec.ServiceAccountName)
	sa := only[*corev1.ServiceAccount](t, r)
	assert.Equal(t, spec.ServiceAccountName, sa.Name)
	crb := only[*rbacv1.ClusterRoleBinding](t, r)
	assert.Equal(t, "system:auth-delegator", crb.RoleRef.Name)
	require.Len(t, crb.Subjects, 1)
	assert.Equal(t, rbacv1.Subject{Kind: "ServiceAccount", Name: sa.Name, Namespace: centralNamespace}, crb.Subjects[0])

	// Service.
	svc := only[*corev1.Service](t, r)
	assert.Equal(t, centralService, svc.Name)
	assert.Equal(t, centralNamespace, svc.Namespace)
	assert.Equal(t, d.Spec.Selector.MatchLabels, svc.Spec.Selector)
	ports := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p
	}
	for name, want := range map[string]int32{"http": centralAPIPort, "metrics": centralMetricsPort} {
		p, ok := ports[name]
		require.True(t, ok, "service port %s", name)
		assert.Equal(t, want, p.Port)
		assert.Equal(t, want, portNumber(t, c, p.TargetPort))
	}

	// Disruption budget and autoscaler.
	pdb := only[*policyv1.PodDisruptionBudget](t, r)
	require.NotNil(t, pdb.Spec.MinAvailable)
	assert.Equal(t, intstr.FromInt32(1), *pdb.Spec.MinAvailable)
	assert.Equal(t, d.Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels)
	hpa := only[*autoscalingv2.HorizontalPodAutoscaler](t, r)
	assert.Equal(t, "Deployment", hpa.Spec.ScaleTargetRef.Kind)
	assert.Equal(t, d.Name, hpa.Spec.ScaleTargetRef.Name)
	require.NotNil(t, hpa.Spec.MinReplicas)
	assert.EqualValues(t, *d.Spec.Replicas, *hpa.Spec.MinReplicas)
	require.Len(t, hpa.Spec.Metrics, 1)
	require.NotNil(t, hpa.Spec.Metrics[0].Resource)
	assert.Equal(t, corev1.ResourceCPU, hpa.Spec.Metrics[0].Resource.Name)

	// Long enough a grace period for --shutdown-timeout.
	if v, ok := flags["shutdown-timeout"]; ok {
		require.NotNil(t, spec.TerminationGracePeriodSeconds)
		assert.Greater(t, float64(*spec.TerminationGracePeriodSeconds), mustDuration(t, v).Seconds())
	}
}

func TestCentralNetworkPolicyAdmitsWritersAndMonitoring(t *testing.T) {
	checkCentralNetworkPolicy(t, render(t, "central"))
}

// checkCentralNetworkPolicy: r's NetworkPolicy admits the API from writer
// namespaces and metrics from monitoring, and only the egress the central
// needs.
func checkCentralNetworkPolicy(t *testing.T, r rendered) {
	t.Helper()
	d := only[*appsv1.Deployment](t, r)
	np := only[*networkingv1.NetworkPolicy](t, r)
	assert.Equal(t, d.Spec.Selector.MatchLabels, np.Spec.PodSelector.MatchLabels)
	assert.ElementsMatch(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, np.Spec.PolicyTypes)

	// Which namespace labels may reach which port.
	admitted := map[int32][]map[string]string{}
	for _, rule := range np.Spec.Ingress {
		require.NotEmpty(t, rule.Ports, "an ingress rule without ports admits every port")
		require.NotEmpty(t, rule.From, "an ingress rule without peers admits everyone")
		for _, p := range rule.Ports {
			require.NotNil(t, p.Port)
			for _, peer := range rule.From {
				require.NotNil(t, peer.NamespaceSelector, "peers are selected by namespace")
				assert.Nil(t, peer.IPBlock)
				admitted[p.Port.IntVal] = append(admitted[p.Port.IntVal], peer.NamespaceSelector.MatchLabels)
			}
		}
	}
	assert.Equal(t, map[int32][]map[string]string{
		centralAPIPort:     {{"kubernaut.io/audit-writer": "true"}},
		centralMetricsPort: {{"kubernetes.io/metadata.name": "monitoring"}},
	}, admitted)

	egress := map[string]bool{}
	for _, rule := range np.Spec.Egress {
		for _, p := range rule.Ports {
			require.NotNil(t, p.Port)
			require.NotNil(t, p.Protocol)
			egress[fmt.Sprintf("%s/%d", *p.Protocol, p.Port.IntVal)] = true
		}
	}
	for _, want := range []string{"TCP/5432", "TCP/5433", "UDP/53", "TCP/53", "TCP/443", "TCP/6443"} {
		assert.True(t, egress[want], "egress %s", want)
	}
	assert.Len(t, egress, 6, "no other egress: %v", egress)
}

// untypedKind is r's one object of a monitoring.coreos.com kind.
func untypedKind(t *testing.T, r rendered, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, u := range r.untyped {
		if u.GetKind() == kind {
			found = append(found, u)
		}
	}
	require.Len(t, found, 1, "%s: want exactly one %s", r.dir, kind)
	assert.Equal(t, "monitoring.coreos.com/v1", found[0].GetAPIVersion())
	return found[0]
}

func TestServiceMonitorScrapesTheMetricsPort(t *testing.T) {
	r := render(t, "central/overlays/monitoring")
	require.Len(t, r.untyped, 3, "ServiceMonitor, PodMonitor, PrometheusRule")
	checkServiceMonitor(t, r)
	// The base's objects are all there.
	assert.Len(t, r.typed, len(render(t, "central").typed))
}

// checkServiceMonitor: r's ServiceMonitor selects the central's Service and
// scrapes its metrics port.
func checkServiceMonitor(t *testing.T, r rendered) {
	t.Helper()
	sm := untypedKind(t, r, "ServiceMonitor")
	assert.Equal(t, centralNamespace, sm.GetNamespace())
	svc := only[*corev1.Service](t, r)
	sel, found, err := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	require.NoError(t, err)
	require.True(t, found)
	for k, v := range sel {
		assert.Equal(t, v, svc.Labels[k], "ServiceMonitor selects the Service by %s", k)
	}
	endpoints, found, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	require.NoError(t, err)
	require.True(t, found)
	require.Len(t, endpoints, 1)
	ep := endpoints[0].(map[string]any)
	assert.Equal(t, "metrics", ep["port"])
	assert.Equal(t, "/metrics", ep["path"])
	var port int32
	for _, p := range svc.Spec.Ports {
		if p.Name == ep["port"] {
			port = p.Port
		}
	}
	assert.EqualValues(t, centralMetricsPort, port)
}

func TestPodMonitorScrapesEveryAgentSidecar(t *testing.T) {
	checkPodMonitor(t, render(t, "central/overlays/monitoring"), render(t, "examples/gateway"), render(t, "examples/gateway-statefulset"))
}

// checkPodMonitor: r's PodMonitor scrapes the agent's metrics port in every
// pod of writers, the renderings of controllers with the agent sidecar.
func checkPodMonitor(t *testing.T, r rendered, writers ...rendered) {
	t.Helper()
	pm := untypedKind(t, r, "PodMonitor")
	anyNamespace, _, err := unstructured.NestedBool(pm.Object, "spec", "namespaceSelector", "any")
	require.NoError(t, err)
	assert.True(t, anyNamespace, "writers run in their own namespaces")
	sel, found, err := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	require.NoError(t, err)
	require.True(t, found)
	require.NotEmpty(t, sel)
	endpoints, _, err := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	require.NoError(t, err)
	require.Len(t, endpoints, 1)
	ep := endpoints[0].(map[string]any)
	assert.Equal(t, "/metrics", ep["path"])

	require.NotEmpty(t, writers)
	for _, r := range writers {
		dir := r.dir
		var templates []corev1.PodTemplateSpec
		for _, d := range all[*appsv1.Deployment](r) {
			templates = append(templates, d.Spec.Template)
		}
		for _, s := range all[*appsv1.StatefulSet](r) {
			templates = append(templates, s.Spec.Template)
		}
		require.NotEmpty(t, templates, dir)
		for _, tmpl := range templates {
			for k, v := range sel {
				assert.Equal(t, v, tmpl.Labels[k], "%s: the PodMonitor selects the patched pods by %s", dir, k)
			}
			var port int32
			for _, c := range tmpl.Spec.InitContainers {
				for _, p := range c.Ports {
					if p.Name == ep["port"] {
						port = p.ContainerPort
					}
				}
			}
			assert.EqualValues(t, agentMetricsPort, port, "%s: the PodMonitor's port is the agent's metrics port", dir)
		}
	}
}

// exportedMetrics are the metric names the programs register: string
// literals in their non-test Go sources that start with a metric prefix.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	literal := regexp.MustCompile("[\"`]((?:agent|datastorage|auth)_[a-z0-9_]+)")
	names := map[string]bool{}
	for _, dir := range []string{"../agent", "../central", "../storage", "../cmd"} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			for _, m := range literal.FindAllSubmatch(b, -1) {
				names[string(m[1])] = true
			}
			return err
		})
		require.NoError(t, err)
	}
	require.Contains(t, names, "agent_queue_buffered_bytes", "the scan finds the programs' metrics")
	return names
}

func TestAlertRulesAreCompleteAndNameOnlyExportedMetrics(t *testing.T) {
	checkAlertRules(t, render(t, "central/overlays/monitoring"))
}

// checkAlertRules: every rule of r's PrometheusRule is an alert on metrics
// the programs export, with a severity, a summary and a description.
func checkAlertRules(t *testing.T, r rendered) {
	t.Helper()
	rule := untypedKind(t, r, "PrometheusRule")
	groups, _, err := unstructured.NestedSlice(rule.Object, "spec", "groups")
	require.NoError(t, err)
	require.NotEmpty(t, groups)
	exported := exportedMetrics(t)
	metric := regexp.MustCompile(`\b(?:agent|datastorage)_[a-z0-9_]+\b`)
	alerts := map[string]bool{}
	for _, g := range groups {
		rules, _, err := unstructured.NestedSlice(g.(map[string]any), "rules")
		require.NoError(t, err)
		for _, r := range rules {
			r := r.(map[string]any)
			name, _ := r["alert"].(string)
			require.NotEmpty(t, name, "every rule is an alert")
			assert.False(t, alerts[name], "alert %s is defined twice", name)
			alerts[name] = true
			expr, _ := r["expr"].(string)
			names := metric.FindAllString(expr, -1)
			assert.NotEmpty(t, names, "%s: the expression names a metric of ours", name)
			for _, m := range names {
				assert.True(t, exported[m], "%s: metric %s is not one the programs export", name, m)
			}
			if f, ok := r["for"].(string); ok {
				mustDuration(t, f)
			}
			labels, _ := r["labels"].(map[string]any)
			assert.Contains(t, []any{"critical", "warning"}, labels["severity"], "%s: severity", name)
			ann, _ := r["annotations"].(map[string]any)
			assert.NotEmpty(t, ann["summary"], "%s: summary", name)
			assert.NotEmpty(t, ann["description"], "%s: description", name)
		}
	}
}

func TestMigrationJobRunsMigrate(t *testing.T) {
	r := render(t, "examples/central-with-migration")
	checkMigrationJob(t, only[*batchv1.Job](t, r))
	assert.Len(t, all[*appsv1.Deployment](r), 1, "the base comes along")
}

func checkMigrationJob(t *testing.T, job *batchv1.Job) {
	t.Helper()
	c := findContainer(t, job.Spec.Template.Spec, centralImage)
	sub, _ := parseArgs(t, c)
	assert.Equal(t, "migrate", sub)
	assert.Equal(t, centralNamespace, job.Namespace)
}

// The maintenance CronJob runs `central maintain` with the central's
// partition and retention settings, and the central then leaves partition
// DDL to it.
func TestMaintenanceCronJobRunsMaintainWithTheCentralsSettings(t *testing.T) {
	checkMaintenanceCronJob(t, render(t, "examples/central-with-migration"), render(t, "central"))
}

// checkMaintenanceCronJob: r's CronJob runs `central maintain` with the
// settings of r's central, which leaves partitions to it; plain's central
// (without the CronJob) maintains partitions itself.
func checkMaintenanceCronJob(t *testing.T, r, plain rendered) {
	t.Helper()
	cron := only[*batchv1.CronJob](t, r)
	assert.Equal(t, centralNamespace, cron.Namespace)
	assert.Equal(t, batchv1.ForbidConcurrent, cron.Spec.ConcurrencyPolicy)
	c := findContainer(t, cron.Spec.JobTemplate.Spec.Template.Spec, centralImage)
	sub, flags := parseArgs(t, c)
	assert.Equal(t, "maintain", sub)

	_, serving := parseArgs(t, findContainer(t, only[*appsv1.Deployment](t, r).Spec.Template.Spec, centralImage))
	assert.Equal(t, "false", serving["partition-maintenance"])
	for _, f := range []string{"partition-period", "partitions-ahead", "retention"} {
		assert.Equal(t, serving[f], flags[f], "--%s: the CronJob and the central agree", f)
	}
	_, plainFlags := parseArgs(t, findContainer(t, only[*appsv1.Deployment](t, plain).Spec.Template.Spec, centralImage))
	assert.NotContains(t, plainFlags, "partition-maintenance", "the default set-up maintains partitions in the central")
}

func TestSidecarAgentMatchesCentralAndDefaults(t *testing.T) {
	checkSidecarAgent(t, render(t, "central"), render(t, "examples/gateway"))
}

// checkSidecarAgent: r is a gateway-like controller (service account
// gateway-sa) with the agent sidecar, set up to reach centralR's central.
func checkSidecarAgent(t *testing.T, centralR, r rendered) {
	t.Helper()
	central := findContainer(t, only[*appsv1.Deployment](t, centralR).Spec.Template.Spec, centralImage)
	_, centralFlagValues := parseArgs(t, central)
	audience := defaultAudience
	if v, ok := centralFlagValues["token-audience"]; ok {
		audience = v
	}

	d := only[*appsv1.Deployment](t, r)
	spec := d.Spec.Template.Spec
	assert.Equal(t, "gateway-sa", spec.ServiceAccountName)
	require.Len(t, spec.Containers, 1, "the controller's own container is untouched")
	var agent corev1.Container
	for _, c := range spec.InitContainers {
		if imageName(c.Image) == agentImage {
			agent = c
		}
	}
	require.NotEmpty(t, agent.Name, "agent initContainer")
	require.NotNil(t, agent.RestartPolicy)
	assert.Equal(t, corev1.ContainerRestartPolicyAlways, *agent.RestartPolicy, "native sidecar")
	_, flags := parseArgs(t, agent)

	// Ports and probes: the kubelet cannot reach 127.0.0.1, so probes use the metrics port.
	assert.Equal(t, "127.0.0.1", mustHost(t, flags["listen"]), "the API stays on loopback")
	assert.Equal(t, int32(agentAPIPort), listenPort(t, flags["listen"]))
	assert.Equal(t, int32(agentMetricsPort), listenPort(t, flags["metrics-listen"]))
	assert.Empty(t, mustHost(t, flags["metrics-listen"]), "metrics listen on all interfaces")
	assert.EqualValues(t, agentAPIPort, containerPort(t, agent, "agent-api"))
	assert.EqualValues(t, agentMetricsPort, containerPort(t, agent, "agent-metrics"))
	for name, p := range map[string]*corev1.Probe{"startup": agent.StartupProbe, "readiness": agent.ReadinessProbe, "liveness": agent.LivenessProbe} {
		require.NotNil(t, p, "%s probe", name)
		require.NotNil(t, p.HTTPGet, "%s probe is httpGet", name)
		assert.Nil(t, p.Exec, "%s probe", name)
		assert.EqualValues(t, agentMetricsPort, portNumber(t, agent, p.HTTPGet.Port), "%s probe port", name)
		assert.Empty(t, p.HTTPGet.Host, "%s probe host", name)
		want := "/healthz"
		if name == "readiness" {
			want = "/readyz"
		}
		assert.Equal(t, want, p.HTTPGet.Path, "%s probe path", name)
	}
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			assert.NotContains(t, []int32{agentAPIPort, agentMetricsPort}, p.ContainerPort, "controller port clashes with the agent")
		}
	}

	// The central URL names the central's Service and API port.
	u, err := url.Parse(flags["central-url"])
	require.NoError(t, err)
	assert.Equal(t, "https", u.Scheme)
	assert.Equal(t, centralService+"."+centralNamespace+".svc", u.Hostname())
	assert.Equal(t, strconv.Itoa(centralAPIPort), u.Port())
	_, insecure := flags["insecure"]
	assert.False(t, insecure, "--insecure in a manifest")
	caVol, _ := volumeFor(t, spec, agent, flags["central-ca-file"])
	assert.NotNil(t, caVol.ConfigMap, "central CA from a ConfigMap")

	// Token: projected, for the central's audience, at --token-file.
	tokVol, rel := volumeFor(t, spec, agent, flags["token-file"])
	require.NotNil(t, tokVol.Projected, "token volume is projected")
	var tok *corev1.ServiceAccountTokenProjection
	for _, s := range tokVol.Projected.Sources {
		if s.ServiceAccountToken != nil && s.ServiceAccountToken.Path == rel {
			tok = s.ServiceAccountToken
		}
	}
	require.NotNil(t, tok, "--token-file %s is a projected service-account token", flags["token-file"])
	assert.Equal(t, audience, tok.Audience, "token audience equals the central's --token-audience")
	require.NotNil(t, tok.ExpirationSeconds)
	assert.EqualValues(t, 3600, *tok.ExpirationSeconds)

	// Buffer: an emptyDir with a sizeLimit comfortably above --max-buffer-bytes.
	bufVol, rel := volumeFor(t, spec, agent, flags["data-dir"])
	assert.Equal(t, ".", rel)
	require.NotNil(t, bufVol.EmptyDir, "buffer volume")
	require.NotNil(t, bufVol.EmptyDir.SizeLimit, "buffer sizeLimit")
	maxBuf, err := strconv.ParseInt(flags["max-buffer-bytes"], 10, 64)
	require.NoError(t, err)
	assert.LessOrEqual(t, 2*maxBuf, bufVol.EmptyDir.SizeLimit.Value(), "sizeLimit leaves room for the store's overhead; exceeding it evicts the pod")

	// Resources as briefed.
	assert.True(t, agent.Resources.Requests.Cpu().Equal(resource.MustParse("50m")))
	assert.True(t, agent.Resources.Requests.Memory().Equal(resource.MustParse("48Mi")))
	assert.True(t, agent.Resources.Limits.Memory().Equal(resource.MustParse("128Mi")))

	// Draining fits in the grace period.
	require.NotNil(t, spec.TerminationGracePeriodSeconds)
	assert.GreaterOrEqual(t, *spec.TerminationGracePeriodSeconds, int64(60))
	assert.Less(t, mustDuration(t, flags["shutdown-grace"]).Seconds(), float64(*spec.TerminationGracePeriodSeconds))

	// Only the opted-in workload receives the agent.
	assert.Equal(t, "enabled", d.Labels["kubernaut.io/datastorage-agent"])
}

func mustHost(t *testing.T, addr string) string {
	t.Helper()
	h, _, err := net.SplitHostPort(addr)
	require.NoError(t, err, "address %q", addr)
	return h
}

func TestPersistentBufferKeepsTheAgentBufferOnAClaim(t *testing.T) {
	r := render(t, "examples/gateway-statefulset")
	sts := only[*appsv1.StatefulSet](t, r)
	spec := sts.Spec.Template.Spec
	agent := findContainer(t, spec, agentImage)
	_, flags := parseArgs(t, agent)

	var mount *corev1.VolumeMount
	for i, m := range agent.VolumeMounts {
		if m.MountPath == flags["data-dir"] {
			mount = &agent.VolumeMounts[i]
		}
	}
	require.NotNil(t, mount, "--data-dir %s is mounted", flags["data-dir"])
	for _, v := range spec.Volumes {
		assert.NotEqual(t, mount.Name, v.Name, "the emptyDir buffer volume is removed")
	}
	var claim *corev1.PersistentVolumeClaim
	for i, c := range sts.Spec.VolumeClaimTemplates {
		if c.Name == mount.Name {
			claim = &sts.Spec.VolumeClaimTemplates[i]
		}
	}
	require.NotNil(t, claim, "volumeClaimTemplate %s", mount.Name)
	maxBuf, err := strconv.ParseInt(flags["max-buffer-bytes"], 10, 64)
	require.NoError(t, err)
	assert.LessOrEqual(t, 2*maxBuf, claim.Spec.Resources.Requests.Storage().Value())
	assert.Equal(t, "enabled", sts.Labels["kubernaut.io/datastorage-agent"])
	assert.Equal(t, "gateway-sa", spec.ServiceAccountName)
}

// TestDefaults_AgentBatchFitsTheCentralBurst: an agent with default settings
// must be able to drain through a central with default limits: a batch
// larger than the burst would be refused (413) however long it waited.
func TestDefaults_AgentBatchFitsTheCentralBurst(t *testing.T) {
	assert.LessOrEqual(t, forward.DefaultBatchMaxRecords, ratelimit.DefaultBurst)
	assert.LessOrEqual(t, forward.DefaultBatchMaxRecords, wire.MaxBatchRecords)
}
