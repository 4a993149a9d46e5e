package deploy_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// cnpgCluster mirrors the fields of CloudNativePG's Cluster
// (postgresql.cnpg.io/v1, operator 1.25) that deploy/database/cloudnative-pg
// sets. The operator's Go module is not served here, so the test decodes
// strictly into this copy: a misspelt or misplaced field fails, as it would
// fail the operator's admission.
type cnpgCluster struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Instances             int    `json:"instances"`
		ImageName             string `json:"imageName"`
		PrimaryUpdateStrategy string `json:"primaryUpdateStrategy"`
		PostgreSQL            struct {
			Synchronous *struct {
				Method         string `json:"method"`
				Number         int    `json:"number"`
				DataDurability string `json:"dataDurability"`
			} `json:"synchronous"`
			Parameters map[string]string `json:"parameters"`
		} `json:"postgresql"`
		Bootstrap struct {
			InitDB struct {
				Database               string   `json:"database"`
				Owner                  string   `json:"owner"`
				PostInitApplicationSQL []string `json:"postInitApplicationSQL"`
			} `json:"initdb"`
		} `json:"bootstrap"`
		Storage struct {
			Size string `json:"size"`
		} `json:"storage"`
		Affinity struct {
			EnablePodAntiAffinity *bool  `json:"enablePodAntiAffinity"`
			PodAntiAffinityType   string `json:"podAntiAffinityType"`
			TopologyKey           string `json:"topologyKey"`
		} `json:"affinity"`
		Resources corev1.ResourceRequirements `json:"resources"`
	} `json:"spec"`
}

func cnpgClusterOf(t *testing.T, r rendered) cnpgCluster {
	t.Helper()
	return onlyUntyped[cnpgCluster](t, r, "postgresql.cnpg.io/v1", "Cluster")
}

// onlyUntyped decodes the one object of apiVersion and kind in r strictly
// into T, a copy of the fields its operator defines: a misspelt or
// misplaced field fails the test.
func onlyUntyped[T any](t *testing.T, r rendered, apiVersion, kind string) T {
	t.Helper()
	var found []T
	for _, u := range r.untyped {
		if u.GetKind() != kind {
			continue
		}
		assert.Equal(t, apiVersion, u.GetAPIVersion(), "%s: %s/%s", r.dir, kind, u.GetName())
		b, err := yaml.Marshal(u.Object)
		require.NoError(t, err)
		var v T
		require.NoError(t, yaml.UnmarshalStrict(b, &v), "%s: %s/%s has a field its operator does not define", r.dir, kind, u.GetName())
		found = append(found, v)
	}
	require.Len(t, found, 1, "%s: want exactly one %s %s", r.dir, apiVersion, kind)
	return found[0]
}

// The database a failover loses nothing of: synchronous replication that
// blocks rather than degrades, pgvector present for the migrations, one
// instance per node, and connections for every central replica.
func TestCloudNativePGClusterIsSynchronousWithPgvector(t *testing.T) {
	db := cnpgClusterOf(t, render(t, "database/cloudnative-pg"))
	s := db.Spec
	assert.Equal(t, centralNamespace, db.Metadata.Namespace, "the central reads the operator's Secret: same namespace")
	assert.GreaterOrEqual(t, s.Instances, 3, "a primary and two standbys: one standby may be lost without blocking writes")

	sync := s.PostgreSQL.Synchronous
	require.NotNil(t, sync, "asynchronous replication loses acknowledged commits on failover")
	assert.Contains(t, []string{"any", "first"}, sync.Method)
	assert.GreaterOrEqual(t, sync.Number, 1)
	assert.Less(t, sync.Number, s.Instances, "more synchronous standbys than standbys block every write")
	assert.Equal(t, "required", sync.DataDurability, "preferred would commit without a standby, and a failover could lose it")

	assert.True(t, strings.Contains(s.ImageName, "-standard-"), "%s: the standard operand images carry pgvector; minimal ones do not", s.ImageName)
	assert.NotEqual(t, s.ImageName, imageName(s.ImageName), "untagged image %s", s.ImageName)
	assert.NotContains(t, s.ImageName, ":latest")
	assert.Contains(t, s.Bootstrap.InitDB.PostInitApplicationSQL, "CREATE EXTENSION IF NOT EXISTS vector",
		"pgvector needs a superuser to create; the migrations expect it")

	require.NotNil(t, s.Affinity.EnablePodAntiAffinity)
	assert.True(t, *s.Affinity.EnablePodAntiAffinity)
	assert.Equal(t, "required", s.Affinity.PodAntiAffinityType)
	assert.Equal(t, "kubernetes.io/hostname", s.Affinity.TopologyKey)
	assert.NotEmpty(t, s.Storage.Size)

	// Every replica the HPA may run, each with a full pool, plus the
	// migration Job, the maintenance CronJob and a margin for the operator
	// and administrators.
	central := render(t, "central")
	hpa := only[*autoscalingv2.HorizontalPodAutoscaler](t, central)
	_, flags := parseArgs(t, findContainer(t, only[*appsv1.Deployment](t, central).Spec.Template.Spec, centralImage))
	pool, err := strconv.Atoi(flags["database-max-conns"])
	require.NoError(t, err, "--database-max-conns")
	maxConns, err := strconv.Atoi(s.PostgreSQL.Parameters["max_connections"])
	require.NoError(t, err, "max_connections")
	assert.GreaterOrEqual(t, maxConns, int(hpa.Spec.MaxReplicas)*pool+2*pool+10,
		"max_connections %d for %d replicas × %d connections", maxConns, hpa.Spec.MaxReplicas, pool)

	// shared_buffers holds the HNSW index of 250k half-precision vectors
	// (2 KB each) and stays within a quarter of the memory limit, leaving
	// the rest to connections, maintenance and the page cache.
	buffers := resource.MustParse(strings.TrimSuffix(s.PostgreSQL.Parameters["shared_buffers"], "B") + "i")
	assert.GreaterOrEqual(t, buffers.Value(), int64(250_000*2<<10), "shared_buffers %s", buffers.String())
	limit := s.Resources.Limits[corev1.ResourceMemory]
	assert.LessOrEqual(t, buffers.Value(), limit.Value()/4, "shared_buffers %s of a %s limit", buffers.String(), limit.String())
}

// The example points the central at the operator's Secret, whose URL names
// the read-write Service, and leaves the rest of the central as the base has
// it.
func TestCentralWithCloudNativePGUsesTheReadWriteService(t *testing.T) {
	r := render(t, "examples/central-with-cloudnative-pg")
	db := cnpgClusterOf(t, r)
	d := only[*appsv1.Deployment](t, r)
	c := findContainer(t, d.Spec.Template.Spec, centralImage)
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	url := env["DATABASE_URL"].ValueFrom
	require.NotNil(t, url, "DATABASE_URL from a Secret")
	require.NotNil(t, url.SecretKeyRef)
	assert.Equal(t, db.Metadata.Name+"-app", url.SecretKeyRef.Name, "the Secret CloudNativePG generates for the application owner")
	assert.Equal(t, "uri", url.SecretKeyRef.Key, "its URL of the -rw Service")
	assert.Equal(t, db.Spec.Bootstrap.InitDB.Owner, "datastorage_owner", "the central migrates at start-up as the owner (docs/deploy.md)")

	vec := env["VECTOR_DATABASE_URL"].ValueFrom
	require.NotNil(t, vec)
	require.NotNil(t, vec.SecretKeyRef.Optional)
	assert.True(t, *vec.SecretKeyRef.Optional, "without Secret datastorage-db the central must still start")

	base := findContainer(t, only[*appsv1.Deployment](t, render(t, "central")).Spec.Template.Spec, centralImage)
	assert.Equal(t, base.Args, c.Args, "the example changes the database URL only")
	assert.Len(t, c.Env, len(base.Env))
}
