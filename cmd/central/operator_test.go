package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

// operatorCentral runs a central where gateway-sa writes and "outsider"
// (token t-out) is the operator: it may export and manage legal holds. It
// returns the central's URL, a file holding the operator's token, and the
// export key's public key.
func operatorCentral(t *testing.T) (url, tokenFile, exportPub string) {
	t.Helper()
	exportKey, exportPub := ledgerKeys(t)
	dir := t.TempDir()
	authzFile := filepath.Join(dir, "authz.yaml")
	require.NoError(t, os.WriteFile(authzFile, []byte(`serviceAccounts:
- {name: gateway-sa, namespace: kubernaut-system, actions: [write:remediation]}
- {name: outsider, namespace: kubernaut-system, actions: [export:audit, hold:audit]}
`), 0o600))
	tokenFile = filepath.Join(dir, "operator-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("t-out\n"), 0o600))
	p := startCentral(t, "--authz-file", authzFile, "--export-key-file", exportKey)
	url = "http://" + p.api
	p.waitReady(t, http.DefaultClient, url)
	for range 3 {
		status, body, err := writeAudit(http.DefaultClient, url)
		require.NoError(t, err)
		require.Equal(t, 201, status, body)
	}
	return url, tokenFile, exportPub
}

// An operator exports with the command, verified on the way; a file that
// does not verify is never given the name asked for.
func TestExportCommand_WritesAVerifiedExportOrNone(t *testing.T) {
	url, token, pub := operatorCentral(t)
	api := []string{"--central-url", url, "--token-file", token}
	out := filepath.Join(t.TempDir(), "audits.ndjson")

	status, _, stderr := runCentral(t, nil, append([]string{"export", "--public-key", pub, "--out", out}, api...)...)
	require.Equal(t, 0, status, stderr)
	assert.Regexp(t, `export: 3 records, verified: signed by key \S+, exported by kubernaut-system/outsider at `, stderr)
	assert.NoFileExists(t, out+".partial")
	status, stdout, stderr := runCentral(t, nil, "verify-export", out, "--public-key", pub)
	require.Equal(t, 0, status, stderr)
	assert.Contains(t, stdout, "3 records")

	// To standard output, of one kind, the token from standard input.
	status, stdout, stderr = runCentral(t, []byte("t-out"), "export", "--kind", "remediation", "--central-url", url, "--token-file", "-")
	require.Equal(t, 0, status, stderr)
	assert.Equal(t, 4, strings.Count(stdout, "\n"), "three records and the trailer:\n%s", stdout)

	// Another key: the stream does not verify, and the file stays partial.
	_, otherPub := ledgerKeys(t)
	bad := filepath.Join(t.TempDir(), "bad.ndjson")
	status, _, stderr = runCentral(t, nil, append([]string{"export", "--public-key", otherPub, "--out", bad}, api...)...)
	assert.Equal(t, 1, status)
	assert.Contains(t, stderr, "verify")
	assert.Contains(t, stderr, bad+".partial")
	assert.NoFileExists(t, bad)

	// The central's refusals come back as errors: gateway-sa may not export.
	gw := filepath.Join(t.TempDir(), "gw-token")
	require.NoError(t, os.WriteFile(gw, []byte("t-gw"), 0o600))
	status, _, stderr = runCentral(t, nil, "export", "--central-url", url, "--token-file", gw)
	assert.Equal(t, 1, status)
	assert.Contains(t, stderr, "403")
}

// An operator places, lists, shows and releases a legal hold with the
// command, as the API stores it.
func TestHoldsCommand_PlaceListShowRelease(t *testing.T) {
	url, token, _ := operatorCentral(t)
	api := []string{"--central-url", url, "--token-file", token}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		return runCentral(t, nil, append(append([]string{"holds"}, args...), api...)...)
	}

	status, stdout, stderr := run("place", "--remediation", "rr-1", "--reason", "case 7")
	require.Equal(t, 0, status, stderr)
	var placed wire.LegalHold
	require.NoError(t, json.Unmarshal([]byte(stdout), &placed), stdout)
	assert.True(t, placed.Active)
	assert.Equal(t, "rr-1", placed.RemediationRequestID)
	assert.Equal(t, "kubernaut-system/outsider", placed.PlacedBy)

	status, stdout, stderr = run("list")
	require.Equal(t, 0, status, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 2, stdout)
	assert.Regexp(t, `^ID\s+HOLDS\s+PLACED BY\s+PLACED AT\s+STATE\s+REASON$`, lines[0])
	assert.Regexp(t, `^`+regexp.QuoteMeta(placed.ID)+`\s+remediation rr-1\s+kubernaut-system/outsider\s+\S+Z\s+active\s+case 7$`, lines[1])

	status, stdout, stderr = run("show", placed.ID)
	require.Equal(t, 0, status, stderr)
	var shown wire.LegalHold
	require.NoError(t, json.Unmarshal([]byte(stdout), &shown))
	assert.Equal(t, placed.ID, shown.ID)

	status, stdout, stderr = run("release", placed.ID, "--reason", "case closed")
	require.Equal(t, 0, status, stderr)
	var released wire.LegalHold
	require.NoError(t, json.Unmarshal([]byte(stdout), &released))
	assert.False(t, released.Active)
	assert.Equal(t, "case closed", released.ReleaseReason)

	status, stdout, _ = run("list", "--active")
	require.Equal(t, 0, status)
	assert.Equal(t, 1, strings.Count(stdout, "\n"), "no active hold left:\n%s", stdout)
	status, stdout, _ = run("list", "--released", "--json")
	require.Equal(t, 0, status)
	assert.Contains(t, stdout, `"releaseReason":"case closed"`)

	status, _, stderr = run("release", placed.ID, "--reason", "again")
	assert.Equal(t, 1, status, "a hold is released once")
	assert.Contains(t, stderr, "409")
}

func TestOperatorCommands_UsageErrorsExitTwo(t *testing.T) {
	api := []string{"--central-url", "http://127.0.0.1:1", "--token-file", "/nonexistent"}
	for name, args := range map[string][]string{
		"no verb":             {"holds"},
		"an unknown verb":     {"holds", "purge"},
		"place without why":   {"holds", "place", "--remediation", "rr-1"},
		"place of both":       {"holds", "place", "--remediation", "rr-1", "--workflow", "wf-1", "--reason", "x"},
		"release without ID":  {"holds", "release", "--reason", "x"},
		"both filters":        {"holds", "list", "--active", "--released"},
		"export a bad time":   {"export", "--from", "yesterday"},
		"export a bad kind":   {"export", "--kind", "incident"},
		"export an argument":  {"export", "extra"},
		"no central":          {"holds", "list", "--token-file", "/nonexistent"},
		"export unknown flag": {"export", "--form", "x"},
	} {
		full := args
		if name != "no central" {
			full = append(append([]string{}, args...), api...)
		}
		status, _, stderr := runCentral(t, nil, full...)
		assert.Equal(t, 2, status, "%s: %s", name, stderr)
	}
}
