package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
)

func TestHelp_ListsTheAuthFailureBudgetFlagsWithTheirEnvironmentVariables(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, io.Discard, &stderr)
	require.True(t, errors.Is(err, flag.ErrHelp), err)
	for flagName, env := range map[string]string{
		"auth-failure-rate": "DATASTORAGE_AUTH_FAILURE_RATE", "auth-failure-burst": "DATASTORAGE_AUTH_FAILURE_BURST",
		"auth-failure-peers": "DATASTORAGE_AUTH_FAILURE_PEERS", "auth-negative-cache-size": "DATASTORAGE_AUTH_NEGATIVE_CACHE_SIZE",
	} {
		assert.Regexp(t, `(?s)-`+flagName+` .*?\(env `+env+`\)`, stderr.String())
	}
}

func TestRun_RefusesANegativeAuthFailureBudget(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600))
	t.Setenv("DATASTORAGE_AUTH_FAILURE_RATE", "-1")
	err := run(context.Background(), []string{"--database-url", dsn, "--kubeconfig", kubeconfig}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "PeerFailureRate")
}
