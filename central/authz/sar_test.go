package authz_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/internal/tstest/fakekube"
	"github.com/kubernaut/datastorage/internal/tstest/testclock"
)

const sarNamespace = "kubernaut-system"

func newSAR(t *testing.T, api *fakekube.Server) (*authz.SAR, *metrics.Set, *testclock.Clock) {
	t.Helper()
	set, clk := metrics.NewSet(), testclock.New(time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC))
	s, err := authz.NewSAR(authz.SARConfig{Client: api.Clientset(), Namespace: sarNamespace, Metrics: set, Now: clk.Now, Timeout: 2 * time.Second})
	require.NoError(t, err)
	return s, set, clk
}

// grant gives subject the rule of act in the namespace, as a RoleBinding of
// the action's ClusterRole would.
func grant(api *fakekube.Server, subject string, act authz.Action) {
	r, _ := authz.RuleFor(act)
	api.Grant(subject, authorizationv1.ResourceAttributes{Namespace: sarNamespace, Verb: r.Verb, Group: authz.APIGroup, Resource: r.Resource, Subresource: r.Subresource})
}

var gateway = auth.NewIdentity("system:serviceaccount:kubernaut-system:gateway-sa", "uid-gw",
	[]string{"system:serviceaccounts", "system:serviceaccounts:kubernaut-system", "system:authenticated"})

func count(set *metrics.Set, name string) uint64 { return set.GetOrCreateCounter(name).Get() }

func TestRules_MapEveryActionOnceInOrder(t *testing.T) {
	require.Len(t, authz.Rules, len(authz.Actions))
	roles := map[string]bool{}
	for i, r := range authz.Rules {
		assert.Equal(t, authz.Actions[i], r.Action)
		assert.NotEmpty(t, r.Verb, r.Action)
		assert.NotEmpty(t, r.Resource, r.Action)
		assert.False(t, roles[r.ClusterRole], "ClusterRole %s named twice", r.ClusterRole)
		roles[r.ClusterRole] = true
	}
	_, ok := authz.RuleFor("delete:everything")
	assert.False(t, ok)
}

func TestSAR_AsksWithTheCallersIdentityAndTheActionsRule(t *testing.T) {
	api := fakekube.New(t)
	grant(api, gateway.Username, authz.WriteRemediation)
	s, set, _ := newSAR(t, api)

	ok, err := s.Authorize(context.Background(), gateway, authz.WriteRemediation)
	require.NoError(t, err)
	assert.True(t, ok)
	sars := api.SubjectAccessReviews()
	require.Len(t, sars, 1)
	assert.Equal(t, authorizationv1.SubjectAccessReviewSpec{
		User: gateway.Username, UID: gateway.UID, Groups: gateway.Groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: sarNamespace, Verb: "create", Group: "datastorage.kubernaut.ai", Resource: "auditevents", Subresource: "remediation",
		},
	}, sars[0])
	assert.Equal(t, uint64(1), count(set, `datastorage_authz_reviews_total{result="allowed"}`))
}

func TestSAR_DeniesWhatRBACDoesNotGrant(t *testing.T) {
	api := fakekube.New(t)
	grant(api, gateway.Username, authz.WriteRemediation)
	s, set, _ := newSAR(t, api)

	ok, err := s.Authorize(context.Background(), gateway, authz.WriteWorkflow)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, uint64(1), count(set, `datastorage_authz_reviews_total{result="denied"}`))
}

func TestSAR_GrantsThroughAGroup(t *testing.T) {
	api := fakekube.New(t)
	grant(api, "system:serviceaccounts:kubernaut-system", authz.ReadAudit)
	s, _, _ := newSAR(t, api)

	ok, err := s.Authorize(context.Background(), gateway, authz.ReadAudit)
	require.NoError(t, err)
	assert.True(t, ok, "the groups TokenReview reported are sent")
}

func TestSAR_NeverAsksAboutAUserOrAnUnknownAction(t *testing.T) {
	api := fakekube.New(t)
	grant(api, "alice", authz.WriteRemediation)
	s, _, _ := newSAR(t, api)

	ok, err := s.Authorize(context.Background(), auth.NewIdentity("alice", "u", []string{"system:masters"}), authz.WriteRemediation)
	require.NoError(t, err)
	assert.False(t, ok)
	ok, err = s.Authorize(context.Background(), gateway, "delete:everything")
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Empty(t, api.SubjectAccessReviews())
}

func TestSAR_UnreachableIsAnErrorNeverAllowedNorCached(t *testing.T) {
	api := fakekube.New(t)
	grant(api, gateway.Username, authz.WriteRemediation)
	s, set, _ := newSAR(t, api)
	api.Close()

	ok, err := s.Authorize(context.Background(), gateway, authz.WriteRemediation)
	require.ErrorIs(t, err, authz.ErrUnavailable)
	assert.False(t, ok)
	_, err = s.Authorize(context.Background(), gateway, authz.WriteRemediation)
	require.ErrorIs(t, err, authz.ErrUnavailable, "the failure was not cached as a decision")
	assert.Equal(t, uint64(2), count(set, `datastorage_authz_reviews_total{result="error"}`))
	assert.Zero(t, count(set, "datastorage_authz_cache_hits_total"))
}

func TestSAR_ErrorAnswersAreUnavailableAndNotCached(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusForbidden} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			api := fakekube.New(t)
			grant(api, gateway.Username, authz.WriteRemediation)
			s, _, _ := newSAR(t, api)
			api.FailWith(status)
			_, err := s.Authorize(context.Background(), gateway, authz.WriteRemediation)
			require.ErrorIs(t, err, authz.ErrUnavailable)

			api.FailWith(0)
			ok, err := s.Authorize(context.Background(), gateway, authz.WriteRemediation)
			require.NoError(t, err)
			assert.True(t, ok, "the next call asks again")
		})
	}
}

func TestSAR_CachesDecisionsUntilTheirTTL(t *testing.T) {
	api := fakekube.New(t)
	grant(api, gateway.Username, authz.WriteRemediation)
	s, set, clk := newSAR(t, api)
	ctx := context.Background()

	for range 3 {
		ok, err := s.Authorize(ctx, gateway, authz.WriteRemediation)
		require.NoError(t, err)
		assert.True(t, ok)
		ok, err = s.Authorize(ctx, gateway, authz.WriteWorkflow)
		require.NoError(t, err)
		assert.False(t, ok)
	}
	assert.Len(t, api.SubjectAccessReviews(), 2, "one review per identity and action")
	assert.Equal(t, uint64(4), count(set, "datastorage_authz_cache_hits_total"))

	// The denial expires after DeniedTTL; a new binding then takes effect.
	grant(api, gateway.Username, authz.WriteWorkflow)
	clk.Advance(authz.DefaultDeniedTTL - time.Millisecond)
	ok, _ := s.Authorize(ctx, gateway, authz.WriteWorkflow)
	assert.False(t, ok, "still the cached denial")
	clk.Advance(time.Millisecond)
	ok, err := s.Authorize(ctx, gateway, authz.WriteWorkflow)
	require.NoError(t, err)
	assert.True(t, ok, "asked again once the denial expired")
	assert.Len(t, api.SubjectAccessReviews(), 3)

	// The allowed decision outlives the denial's TTL, not its own.
	api.Revoke(gateway.Username)
	ok, _ = s.Authorize(ctx, gateway, authz.WriteRemediation)
	assert.True(t, ok, "still the cached permission")
	clk.Advance(authz.DefaultAllowedTTL)
	ok, err = s.Authorize(ctx, gateway, authz.WriteRemediation)
	require.NoError(t, err)
	assert.False(t, ok, "the revocation took effect once the permission expired")
}

func TestSAR_TheKeyIsTheWholeIdentity(t *testing.T) {
	api := fakekube.New(t)
	grant(api, "system:serviceaccounts:kubernaut-system", authz.ReadAudit)
	s, _, _ := newSAR(t, api)
	ctx := context.Background()

	ok, err := s.Authorize(ctx, gateway, authz.ReadAudit)
	require.NoError(t, err)
	require.True(t, ok)
	// Same username, other groups (say, a recreated service account): its
	// own question, not the cached answer.
	other := auth.NewIdentity(gateway.Username, "uid-new", nil)
	ok, err = s.Authorize(ctx, other, authz.ReadAudit)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Len(t, api.SubjectAccessReviews(), 2)
}

func TestSAR_ConcurrentIdenticalChecksMakeOneReview(t *testing.T) {
	api := fakekube.New(t)
	grant(api, gateway.Username, authz.WriteRemediation)
	s, _, _ := newSAR(t, api)
	release := api.Hold()

	const n = 20
	results := make(chan bool, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			ok, err := s.Authorize(context.Background(), gateway, authz.WriteRemediation)
			assert.NoError(t, err)
			results <- ok
		})
	}
	require.Eventually(t, func() bool { return len(api.SubjectAccessReviews()) == 1 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // the others had time to ask too, had they not joined
	release()
	wg.Wait()
	close(results)
	for ok := range results {
		assert.True(t, ok)
	}
	assert.Len(t, api.SubjectAccessReviews(), 1)
}

func TestSAR_ACallerThatGivesUpGetsAnErrorAndTheReviewGoesOn(t *testing.T) {
	api := fakekube.New(t)
	grant(api, gateway.Username, authz.WriteRemediation)
	s, _, _ := newSAR(t, api)
	release := api.Hold()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Authorize(ctx, gateway, authz.WriteRemediation)
	require.ErrorIs(t, err, authz.ErrUnavailable)
	release()
	require.Eventually(t, func() bool {
		ok, err := s.Authorize(context.Background(), gateway, authz.WriteRemediation)
		return err == nil && ok
	}, 5*time.Second, 10*time.Millisecond)
	assert.Len(t, api.SubjectAccessReviews(), 1, "the detached review finished and was cached")
}

func TestNewSAR_RefusesABadConfig(t *testing.T) {
	api := fakekube.New(t)
	for name, tc := range map[string]struct {
		cfg  authz.SARConfig
		want string
	}{
		"no client":    {authz.SARConfig{Namespace: "ns"}, "Client is required"},
		"no namespace": {authz.SARConfig{Client: api.Clientset()}, "Namespace is required"},
		"bad ns":       {authz.SARConfig{Client: api.Clientset(), Namespace: "Not_A_Label"}, "Namespace"},
		"negative ttl": {authz.SARConfig{Client: api.Clientset(), Namespace: "ns", DeniedTTL: -time.Second}, "DeniedTTL"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := authz.NewSAR(tc.cfg)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestSAR_String(t *testing.T) {
	s, _, _ := newSAR(t, fakekube.New(t))
	assert.Equal(t, "authz (sar): SubjectAccessReview in namespace kubernaut-system, group datastorage.kubernaut.ai; decisions cached (allowed 1m0s, denied 10s, at most 10000)", s.String())
}

func TestCheck_AnErrorIsUnavailableAndNeverAllows(t *testing.T) {
	ok, err := authz.Check(context.Background(), brokenAuthorizer{}, gateway, authz.WriteRemediation)
	require.ErrorIs(t, err, authz.ErrUnavailable)
	assert.False(t, ok, "an authorizer that answers true with an error does not allow")
	_, err = authz.Granted(context.Background(), brokenAuthorizer{}, gateway)
	require.ErrorIs(t, err, authz.ErrUnavailable)
	_, err = authz.MayWrite(context.Background(), brokenAuthorizer{}, gateway)
	require.ErrorIs(t, err, authz.ErrUnavailable)
}

// brokenAuthorizer answers "yes" and an error that is not ErrUnavailable.
type brokenAuthorizer struct{}

func (brokenAuthorizer) Authorize(context.Context, auth.Identity, authz.Action) (bool, error) {
	return true, context.DeadlineExceeded
}
func (brokenAuthorizer) String() string { return "broken" }

// The README's table is authz.Rules, row by row.
func TestRules_AreTheREADMEsTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, r := range authz.Rules {
		row := fmt.Sprintf("| `%s` | `%s` | `%s` | `%s` |", r.Action, r.Verb, r.RBACResource(), r.ClusterRole)
		assert.Contains(t, string(readme), row)
	}
}
