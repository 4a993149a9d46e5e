package authz_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/wire"
)

func sa(namespace, name string) auth.Identity {
	return auth.NewIdentity("system:serviceaccount:"+namespace+":"+name, "uid-"+name, nil)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "authz.yaml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestActionForKind(t *testing.T) {
	assert.Equal(t, authz.WriteRemediation, authz.ActionForKind(wire.KindRemediation))
	assert.Equal(t, authz.WriteWorkflow, authz.ActionForKind(wire.KindWorkflow))
	assert.Equal(t, authz.Action(""), authz.ActionForKind("bogus"))
}

func TestDefault_GrantsTheSpecsServiceAccountsInTheNamespace(t *testing.T) {
	a := authz.Default("kubernaut-system")
	all := []authz.Action{authz.WriteRemediation, authz.WriteWorkflow, authz.ReadSimilar}
	want := map[string][]authz.Action{
		"gateway-sa":                      {authz.WriteRemediation},
		"aianalysis-controller-sa":        {authz.WriteRemediation, authz.ReadSimilar},
		"kubernetes-executor-sa":          {authz.WriteRemediation},
		"workflowexecution-controller-sa": {authz.WriteWorkflow},
		"some-other-sa":                   nil,
	}
	for name, allowed := range want {
		for _, act := range all {
			assert.Equal(t, contains(allowed, act), a.Allowed(sa("kubernaut-system", name), act), "%s %s", name, act)
			assert.False(t, a.Allowed(sa("other-namespace", name), act), "%s in another namespace %s", name, act)
		}
	}
	assert.False(t, a.Allowed(sa("kubernaut-system", "gateway-sa"), authz.ActionForKind("bogus")))
}

func contains(acts []authz.Action, act authz.Action) bool {
	for _, a := range acts {
		if a == act {
			return true
		}
	}
	return false
}

func TestDefault_WithoutNamespaceAllowsNobody(t *testing.T) {
	a := authz.Default("")
	assert.False(t, a.Allowed(sa("default", "gateway-sa"), authz.WriteRemediation))
	assert.Contains(t, a.String(), "0 service accounts")
}

func TestAllowed_NeverForAUser(t *testing.T) {
	a := authz.Default("kubernaut-system")
	for _, id := range []auth.Identity{
		auth.NewIdentity("alice", "u", []string{"system:masters"}),
		auth.NewIdentity("gateway-sa", "u", nil),
		auth.NewIdentity("system:serviceaccount:kubernaut-system", "u", nil),
		// A hand-built identity with only one half set is not a service account.
		{Username: "x", Namespace: "kubernaut-system"},
		{Username: "x", ServiceAccount: "gateway-sa"},
	} {
		assert.False(t, a.Allowed(id, authz.WriteRemediation), "%+v", id)
	}
}

func TestLoadFile_ReplacesTheDefault(t *testing.T) {
	path := writeFile(t, `
serviceAccounts:
- name: gateway-sa
  namespace: team-a
  actions: [write:remediation]
- name: batch-writer
  namespace: team-b
  actions:
  - write:remediation
  - write:workflow
`)
	a, err := authz.LoadFile(path)
	require.NoError(t, err)

	assert.True(t, a.Allowed(sa("team-a", "gateway-sa"), authz.WriteRemediation))
	assert.False(t, a.Allowed(sa("team-a", "gateway-sa"), authz.WriteWorkflow))
	assert.True(t, a.Allowed(sa("team-b", "batch-writer"), authz.WriteRemediation))
	assert.True(t, a.Allowed(sa("team-b", "batch-writer"), authz.WriteWorkflow))
	assert.False(t, a.Allowed(sa("team-b", "batch-writer"), authz.ReadSimilar))
	assert.False(t, a.Allowed(sa("kubernaut-system", "workflowexecution-controller-sa"), authz.WriteWorkflow),
		"the default is replaced, not extended")

	assert.Equal(t, "authz ("+path+"): 2 service accounts team-a/gateway-sa=[write:remediation] team-b/batch-writer=[write:remediation,write:workflow]", a.String())
}

func TestLoadFile_RejectsBadFiles(t *testing.T) {
	for name, tc := range map[string]struct{ content, want string }{
		"unknown field": {`
serviceAccounts:
- name: gateway-sa
  namespace: ns
  verbs: [write:remediation]
`, `line 5: unknown field "serviceAccounts[0].verbs" (known: name, namespace, actions)`},
		"unknown top-level field": {"serviceAccount:\n- name: a\n", `line 1: unknown field "serviceAccount"`},
		"unknown action": {`
serviceAccounts:
- name: gateway-sa
  namespace: ns
  actions: [write:remediation, delete:everything]
`, `serviceAccounts[0].actions[1]: unknown action "delete:everything"`},
		"empty list":  {"serviceAccounts: []\n", "no serviceAccounts"},
		"null list":   {"serviceAccounts:\n", "no serviceAccounts"},
		"empty file":  {"\n  \n", "allow-list is empty"},
		"no actions":  {"serviceAccounts:\n- {name: a, namespace: ns, actions: []}\n", "serviceAccounts[0] (ns/a): no actions"},
		"no name":     {"serviceAccounts:\n- {namespace: ns, actions: [write:workflow]}\n", "serviceAccounts[0].name"},
		"bad ns":      {"serviceAccounts:\n- {name: a, namespace: Not_A_Label, actions: [write:workflow]}\n", "serviceAccounts[0].namespace"},
		"duplicate":   {"serviceAccounts:\n- {name: a, namespace: ns, actions: [write:workflow]}\n- {name: a, namespace: ns, actions: [read:similar]}\n", "serviceAccounts[1]: ns/a is listed twice"},
		"not yaml":    {"serviceAccounts: [\n", "parse allow-list"},
		"wrong shape": {"serviceAccounts: {name: a}\n", "parse allow-list"},
		"dup key":     {"serviceAccounts:\n- name: a\n  name: b\n  namespace: ns\n  actions: [read:similar]\n", "parse allow-list"},
	} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, tc.content)
			_, err := authz.LoadFile(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), path)
		})
	}
}

func TestLoadFile_MissingFile(t *testing.T) {
	_, err := authz.LoadFile(filepath.Join(t.TempDir(), "absent.yaml"))
	require.Error(t, err)
}

func TestString_SummarisesTheDefault(t *testing.T) {
	assert.Equal(t,
		"authz (default): 4 service accounts ns/aianalysis-controller-sa=[write:remediation,read:similar,read:audit] ns/gateway-sa=[write:remediation] ns/kubernetes-executor-sa=[write:remediation] ns/workflowexecution-controller-sa=[write:workflow]",
		authz.Default("ns").String())
}

func TestHoldAudit_NobodyByDefaultAndGrantedByAFile(t *testing.T) {
	for _, name := range []string{"gateway-sa", "aianalysis-controller-sa", "kubernetes-executor-sa", "workflowexecution-controller-sa"} {
		assert.False(t, authz.Default("ns").Allowed(sa("ns", name), authz.HoldAudit), name)
	}
	a, err := authz.Parse([]byte("serviceAccounts:\n- {name: compliance-sa, namespace: legal, actions: [hold:audit]}\n"))
	require.NoError(t, err)
	assert.True(t, a.Allowed(sa("legal", "compliance-sa"), authz.HoldAudit))
	assert.False(t, a.Allowed(sa("legal", "compliance-sa"), authz.ReadAudit), "holding is not reading")
	granted, err := authz.Granted(context.Background(), a, sa("legal", "compliance-sa"))
	require.NoError(t, err)
	assert.Equal(t, []authz.Action{authz.HoldAudit}, granted)
}
