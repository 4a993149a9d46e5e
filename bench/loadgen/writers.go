package loadgen

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kubernaut/datastorage/wire"
)

// Writer is one of the spec's four upstream services.
type Writer struct {
	Name, ServiceAccount string
	Kind                 wire.Kind
}

// Writers are the spec's four writers with their default service accounts;
// controller i writes as Writers[i%4].
var Writers = [4]Writer{
	{"gateway", "gateway-sa", wire.KindRemediation},
	{"aianalysis", "aianalysis-controller-sa", wire.KindRemediation},
	{"executor", "kubernetes-executor-sa", wire.KindRemediation},
	{"workflow", "workflowexecution-controller-sa", wire.KindWorkflow},
}

// ReaderSA is the service account that reads the audit trail back while the
// load runs (bench's sidecar-reads scenario): it reads like the AI Analysis
// controller, but under its own account, so that the writers keep exactly
// the spec's write grants. The allow-list grants it read:audit only.
const ReaderSA = "aianalysis-reader-sa"

// ReaderToken is ReaderSA's static token.
const ReaderToken = "bench-static-" + ReaderSA

// Namespace is the writers' namespace.
const Namespace = "kubernaut-system"

// QualifiedSA is "namespace/name", under which the server derives IDs.
func (w Writer) QualifiedSA() string { return Namespace + "/" + w.ServiceAccount }

// SAToken is a JWT-shaped token of service account sa of Namespace
// (unsigned: the central's static authenticator compares the whole string;
// an agent reads its sub); n makes it unique.
func SAToken(sa string, n int) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." +
		enc(fmt.Appendf(nil, `{"sub":"system:serviceaccount:%s:%s","jti":"bench-%d"}`, Namespace, sa, n)) + ".sig" + strconv.Itoa(n)
}

// WriteCredentials writes the central's static token CSV and allow-list
// into dir: each writer's static token (into tokens) and its SAToken (an
// agent's), allowed to write both kinds, and ReaderToken, ReaderSA's token,
// allowed to read (read:audit) and nothing else.
func WriteCredentials(dir string, tokens *[4]string) (tokenFile, authzFile string, err error) {
	var csv, authz strings.Builder
	authz.WriteString("serviceAccounts:\n")
	for w, wr := range Writers {
		tokens[w] = "bench-static-" + wr.ServiceAccount
		fmt.Fprintf(&csv, "%s,system:serviceaccount:%s:%s,uid-%d,\"system:serviceaccounts\"\n", tokens[w], Namespace, wr.ServiceAccount, w)
		fmt.Fprintf(&csv, "%s,system:serviceaccount:%s:%s,uid-%d,\"system:serviceaccounts\"\n", SAToken(wr.ServiceAccount, w), Namespace, wr.ServiceAccount, w)
		// One agent forwards whatever its pod's controllers write.
		fmt.Fprintf(&authz, "- name: %s\n  namespace: %s\n  actions: [write:remediation, write:workflow]\n", wr.ServiceAccount, Namespace)
	}
	fmt.Fprintf(&csv, "%s,system:serviceaccount:%s:%s,uid-reader,\"system:serviceaccounts\"\n", ReaderToken, Namespace, ReaderSA)
	fmt.Fprintf(&authz, "- name: %s\n  namespace: %s\n  actions: [read:audit]\n", ReaderSA, Namespace)
	tokenFile, authzFile = filepath.Join(dir, "tokens.csv"), filepath.Join(dir, "authz.yaml")
	if err := os.WriteFile(tokenFile, []byte(csv.String()), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(authzFile, []byte(authz.String()), 0o600); err != nil {
		return "", "", err
	}
	return tokenFile, authzFile, nil
}
