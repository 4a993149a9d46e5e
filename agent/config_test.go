package agent_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/agent"
)

// Anyone who reaches the write port writes under the pod's identity, so the
// API listens on loopback unless remote writes are allowed on purpose.
func TestConfig_ValidateRefusesANonLoopbackListenUnlessRemoteWritesAreAllowed(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:18080", "127.1.2.3:0", "[::1]:18080", "localhost:18080", "LocalHost:1"} {
		t.Run("accepts "+listen, func(t *testing.T) {
			assert.NoError(t, agent.Config{Listen: listen}.Validate())
		})
	}
	for _, listen := range []string{":18080", "0.0.0.0:18080", "[::]:18080", "10.0.0.5:18080", "[fe80::1]:18080",
		"example.com:18080", "localhost.example.com:18080"} {
		t.Run("refuses "+listen, func(t *testing.T) {
			err := agent.Config{Listen: listen}.Validate()
			require.Error(t, err)
			assert.ErrorContains(t, err, "Listen")
			assert.ErrorContains(t, err, "AllowRemoteWrites")
			assert.NoError(t, agent.Config{Listen: listen, AllowRemoteWrites: true}.Validate())
		})
	}
}
