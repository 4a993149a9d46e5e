package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/auth"
)

const tokenFile = `# kube-apiserver --token-auth-file format
gw-secret-1,system:serviceaccount:kubernaut-system:gateway-sa,uid-gw,"system:serviceaccounts,system:serviceaccounts:kubernaut-system"

  # an indented comment is data to encoding/csv, so comments start the line
alice-secret,alice,uid-alice
bob-secret, bob , uid-bob ,"devs, ops ,"
carol-secret,carol,uid-carol,ops
`

func parseTokens(t *testing.T, text string) (*auth.StaticTokens, error) {
	t.Helper()
	return auth.ParseStaticTokens(strings.NewReader(text))
}

func TestParseStaticTokens_ReadsTheKubeAPIServerFormat(t *testing.T) {
	text := strings.Replace(tokenFile, "  # an indented comment is data to encoding/csv, so comments start the line\n", "", 1)
	s, err := parseTokens(t, text)
	require.NoError(t, err)
	assert.Equal(t, 4, s.Len())
	ctx := context.Background()

	id, err := s.Authenticate(ctx, "gw-secret-1", testPeer)
	require.NoError(t, err)
	assert.Equal(t, auth.Identity{
		Username:       "system:serviceaccount:kubernaut-system:gateway-sa",
		UID:            "uid-gw",
		Groups:         []string{"system:serviceaccounts", "system:serviceaccounts:kubernaut-system"},
		Namespace:      "kubernaut-system",
		ServiceAccount: "gateway-sa",
	}, id)

	id, err = s.Authenticate(ctx, "alice-secret", testPeer)
	require.NoError(t, err)
	assert.Equal(t, auth.Identity{Username: "alice", UID: "uid-alice"}, id, "no fourth column, no groups")
	assert.Equal(t, "user:alice", id.Key())

	id, err = s.Authenticate(ctx, "bob-secret", testPeer)
	require.NoError(t, err)
	assert.Equal(t, auth.Identity{Username: "bob", UID: "uid-bob", Groups: []string{"devs", "ops"}}, id,
		"spaces trimmed, empty groups dropped")

	id, err = s.Authenticate(ctx, "carol-secret", testPeer)
	require.NoError(t, err)
	assert.Equal(t, []string{"ops"}, id.Groups, "an unquoted single group")
}

func TestParseStaticTokens_RejectsBadLinesNamingTheLine(t *testing.T) {
	for name, tc := range map[string]struct{ text, want string }{
		"too few columns":  {"# header\n\ngood,alice,uid\nonly-two,columns\n", "line 4: want 3 or 4 columns"},
		"too many columns": {"tok,user,uid,g1,g2\n", "line 1: want 3 or 4 columns"},
		"bare quote":       {"a,b,c\nt\"ok,user,uid\n", "line 2"},
		"unclosed quote":   {"a,b,c\nd,e,f,\"g1,g2\n", "line 2"},
		"empty token":      {"a,b,c\n ,user,uid\n", "line 2: empty token"},
		"empty user":       {"tok,  ,uid\n", "line 1: empty user name"},
		"duplicate token":  {"dup-secret,alice,1\n\nother,bob,2\ndup-secret,carol,3\n", "line 4: duplicate token (first on line 1)"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseTokens(t, tc.text)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "secret", "no token in the message")
		})
	}
}

func TestParseStaticTokens_IndentedHashIsNotAComment(t *testing.T) {
	_, err := parseTokens(t, tokenFile)
	require.Error(t, err, "kube-apiserver's csv reader would read it as a record too")
	assert.Contains(t, err.Error(), "line 4")
}

func TestParseStaticTokens_EmptyFileHasNoTokens(t *testing.T) {
	s, err := parseTokens(t, "# nothing yet\n\n")
	require.NoError(t, err)
	assert.Zero(t, s.Len())
	_, err = s.Authenticate(context.Background(), "anything", testPeer)
	assert.ErrorIs(t, err, auth.ErrUnauthenticated)
}

func TestStaticTokens_RejectsUnknownAndEmptyTokens(t *testing.T) {
	s, err := parseTokens(t, "alice-secret,alice,uid\n")
	require.NoError(t, err)
	for _, tok := range []string{"", "alice-secre", "alice-secret ", "Alice-secret", "alice-secretx"} {
		id, err := s.Authenticate(context.Background(), tok, testPeer)
		require.ErrorIs(t, err, auth.ErrUnauthenticated, "%q", tok)
		assert.Zero(t, id)
		if tok != "" {
			assert.NotContains(t, err.Error(), tok)
		}
	}
}

func TestStaticTokens_ReturnedGroupsAreACopy(t *testing.T) {
	s, err := parseTokens(t, "tok,alice,uid,\"a,b\"\n")
	require.NoError(t, err)
	id, err := s.Authenticate(context.Background(), "tok", testPeer)
	require.NoError(t, err)
	id.Groups[0] = "system:masters"
	again, err := s.Authenticate(context.Background(), "tok", testPeer)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, again.Groups)
}

func TestLoadStaticTokens_ReadsAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.csv")
	require.NoError(t, os.WriteFile(path, []byte("wf-secret,system:serviceaccount:ns:workflowexecution-controller-sa,u1\n"), 0o600))
	s, err := auth.LoadStaticTokens(path)
	require.NoError(t, err)
	id, err := s.Authenticate(context.Background(), "wf-secret", testPeer)
	require.NoError(t, err)
	assert.Equal(t, "ns/workflowexecution-controller-sa", id.Key())
}

func TestLoadStaticTokens_ErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	_, err := auth.LoadStaticTokens(filepath.Join(dir, "missing.csv"))
	require.Error(t, err)

	path := filepath.Join(dir, "bad.csv")
	require.NoError(t, os.WriteFile(path, []byte("a,b\n"), 0o600))
	_, err = auth.LoadStaticTokens(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "line 1")
}

func TestStaticTokens_CanceledContextIsNotAnAuthenticationFailure(t *testing.T) {
	s, err := parseTokens(t, "tok,alice,uid\n")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Authenticate(ctx, "tok", testPeer)
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, auth.ErrUnauthenticated)
}
