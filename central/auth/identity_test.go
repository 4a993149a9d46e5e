package auth_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kubernaut/datastorage/central/auth"
)

func TestNewIdentity_ParsesServiceAccountUsernames(t *testing.T) {
	for _, tc := range []struct {
		username, namespace, sa, key string
	}{
		{"system:serviceaccount:kubernaut-system:gateway-sa", "kubernaut-system", "gateway-sa", "kubernaut-system/gateway-sa"},
		{"system:serviceaccount:ns:sa.with.dots", "ns", "sa.with.dots", "ns/sa.with.dots"},
		{"alice", "", "", "user:alice"},
		{"system:serviceaccount:ns", "", "", "user:system:serviceaccount:ns"},
		{"system:serviceaccount::name", "", "", "user:system:serviceaccount::name"},
		{"system:serviceaccount:ns:", "", "", "user:system:serviceaccount:ns:"},
		{"system:serviceaccount:ns:a:b", "", "", "user:system:serviceaccount:ns:a:b"},
		{"system:serviceaccount:Bad_NS:sa", "", "", "user:system:serviceaccount:Bad_NS:sa"},
		{"system:serviceaccounts:ns", "", "", "user:system:serviceaccounts:ns"},
	} {
		t.Run(tc.username, func(t *testing.T) {
			id := auth.NewIdentity(tc.username, "uid", nil)
			assert.Equal(t, tc.namespace, id.Namespace)
			assert.Equal(t, tc.sa, id.ServiceAccount)
			assert.Equal(t, tc.key, id.Key())
			assert.Equal(t, tc.sa != "", id.IsServiceAccount())
		})
	}
}

func TestNewIdentity_CopiesGroups(t *testing.T) {
	groups := []string{"a", "b"}
	id := auth.NewIdentity("alice", "", groups)
	groups[0] = "system:masters"
	assert.Equal(t, []string{"a", "b"}, id.Groups)
}
