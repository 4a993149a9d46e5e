package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/kubernaut/datastorage/images"
)

// The chart, and a controller chart using its agent templates.
const (
	chartDir          = "helm/datastorage"
	gatewayChartDir   = "helm/examples/gateway"
	chartReleaseName  = "datastorage" // names the objects as the kustomize manifests do
	chartKubeVersion  = "v1.31.0"
	chartRulesFile    = "rules/prometheusrule.yaml"
	chartDashboardKey = "datastorage.json"
)

// helmRelease is a chart rendered as `helm install` would apply it: the
// release's objects and its hooks' objects, decoded strictly.
type helmRelease struct {
	rendered
	hooks []*release.Hook
	notes string
}

func loadChart(t *testing.T, dir string) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(dir)
	require.NoError(t, err, "load chart %s", dir)
	return ch
}

// chartValues parses values given as YAML, as `helm install -f` would.
func chartValues(t *testing.T, y string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(y))
	require.NoError(t, err)
	return v
}

// renderChartErr renders ch with values into namespace kubernaut-system, as
// a client-only `helm install datastorage` does: dependencies, the values
// schema, then the templates in strict mode (a missing value is an error).
func renderChartErr(t *testing.T, ch *chart.Chart, what string, values map[string]any) (helmRelease, error) {
	t.Helper()
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: chartKubeVersion, Major: "1", Minor: "31"}
	if ch.Metadata.KubeVersion != "" {
		require.True(t, chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, chartKubeVersion), "kubeVersion %s", ch.Metadata.KubeVersion)
	}
	if err := chartutil.ProcessDependenciesWithMerge(ch, values); err != nil {
		return helmRelease{}, err
	}
	opts := chartutil.ReleaseOptions{Name: chartReleaseName, Namespace: centralNamespace, Revision: 1, IsInstall: true}
	vals, err := chartutil.ToRenderValues(ch, values, opts, caps)
	if err != nil {
		return helmRelease{}, err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, vals)
	if err != nil {
		return helmRelease{}, err
	}
	out := helmRelease{rendered: rendered{dir: ch.Name() + " (" + what + ")"}}
	for name, content := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			if !strings.Contains(name, "/charts/") {
				out.notes = content
			}
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return helmRelease{}, err
	}
	for _, m := range manifests {
		out.add(t, m.Name, []byte(m.Content))
	}
	for _, h := range hooks {
		out.add(t, h.Path, []byte(h.Manifest))
	}
	out.hooks = hooks
	return out, nil
}

func renderChart(t *testing.T, what, values string) helmRelease {
	t.Helper()
	r, err := renderChartErr(t, loadChart(t, chartDir), what, chartValues(t, values))
	require.NoError(t, err, "render the chart with %s", what)
	return r
}

// chartOptions are the chart's options, each rendered and checked with the
// rules of the kustomize manifests.
var chartOptions = map[string]string{
	"defaults":            "",
	"tls off":             "central: {tls: {enabled: false}}",
	"migration":           "migration: {enabled: true}",
	"maintenance":         "maintenance: {enabled: true}\ncentral: {retention: 'remediation=365,workflow=400'}",
	"monitoring":          "monitoring: {serviceMonitor: {enabled: true}, podMonitor: {enabled: true}, prometheusRule: {enabled: true}}",
	"dashboard":           "dashboard: {enabled: true}",
	"client certificates": "central: {clientCAConfigMap: datastorage-client-ca}",
	"sar":                 "central: {authzMode: sar}",
	"everything": `
migration: {enabled: true}
maintenance: {enabled: true}
monitoring: {serviceMonitor: {enabled: true}, podMonitor: {enabled: true}, prometheusRule: {enabled: true}, labels: {release: prometheus}}
dashboard: {enabled: true, namespace: monitoring}
central: {extraArgs: [--read-rate=2000, --export-key-file=/etc/datastorage/export/export.key],
  extraVolumes: [{name: export, secret: {secretName: datastorage-export-key}}],
  extraVolumeMounts: [{name: export, mountPath: /etc/datastorage/export, readOnly: true}]}
`,
}

func TestChart_IsTheImagesVersion(t *testing.T) {
	ch := loadChart(t, chartDir)
	assert.Equal(t, "datastorage", ch.Name())
	assert.Equal(t, images.Version, ch.Metadata.AppVersion, "appVersion is the tag make images builds")
	assert.Equal(t, images.Central.Repository(), ch.Values["central"].(map[string]any)["image"].(map[string]any)["repository"])
	agentImg := ch.Values["agent"].(map[string]any)["image"].(map[string]any)
	assert.Equal(t, images.Agent.Reference(images.Version), agentImg["repository"].(string)+":"+agentImg["tag"].(string))
	require.NoError(t, ch.Validate())
}

func TestChart_EveryOptionPassesTheManifestRules(t *testing.T) {
	seen := map[string]int{}
	for what, values := range chartOptions {
		t.Run(what, func(t *testing.T) {
			r := renderChart(t, what, values)
			checkContainersHardenedPinnedAndBounded(t, r.rendered)
			checkFlagsAreOnesTheProgramsAccept(t, r.rendered, seen)
			checkCentralMatchesItsDefaultsAndWiring(t, r.rendered)
			checkCentralNetworkPolicy(t, r.rendered)
			for _, w := range workloads(r.rendered) {
				for _, c := range allContainers(w.spec) {
					assert.Equal(t, images.Central.Reference(images.Version), c.Image, "%s %s", w.name, c.Name)
				}
			}
			assert.Contains(t, r.notes, "datastorage-central."+centralNamespace+".svc:8080")
		})
	}
	assert.Positive(t, seen[centralImage], "no central container checked")
}

func TestChart_TLSOffServesPlainHTTP(t *testing.T) {
	c := findContainer(t, only[*appsv1.Deployment](t, renderChart(t, "tls off", chartOptions["tls off"]).rendered).Spec.Template.Spec, centralImage)
	_, flags := parseArgs(t, c)
	assert.NotContains(t, flags, "tls-cert-file")
	assert.NotContains(t, flags, "tls-key-file")
	assert.Equal(t, corev1.URISchemeHTTP, c.ReadinessProbe.HTTPGet.Scheme)
	assert.Equal(t, corev1.URISchemeHTTP, c.LivenessProbe.HTTPGet.Scheme)
	for _, m := range c.VolumeMounts {
		assert.NotEqual(t, "tls", m.Name)
	}
}

func TestChart_MigrationIsAPreInstallAndPreUpgradeHook(t *testing.T) {
	assert.Empty(t, renderChart(t, "defaults", "").hooks, "no hook by default")

	r := renderChart(t, "migration", chartOptions["migration"])
	require.Len(t, r.hooks, 1)
	h := r.hooks[0]
	assert.Equal(t, "Job", h.Kind)
	assert.ElementsMatch(t, []release.HookEvent{release.HookPreInstall, release.HookPreUpgrade}, h.Events)
	assert.Equal(t, []release.HookDeletePolicy{release.HookBeforeHookCreation}, h.DeletePolicies)
	job := only[*batchv1.Job](t, r.rendered)
	checkMigrationJob(t, job)
	// Before an install the chart's service account does not exist yet.
	assert.Empty(t, job.Spec.Template.Spec.ServiceAccountName)
	require.NotNil(t, job.Spec.Template.Spec.AutomountServiceAccountToken)
	assert.False(t, *job.Spec.Template.Spec.AutomountServiceAccountToken)
}

func TestChart_MaintenanceCronJobRunsMaintainWithTheCentralsSettings(t *testing.T) {
	checkMaintenanceCronJob(t, renderChart(t, "maintenance", chartOptions["maintenance"]).rendered, renderChart(t, "defaults", "").rendered)
}

func TestChart_MonitoringScrapesAndAlertsAsTheOverlayDoes(t *testing.T) {
	r := renderChart(t, "monitoring", chartOptions["monitoring"])
	require.Len(t, r.untyped, 3, "ServiceMonitor, PodMonitor, PrometheusRule")
	checkServiceMonitor(t, r.rendered)
	checkPodMonitor(t, r.rendered, render(t, "examples/gateway"), render(t, "examples/gateway-statefulset"))
	checkAlertRules(t, r.rendered)

	// One source for the rules: the chart's spec is the overlay's.
	kust := render(t, "central/overlays/monitoring")
	for _, kind := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"} {
		k, h := untypedKind(t, kust, kind), untypedKind(t, r.rendered, kind)
		assert.Equal(t, normalized(t, k.Object)["spec"], normalized(t, h.Object)["spec"], "%s spec", kind)
	}
	assert.Empty(t, renderChart(t, "defaults", "").untyped, "monitoring is off by default")
}

func TestChart_DashboardConfigMapShipsTheDashboardForGrafanasSidecar(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(chartDir, "dashboards", chartDashboardKey))
	require.NoError(t, err)
	require.True(t, json.Valid(want), "the dashboard is JSON")
	r := renderChart(t, "everything", chartOptions["everything"])
	var found *corev1.ConfigMap
	for _, cm := range all[*corev1.ConfigMap](r.rendered) {
		if _, ok := cm.Data[chartDashboardKey]; ok {
			found = cm
		}
	}
	require.NotNil(t, found, "dashboard ConfigMap")
	assert.Equal(t, "1", found.Labels["grafana_dashboard"])
	assert.Equal(t, "monitoring", found.Namespace)
	assert.JSONEq(t, string(want), found.Data[chartDashboardKey])

	// deploy/grafana ships the same file under the same name.
	kust := only[*corev1.ConfigMap](t, render(t, "grafana"))
	assert.Equal(t, kust.Name, found.Name)
	assert.Equal(t, strings.TrimSpace(kust.Data[chartDashboardKey]), strings.TrimSpace(found.Data[chartDashboardKey]))
}

func TestChart_SchemaRefusesBadValues(t *testing.T) {
	for what, values := range map[string]string{
		"replicas as a string":   "central: {replicas: two}",
		"an unknown top-level":   "replicaCount: 3",
		"an unknown central key": "central: {rateLimits: 5}",
		"a log format":           "central: {logFormat: text}",
		"the latest tag":         "central: {image: {tag: latest}}",
		"a partition period":     "central: {partitionPeriod: year}",
		"an unknown action":      "central: {authz: {serviceAccounts: [{name: a, namespace: b, actions: [write:everything]}]}}",
		"a flag without dashes":  "central: {extraArgs: [read-rate=5]}",
	} {
		t.Run(what, func(t *testing.T) {
			_, err := renderChartErr(t, loadChart(t, chartDir), what, chartValues(t, values))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "schema")
		})
	}
}

// The chart and the kustomize manifests agree for the same settings, but for
// Helm's standard labels and the allow-list checksum.
func TestChart_AgreesWithKustomize(t *testing.T) {
	for _, tc := range []struct {
		kustomization, option string
		kinds                 []runtime.Object
	}{
		{"central", "defaults", []runtime.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.ServiceAccount{}, &rbacv1.ClusterRoleBinding{},
			&corev1.ConfigMap{}, &policyv1.PodDisruptionBudget{}, &autoscalingv2.HorizontalPodAutoscaler{}, &networkingv1.NetworkPolicy{}}},
		{"central/overlays/monitoring", "monitoring", []runtime.Object{&appsv1.Deployment{}, &corev1.Service{}}},
		{"examples/central-with-migration", "maintenance", []runtime.Object{&appsv1.Deployment{}, &batchv1.CronJob{}}},
		{"examples/central-with-client-certificates", "client certificates", []runtime.Object{&appsv1.Deployment{}}},
	} {
		t.Run(tc.kustomization, func(t *testing.T) {
			kust := render(t, tc.kustomization)
			values := chartOptions[tc.option]
			if tc.option == "maintenance" {
				values = "maintenance: {enabled: true}" // the example's settings
			}
			helm := renderChart(t, tc.option, values)
			for _, kind := range tc.kinds {
				k, h := sameKind(t, kust, kind), sameKind(t, helm.rendered, kind)
				if _, component := kind.(*batchv1.CronJob); component {
					// The component's objects lack the base's part-of label.
					k, h = k["spec"].(map[string]any), h["spec"].(map[string]any)
				}
				assert.Equal(t, k, h, "%T", kind)
			}
		})
	}

	// The migration hook's pod is the component Job's, but for the service account.
	kJob := only[*batchv1.Job](t, render(t, "examples/central-with-migration"))
	hJob := only[*batchv1.Job](t, renderChart(t, "migration", chartOptions["migration"]).rendered)
	kJob.Spec.Template.Spec.ServiceAccountName = ""
	assert.Equal(t, normalized(t, kJob.Spec.Template), normalized(t, hJob.Spec.Template))
}

// With central.authzMode sar the chart renders what the kustomize component
// authz-sar does: the central on --authz=sar without the allow-list, the
// ClusterRoles, and RoleBindings that grant the allow-list's service
// accounts their actions.
func TestChart_SARModeAgreesWithTheKustomizeComponent(t *testing.T) {
	kust, helm := render(t, "examples/central-with-sar"), renderChart(t, "sar", chartOptions["sar"]).rendered
	assert.Equal(t, sameKind(t, kust, &appsv1.Deployment{}), sameKind(t, helm, &appsv1.Deployment{}))
	assert.Empty(t, all[*corev1.ConfigMap](helm), "no allow-list")
	byName := func(r rendered, like runtime.Object) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, o := range r.typed {
			if reflect.TypeOf(o) == reflect.TypeOf(like) {
				n := normalized(t, o)
				delete(n["metadata"].(map[string]any), "labels") // the component's lack the base's part-of
				out[n["metadata"].(map[string]any)["name"].(string)] = n
			}
		}
		return out
	}
	for _, kind := range []runtime.Object{&rbacv1.ClusterRole{}, &rbacv1.RoleBinding{}} {
		k, h := byName(kust, kind), byName(helm, kind)
		assert.NotEmpty(t, k, "%T", kind)
		assert.Equal(t, k, h, "%T", kind)
	}
}

// sameKind is r's one object of like's type, normalized.
func sameKind(t *testing.T, r rendered, like runtime.Object) map[string]any {
	t.Helper()
	var found []runtime.Object
	for _, o := range r.typed {
		if reflect.TypeOf(o) == reflect.TypeOf(like) {
			found = append(found, o)
		}
	}
	require.Len(t, found, 1, "%s: want one %T", r.dir, like)
	return normalized(t, found[0])
}

// helmOnlyLabels are Helm's standard labels (and the release in selectors)
// and the allow-list checksum: what only the chart writes.
var helmOnlyLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version", "checksum/authz"}

// normalized is o as JSON-like data without helmOnlyLabels, with empty maps
// dropped and the allow-list parsed, so that equal objects compare equal.
func normalized(t *testing.T, o any) map[string]any {
	t.Helper()
	b, err := json.Marshal(o)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range helmOnlyLabels {
				delete(v, k)
			}
			for k, e := range v {
				if v[k] = walk(e); v[k] == nil {
					delete(v, k)
				}
				if k == "authz.yaml" {
					var parsed any
					require.NoError(t, yaml.Unmarshal([]byte(e.(string)), &parsed))
					v[k] = parsed
				}
			}
			if len(v) == 0 {
				return nil
			}
			return v
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		}
		return v
	}
	if n, _ := walk(m).(map[string]any); n != nil {
		return n
	}
	return map[string]any{}
}

// The agent templates render, in a controller's chart, the container, volumes
// and labels the kustomize sidecar component adds.
func TestChart_AgentSidecarTemplatesEqualTheSidecarComponent(t *testing.T) {
	r, err := renderChartErr(t, gatewayChart(t), "agent", chartValues(t, ""))
	require.NoError(t, err)
	assert.Len(t, all[*appsv1.Deployment](r.rendered), 1, "nothing of the central in a controller's chart")

	central := renderChart(t, "defaults", "")
	checkSidecarAgent(t, central.rendered, r.rendered)
	checkContainersHardenedPinnedAndBounded(t, r.rendered)
	checkFlagsAreOnesTheProgramsAccept(t, r.rendered, map[string]int{})
	checkPodMonitor(t, renderChart(t, "monitoring", chartOptions["monitoring"]).rendered, r.rendered)

	kust := only[*appsv1.Deployment](t, render(t, "examples/gateway"))
	helm := only[*appsv1.Deployment](t, r.rendered)
	assert.Equal(t, findContainer(t, kust.Spec.Template.Spec, agentImage), findContainer(t, helm.Spec.Template.Spec, agentImage), "the agent container, field for field")
	assert.Equal(t, kust.Spec.Template, helm.Spec.Template, "the whole pod template")
	assert.Equal(t, kust.Labels, helm.Labels)

	// With a client certificate, as the sidecar's client-certificate component adds it.
	r, err = renderChartErr(t, gatewayChart(t), "agent with a client certificate",
		chartValues(t, "datastorage: {agent: {clientCertificateSecret: datastorage-agent-client-tls}}"))
	require.NoError(t, err)
	mtls := only[*appsv1.Deployment](t, render(t, "examples/gateway-mtls"))
	assert.Equal(t, mtls.Spec.Template, only[*appsv1.Deployment](t, r.rendered).Spec.Template, "the pod template of examples/gateway-mtls")

	// A controller's override reaches the container.
	r, err = renderChartErr(t, gatewayChart(t), "agent override", chartValues(t, "datastorage: {agent: {centralURL: 'https://audit.example:8443'}}"))
	require.NoError(t, err)
	_, flags := parseArgs(t, findContainer(t, only[*appsv1.Deployment](t, r.rendered).Spec.Template.Spec, agentImage))
	assert.Equal(t, "https://audit.example:8443", flags["central-url"])
}

// gatewayChart is the controller chart example with the chart as its
// dependency, as `helm dependency build` leaves it.
func gatewayChart(t *testing.T) *chart.Chart {
	t.Helper()
	gw := loadChart(t, gatewayChartDir)
	gw.AddDependency(loadChart(t, chartDir))
	return gw
}

// `helm package` keeps the rules and the dashboard (the chart reads them) and
// leaves out their kustomizations (.helmignore), and the packaged chart renders
// as the directory does.
func TestChart_PackageHoldsTheRulesAndDashboardButNotTheirKustomizations(t *testing.T) {
	archive, err := chartutil.Save(loadChart(t, chartDir), t.TempDir())
	require.NoError(t, err)
	packaged := loadChart(t, archive)
	var names []string
	for _, f := range packaged.Files {
		names = append(names, f.Name)
	}
	assert.Contains(t, names, chartRulesFile)
	assert.Contains(t, names, "dashboards/"+chartDashboardKey)
	assert.NotContains(t, names, "rules/kustomization.yaml")
	assert.NotContains(t, names, "dashboards/kustomization.yaml")

	values := chartOptions["everything"]
	fromDir := renderChart(t, "everything", values)
	fromArchive, err := renderChartErr(t, packaged, "everything, packaged", chartValues(t, values))
	require.NoError(t, err)
	assert.ElementsMatch(t, fromDir.typed, fromArchive.typed)
	assert.ElementsMatch(t, fromDir.untyped, fromArchive.untyped)
}

func TestChart_FullnameOverrideRenamesEveryObjectConsistently(t *testing.T) {
	r := renderChart(t, "fullnameOverride", "fullnameOverride: audit\nmaintenance: {enabled: true}")
	d := only[*appsv1.Deployment](t, r.rendered)
	assert.Equal(t, "audit-central", d.Name)
	spec := d.Spec.Template.Spec
	c := findContainer(t, spec, centralImage)
	_, flags := parseArgs(t, c)
	v, _ := volumeFor(t, spec, c, flags["authz-file"])
	require.NotNil(t, v.ConfigMap)
	assert.Equal(t, "audit-authz", v.ConfigMap.Name)
	assert.Equal(t, "audit-authz", only[*corev1.ConfigMap](t, r.rendered).Name)
	sa := only[*corev1.ServiceAccount](t, r.rendered)
	assert.Equal(t, sa.Name, spec.ServiceAccountName)
	assert.Equal(t, sa.Name, only[*rbacv1.ClusterRoleBinding](t, r.rendered).Subjects[0].Name)
	assert.Equal(t, sa.Name, only[*batchv1.CronJob](t, r.rendered).Spec.JobTemplate.Spec.Template.Spec.ServiceAccountName)
	assert.Equal(t, d.Name, only[*autoscalingv2.HorizontalPodAutoscaler](t, r.rendered).Spec.ScaleTargetRef.Name)
	assert.Equal(t, "audit-central", only[*corev1.Service](t, r.rendered).Name)
}

func TestChart_CentralValuesReachTheirFlags(t *testing.T) {
	r := renderChart(t, "flags", `
central:
  tokenAudience: audit
  writerNamespace: writers
  rateLimit: 50.5
  rateBurst: 2000000
  databaseMaxConns: 12
  shutdownTimeout: 15s
  partitionPeriod: week
  partitionsAhead: 8
  retention: remediation=90
  logLevel: debug
  logFormat: console
  extraArgs: [--read-rate=2000]
  podDisruptionBudget: {minAvailable: 50%}
`)
	_, flags := parseArgs(t, findContainer(t, only[*appsv1.Deployment](t, r.rendered).Spec.Template.Spec, centralImage))
	for flag, want := range map[string]string{
		"token-audience":     "audit",
		"namespace":          "writers",
		"rate-limit":         "50.5",
		"rate-burst":         "2000000", // not 2e+06: YAML numbers reach templates as floats
		"database-max-conns": "12",
		"shutdown-timeout":   "15s",
		"partition-period":   "week",
		"partitions-ahead":   "8",
		"retention":          "remediation=90",
		"log-level":          "debug",
		"log-format":         "console",
		"read-rate":          "2000",
	} {
		assert.Equal(t, want, flags[flag], "--%s", flag)
	}
	checkFlagsAreOnesTheProgramsAccept(t, r.rendered, map[string]int{})
	assert.Equal(t, "50%", only[*policyv1.PodDisruptionBudget](t, r.rendered).Spec.MinAvailable.String())
}
