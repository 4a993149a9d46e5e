package deploy_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// dashboard is what the test reads of the dashboard, deploy/helm/datastorage/dashboards/datastorage.json.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) ([]byte, dashboard) {
	t.Helper()
	b, err := os.ReadFile("helm/datastorage/dashboards/datastorage.json")
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return b, d
}

// histogramSeries are the series a VictoriaMetrics histogram exposes besides
// its name: a query names them, the program registers the name.
var histogramSeries = regexp.MustCompile(`_(sum|count|bucket)$`)

// Every panel queries only metrics the programs register, through the
// dashboard's data source variable, and the dashboard covers what an
// operator watches: each agent's ingest, buffer, lag, errors and dead
// letters; the central's writes by outcome and latency; rate limiting per
// service account; the authentication cache; the embedding backlog and lag;
// the database pool.
func TestDashboardQueriesOnlyExportedMetricsAndCoversTheWritePath(t *testing.T) {
	_, d := readDashboard(t)
	assert.NotEmpty(t, d.UID)
	assert.NotEmpty(t, d.Title)
	assert.GreaterOrEqual(t, d.SchemaVersion, 36, "a schema Grafana 10 and later read without migrating")
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	assert.Equal(t, "datasource", vars["datasource"], "the data source is chosen on import, not fixed")

	exported := exportedMetrics(t)
	metric := regexp.MustCompile(`\b(?:agent|datastorage|auth)_[a-z0-9_]+\b`)
	queried := map[string]bool{}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					assert.Failf(t, "panels overlap", "%q and %q at %d,%d", other, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		assert.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, "%s: wider than the grid", p.Title)
		if p.Type == "row" {
			continue
		}
		assert.NotEmpty(t, p.Title)
		assert.NotEmpty(t, p.Description, "%s: say what it shows", p.Title)
		require.NotNil(t, p.Datasource, p.Title)
		assert.Equal(t, "${datasource}", p.Datasource.UID, p.Title)
		require.NotEmpty(t, p.Targets, p.Title)
		for _, target := range p.Targets {
			names := metric.FindAllString(target.Expr, -1)
			assert.NotEmpty(t, names, "%s: %s names no metric of ours", p.Title, target.Expr)
			for _, m := range names {
				queried[m] = true
				base := m
				if !exported[m] {
					base = histogramSeries.ReplaceAllString(m, "")
				}
				assert.True(t, exported[base], "%s: %s is not a metric the programs register", p.Title, m)
			}
		}
	}
	// A description that names an alert names one that exists.
	alerts := map[string]bool{}
	rules, _, err := unstructured.NestedSlice(untypedKind(t, render(t, "central/overlays/monitoring"), "PrometheusRule").Object, "spec", "groups")
	require.NoError(t, err)
	for _, g := range rules {
		rs, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rs {
			alerts[r.(map[string]any)["alert"].(string)] = true
		}
	}
	for _, p := range d.Panels {
		for _, a := range regexp.MustCompile(`\bDatastorage[A-Za-z]+`).FindAllString(p.Description, -1) {
			assert.True(t, alerts[a], "%s: alert %s does not exist", p.Title, a)
		}
	}

	for area, m := range map[string]string{
		"ingest per agent":                  "agent_records_accepted_total",
		"buffer depth per agent":            "agent_queue_buffered_records",
		"forward lag":                       "agent_queue_oldest_age_seconds",
		"forward errors":                    "agent_forward_errors_total",
		"dead letters":                      "agent_queue_deadletter_records",
		"central writes by outcome":         "datastorage_records_total",
		"central latency":                   "datastorage_http_request_duration_seconds_sum",
		"rate limiting per service account": "datastorage_ratelimit_rejections_total",
		"authentication cache":              "auth_cache_hits_total",
		"embedding backlog":                 "datastorage_embed_backlog_audits",
		"embedding lag":                     "datastorage_embed_backlog_oldest_age_seconds",
		"database pool":                     "datastorage_db_pool_acquired_conns",
	} {
		assert.True(t, queried[m], "no panel shows %s (%s)", area, m)
	}
}

// deploy/grafana ships the dashboard as the ConfigMap Grafana's sidecar
// loads: labelled grafana_dashboard="1", its one key the file as it is.
func TestDashboardConfigMapCarriesTheFileForGrafanasSidecar(t *testing.T) {
	b, _ := readDashboard(t)
	cm := only[*corev1.ConfigMap](t, render(t, "grafana"))
	assert.Equal(t, "1", cm.Labels["grafana_dashboard"])
	assert.Equal(t, "datastorage-dashboard", cm.Name, "a stable name: no hash suffix to chase")
	require.Len(t, cm.Data, 1)
	assert.Equal(t, strings.TrimSpace(string(b)), strings.TrimSpace(cm.Data["datastorage.json"]))
}
