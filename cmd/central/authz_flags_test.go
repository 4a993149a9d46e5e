package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/internal/tstest/fakekube"
)

func TestHelp_ListsTheAuthzFlagsWithTheirEnvironmentVariables(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, io.Discard, &stderr)
	require.True(t, errors.Is(err, flag.ErrHelp), err)
	for flagName, env := range map[string]string{
		"authz": "DATASTORAGE_AUTHZ", "authz-allowed-ttl": "DATASTORAGE_AUTHZ_ALLOWED_TTL", "authz-denied-ttl": "DATASTORAGE_AUTHZ_DENIED_TTL",
	} {
		assert.Regexp(t, `(?s)-`+flagName+` .*?\(env `+env+`\)`, stderr.String())
	}
}

func TestRun_RefusesAnAuthzModeWithFlagsThatDoNotGo(t *testing.T) {
	for args, want := range map[string]string{
		"--authz rbac": `--authz "rbac": want allowlist or sar`,
		"--authz sar --authz-file /etc/authz.yaml":          "--authz-file is an allow-list: it goes with --authz allowlist",
		"--authz sar --auth static --token-file /etc/t.csv": "--authz sar needs --auth tokenreview",
		"--authz sar --namespace=":                          "--authz sar needs --namespace",
		"--authz sar --authz-denied-ttl 0s":                 "must be positive",
	} {
		err := run(context.Background(), append([]string{"serve", "--database-url", "postgres://127.0.0.1:1/unused"}, strings.Fields(args)...), io.Discard, io.Discard)
		assert.ErrorContains(t, err, want, args)
	}
}

// TestServe_SubjectAccessReview runs the built central with --auth
// tokenreview --authz sar against a fake API server: a writer RBAC allows
// gets 201, one it does not 403, and 503 once the API server is gone.
func TestServe_SubjectAccessReview(t *testing.T) {
	api := fakekube.New(t)
	writer := api.ServiceAccountToken("datastorage", "kubernaut-system", "gateway-sa")
	outsider := api.ServiceAccountToken("datastorage", "kubernaut-system", "outsider")
	r, _ := authz.RuleFor(authz.WriteRemediation)
	api.Grant("system:serviceaccount:kubernaut-system:gateway-sa", authorizationv1.ResourceAttributes{
		Namespace: "kubernaut-system", Verb: r.Verb, Group: authz.APIGroup, Resource: r.Resource, Subresource: r.Subresource})
	p := startCentral(t, "--auth", "tokenreview", "--kubeconfig", api.WriteKubeconfig(t.TempDir()),
		"--authz", "sar", "--authz-denied-ttl", "1ms")
	url := "http://" + p.api
	p.waitReady(t, http.DefaultClient, url)

	write := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/audit/remediation", strings.NewReader(`{"remediationRequestID":"rr-sar"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 503 {
			assert.Equal(t, "1", resp.Header.Get("Retry-After"))
		}
		return resp.StatusCode, string(body)
	}
	status, body := write(writer)
	require.Equal(t, 201, status, body)
	status, body = write(outsider)
	require.Equal(t, 403, status, body)
	assert.JSONEq(t, `{"error":"authorization_failed","message":"Service account not authorized for write operations"}`, body)

	api.Close()
	time.Sleep(5 * time.Millisecond) // the outsider's cached denial (1ms) is gone; its identity stays cached
	status, body = write(outsider)
	require.Equal(t, 503, status, body)
	assert.JSONEq(t, `{"error":"service_unavailable","message":"Authorization is unavailable"}`, body)

	require.NoError(t, p.Stop(syscall.SIGTERM, 30*time.Second), "exit after SIGTERM: %s", p.Logs())
	assert.Contains(t, p.Logs(), `authz (sar): SubjectAccessReview in namespace kubernaut-system`)
}
