package deploy_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
)

// The authz-sar component switches the central to --authz=sar, drops the
// allow-list, and ships exactly one ClusterRole per rule of authz.Rules and
// RoleBindings granting the spec's writers what authz.Default grants them.
func TestAuthzSARComponentMatchesTheCodesMapping(t *testing.T) {
	r := render(t, "examples/central-with-sar")

	d := only[*appsv1.Deployment](t, r)
	c := findContainer(t, d.Spec.Template.Spec, centralImage)
	_, flags := parseArgs(t, c)
	assert.Equal(t, "sar", flags["authz"])
	assert.Equal(t, "tokenreview", flags["auth"], "SAR needs TokenReview")
	assert.NotContains(t, flags, "authz-file", "--authz-file goes with the allow-list only")
	namespace := flags["namespace"]
	require.Equal(t, centralNamespace, namespace, "--namespace is where the RoleBindings live")
	for _, m := range all[*corev1.ConfigMap](r) {
		assert.NotEqual(t, "datastorage-authz", m.Name, "the allow-list ConfigMap is dropped")
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		assert.NotEqual(t, "authz", v.Name, "the allow-list volume is dropped")
	}

	// The central may create SubjectAccessReviews: system:auth-delegator.
	crb := only[*rbacv1.ClusterRoleBinding](t, r)
	assert.Equal(t, "system:auth-delegator", crb.RoleRef.Name)
	assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: d.Spec.Template.Spec.ServiceAccountName, Namespace: namespace}}, crb.Subjects)

	// One ClusterRole per rule, with exactly that rule.
	roles := map[string][]rbacv1.PolicyRule{}
	for _, cr := range all[*rbacv1.ClusterRole](r) {
		roles[cr.Name] = cr.Rules
	}
	action := map[string]authz.Action{} // ClusterRole → action
	for _, rule := range authz.Rules {
		action[rule.ClusterRole] = rule.Action
		assert.Equal(t, []rbacv1.PolicyRule{{
			APIGroups: []string{authz.APIGroup}, Resources: []string{rule.RBACResource()}, Verbs: []string{rule.Verb},
		}}, roles[rule.ClusterRole], "ClusterRole %s (%s)", rule.ClusterRole, rule.Action)
	}
	assert.Len(t, roles, len(authz.Rules), "no ClusterRole beyond authz.Rules")

	// The RoleBindings grant what the default allow-list grants.
	got := map[string][]authz.Action{} // service account → actions, in the order of authz.Actions
	for _, rb := range all[*rbacv1.RoleBinding](r) {
		assert.Equal(t, namespace, rb.Namespace, "RoleBinding %s", rb.Name)
		assert.Equal(t, "ClusterRole", rb.RoleRef.Kind, "RoleBinding %s", rb.Name)
		act, ok := action[rb.RoleRef.Name]
		require.True(t, ok, "RoleBinding %s binds %s, not one of authz.Rules' ClusterRoles", rb.Name, rb.RoleRef.Name)
		for _, s := range rb.Subjects {
			require.Equal(t, "ServiceAccount", s.Kind, "RoleBinding %s", rb.Name)
			assert.Equal(t, namespace, s.Namespace, "RoleBinding %s subject %s", rb.Name, s.Name)
			got[s.Name] = append(got[s.Name], act)
		}
	}
	want := map[string][]authz.Action{}
	for _, sa := range []string{authz.GatewaySA, authz.AIAnalysisSA, authz.KubernetesExecutorSA, authz.WorkflowExecutionSA} {
		id := auth.NewIdentity("system:serviceaccount:"+namespace+":"+sa, "", nil)
		acts, err := authz.Granted(context.Background(), authz.Default(namespace), id)
		require.NoError(t, err)
		want[sa] = acts
	}
	for sa := range got {
		slices.SortFunc(got[sa], func(a, b authz.Action) int {
			return slices.Index(authz.Actions, a) - slices.Index(authz.Actions, b)
		})
	}
	assert.Equal(t, want, got)
}
