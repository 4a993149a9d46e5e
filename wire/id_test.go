package wire_test

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

func TestNewID_IsTimeOrderedAndValid(t *testing.T) {
	const n = 2000
	prev := ""
	seen := make(map[string]bool, n)
	for range n {
		id := wire.NewID()
		require.NoError(t, wire.ValidateID(id))
		require.True(t, strings.HasPrefix(id, "audit-"), id)
		u, err := uuid.Parse(strings.TrimPrefix(id, "audit-"))
		require.NoError(t, err)
		require.Equal(t, uuid.Version(7), u.Version())
		require.Equal(t, uuid.RFC4122, u.Variant())
		require.Greater(t, id, prev, "IDs sort in creation order")
		require.False(t, seen[id])
		seen[id] = true
		prev = id
	}
}

func TestIDForKey_IsDeterministicAndScoped(t *testing.T) {
	id := wire.IDForKey("kubernaut-system/gateway-sa", wire.KindRemediation, "req-7f3a")
	require.Equal(t, id, wire.IDForKey("kubernaut-system/gateway-sa", wire.KindRemediation, "req-7f3a"))
	require.NoError(t, wire.ValidateID(id))
	u, err := uuid.Parse(strings.TrimPrefix(id, "audit-"))
	require.NoError(t, err)
	assert.Equal(t, uuid.Version(8), u.Version())
	assert.Equal(t, uuid.RFC4122, u.Variant())

	others := []string{
		wire.IDForKey("kubernaut-system/aianalysis-controller-sa", wire.KindRemediation, "req-7f3a"),
		wire.IDForKey("other-ns/gateway-sa", wire.KindRemediation, "req-7f3a"),
		wire.IDForKey("kubernaut-system/gateway-sa", wire.KindWorkflow, "req-7f3a"),
		wire.IDForKey("kubernaut-system/gateway-sa", wire.KindRemediation, "req-7f3b"),
		// Moving bytes between the parts must not give the same input.
		wire.IDForKey("kubernaut-system/gateway-s", wire.KindRemediation, "areq-7f3a"),
		wire.IDForKey("kubernaut-system/gateway-sa", wire.Kind("remediationreq-7f3a"), ""),
	}
	seen := map[string]bool{id: true}
	for _, o := range others {
		require.False(t, seen[o], "collision: %s", o)
		seen[o] = true
	}
}

// TestIDForKey_FollowsDocumentedDerivation pins the derivation: agents and
// centrals of different versions must derive the same ID for a key, so a
// change here breaks idempotency across a rolling upgrade.
func TestIDForKey_FollowsDocumentedDerivation(t *testing.T) {
	h := sha256.New()
	for _, part := range []string{"kubernaut.datastorage/idempotency-key/v1", "ns/sa", "workflow", "k1"} {
		require.NoError(t, binary.Write(h, binary.BigEndian, uint64(len(part))))
		h.Write([]byte(part))
	}
	sum := h.Sum(nil)
	var u uuid.UUID
	copy(u[:], sum)
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	assert.Equal(t, "audit-"+u.String(), wire.IDForKey("ns/sa", wire.KindWorkflow, "k1"))
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "audit-0192f3a4-7b1c-7d2e-8f00-123456789abc", "rr_1.2:3", strings.Repeat("z", 255)} {
		assert.NoError(t, wire.ValidateID(id), id)
	}
	for _, id := range []string{"", strings.Repeat("z", 256), "audit 1", "audit/1", "é", "a\x00", "a\n"} {
		requireValidationError(t, wire.ValidateID(id), "id")
	}
}

func TestValidateIdempotencyKey(t *testing.T) {
	for _, k := range []string{"k", "req 7f3a/2025-10-06T12:00:00Z ~!", strings.Repeat("k", wire.MaxIdempotencyKeyLen)} {
		assert.NoError(t, wire.ValidateIdempotencyKey(k), k)
	}
	for _, k := range []string{"", strings.Repeat("k", wire.MaxIdempotencyKeyLen+1), "tab\there", "del\x7f", "ünï"} {
		requireValidationError(t, wire.ValidateIdempotencyKey(k), "Idempotency-Key")
	}
}
