package deploy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	require.NoError(t, err, "duration %q", s)
	return d
}
